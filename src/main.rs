//! The `spoor` binary: reads configuration, sets up tracing, binds, and calls
//! [`spoor::serve`]; or runs the load generator.

/// jemalloc rather than glibc's malloc: about 9 % more events a second at full load, where
/// glibc's arenas were contended by buffers freed on another thread than the one that
/// allocated them, and per idle session no more memory (docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use spoor::bench::{self, BenchArgs};
use spoor::config::{CompactArgs, Config, ServeArgs, StoreSpec};

#[derive(Parser)]
#[command(
    name = "spoor",
    version,
    about = "Clickstream and telemetry ingestion with durable acks and session replay"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Load a protocol-v1 server and print one JSON line of results.
    Bench(BenchArgs),
    /// Shrink the embedded store's file after large deletions (stop the server first).
    Compact(CompactArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: piped into a file, journald or `docker logs`, escape
        // codes are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Some(Command::Bench(args)) => runtime(None)?.block_on(async {
            let report = bench::run(args).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }),
        Some(Command::Compact(args)) => compact(&args),
        Some(Command::Serve(args)) => serve(&args),
        None => serve(&cli.serve),
    }
}

/// A multi-thread runtime with `workers` worker threads, or tokio's default (one per core,
/// or `TOKIO_WORKER_THREADS`).
fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Runtime workers beside the embedded store's own threads: one fewer than the cores (at
/// least one), unless `TOKIO_WORKER_THREADS` says otherwise. The store's write lane is a
/// thread of its own that is busy most of the time at full load, so a worker per core
/// oversubscribed the machine; on two cores, one worker measured more events a second at
/// full load and less CPU per event at the steady load than two (docs/benchmarks.md).
fn workers_beside_store_lanes() -> Option<usize> {
    if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().ok()?.get();
    Some(cores.saturating_sub(1).max(1))
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let (config, generated) = Config::resolve(args).context("reading the configuration")?;
    let workers = match config.store {
        StoreSpec::Embedded(_) => workers_beside_store_lanes(),
        // The driver's work runs on the runtime itself: a worker per core.
        StoreSpec::Mongo(_) => None,
    };
    // Started before the runtime, so that its thread begins with every CPU the process may use.
    let _placement = match config.store {
        StoreSpec::Embedded(_) if config.pipeline.gather_threads => {
            spoor::placement::spawn(PLACEMENT_TICK)
        }
        _ => None,
    };
    runtime(workers)?.block_on(serve_on(config, generated))
}

/// How often the placement looks at the load (`src/placement/`).
const PLACEMENT_TICK: std::time::Duration = std::time::Duration::from_millis(250);

fn compact(args: &CompactArgs) -> anyhow::Result<()> {
    let dir = match args.store().context("reading the configuration")? {
        StoreSpec::Embedded(dir) => dir,
        StoreSpec::Mongo(_) => anyhow::bail!(
            "compact is for the embedded store; MongoDB reuses freed space itself \
             (its own `compact` command returns it to the file system)"
        ),
    };
    let (before, after) =
        spoor::store::embedded::EmbeddedStore::compact(&dir).context("compacting the store")?;
    let size = |b: u64| match b {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / f64::from(1 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / f64::from(1 << 20)),
        b => format!("{} KB", b.div_ceil(1024)),
    };
    println!(
        "{}: {} before, {} after",
        dir.join("spoor.redb").display(),
        size(before),
        size(after)
    );
    Ok(())
}

async fn serve_on(
    config: Config,
    generated: spoor::config::bootstrap::Generated,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    // The store opens before the banner: a data directory in use, or a bad URI, fails here
    // without printing URLs that would not work.
    let store = spoor::store::open(&config)
        .await
        .context("opening the store")?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    let store_name = match &config.store {
        spoor::config::StoreSpec::Embedded(dir) => format!("embedded:{}", dir.display()),
        spoor::config::StoreSpec::Mongo(_) => "mongodb".into(),
    };
    println!("spoor listening on http://{host} (store {store_name})");
    println!("  replay UI:  http://{host}/?token={}", config.read_token);
    println!("  demo page:  http://{host}/demo");
    for site in &config.sites {
        let new = if generated.demo_site && site.id == "demo" {
            " (new)"
        } else {
            ""
        };
        println!(
            "  site {}: write key {}{new}, ingest ws://{host}/v1/ingest?key={}",
            site.id, site.write_key, site.write_key
        );
    }

    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Shutting down: draining sockets and the batcher.");
        signal.cancel();
    });
    spoor::serve(listener, config, store, shutdown).await?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
