//! The placement on real threads: an idle process is gathered on one CPU, a busy one spread
//! over all it started with, and stopping leaves it spread. A test binary of its own, because
//! the placement moves every thread of the process it runs in.

#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spoor::placement;

/// Waits (up to a minute: CI machines stall) until `done` holds.
// A plain test thread, not a runtime worker: blocking it is the point.
#[allow(clippy::disallowed_methods)]
fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "never {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn all_on(cpus: &[usize]) -> bool {
    placement::thread_cpus().iter().all(|c| c == cpus)
}

#[test]
fn an_idle_process_is_gathered_on_one_cpu_and_spread_again_when_busy_or_stopped() {
    let start = placement::thread_cpus();
    let original = start[0].clone();
    assert!(start.iter().all(|c| *c == original), "{start:?}");
    let Some(watch) = placement::spawn(Duration::from_millis(20)) else {
        assert_eq!(
            original.len(),
            1,
            "no placement though {original:?} may be used"
        );
        return;
    };

    // Idle: after a calm second's worth of ticks, every thread is on one CPU.
    until("gathered", || placement::gathered_on().is_some());
    let cpu = placement::gathered_on().unwrap();
    assert!(original.contains(&cpu));
    until("every thread on the CPU", || all_on(&[cpu]));
    let moves = placement::moves();

    // Busy: two spinning threads (made on the gathered CPU, so they start there too) use more
    // than a CPU's share, and everything is spread over the original CPUs again.
    let spin = Arc::new(AtomicBool::new(true));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let spin = spin.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while spin.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            })
        })
        .collect();
    until("spread", || placement::gathered_on().is_none());
    assert!(placement::moves() > moves);
    until("every thread spread", || all_on(&original));
    spin.store(false, Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }

    // Calm again, gathered again; stopping the placement spreads the threads.
    until("gathered again", || placement::gathered_on().is_some());
    drop(watch);
    assert_eq!(placement::gathered_on(), None);
    assert!(all_on(&original), "{:?}", placement::thread_cpus());
}
