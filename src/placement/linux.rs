//! The Linux half of the placement: the process's CPU time, each CPU's busy time from
//! `/proc/stat`, and `sched_setaffinity` for every thread in `/proc/self/task`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet, Pid};
use rustix::time::{clock_gettime, ClockId};

use super::{note, Decision, Policy};

/// The running placement thread. Dropping it stops the thread, which spreads the threads
/// over the CPUs they started with if they were gathered.
pub struct Placement {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Placement {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Starts watching, one look per `tick`, unless the process may use only one CPU (or its
/// CPUs cannot be read): then there is nothing to gather.
pub fn spawn(tick: Duration) -> Option<Placement> {
    let allowed = sched_getaffinity(None).ok()?;
    let cpus = cpus_in(&allowed);
    if cpus.len() < 2 {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("spoor-placement".into())
        .spawn(move || watch(tick, &allowed, &cpus, &stopping))
        .ok()?;
    Some(Placement {
        stop,
        thread: Some(thread),
    })
}

fn watch(tick: Duration, allowed: &CpuSet, cpus: &[usize], stop: &AtomicBool) {
    let mut policy = Policy::at_start();
    // Whether the threads may be off the CPUs they started with.
    let mut moved = false;
    let mut last = (Instant::now(), process_cpu_s(), cpu_times());
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(tick);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = (Instant::now(), process_cpu_s(), cpu_times());
        let wall = now.0.duration_since(last.0).as_secs_f64();
        if wall <= 0.0 {
            continue;
        }
        let own = (now.1 - last.1) / wall;
        let busy = shares(&last.2, &now.2, cpus);
        last = now;
        let (mask, to) = match policy.decide(own, &busy) {
            Decision::Stay => continue,
            Decision::Gather(cpu) => {
                let mut one = CpuSet::new();
                one.set(cpu);
                (one, Some(cpu))
            }
            Decision::Spread => (*allowed, None),
        };
        match apply(&mask) {
            Ok(threads) => {
                moved = to.is_some();
                note(to);
                tracing::debug!(cpu = ?to, threads, own, "Threads placed.");
            }
            Err(e) => {
                // A gather may have moved some threads before it failed: spread them all.
                tracing::warn!(error = %e, "Cannot place the threads; leaving them spread.");
                moved = true;
                break;
            }
        }
    }
    if moved && apply(allowed).is_ok() && super::gathered_on().is_some() {
        note(None);
    }
}

fn cpus_in(set: &CpuSet) -> Vec<usize> {
    (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect()
}

/// The process's CPU time so far, all threads, in seconds.
fn process_cpu_s() -> f64 {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Each CPU's (busy, total) clock ticks so far, from `/proc/stat`; empty if it cannot be
/// read, and then no CPU looks busy.
fn cpu_times() -> Vec<(usize, u64, u64)> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    stat.lines().filter_map(parse_cpu_line).collect()
}

/// `cpuN user nice system idle iowait irq softirq steal …`: idle and iowait are idle, steal
/// (the hypervisor ran someone else) counts as busy. Guest time is already in user.
fn parse_cpu_line(line: &str) -> Option<(usize, u64, u64)> {
    let rest = line.strip_prefix("cpu")?;
    let (id, fields) = rest.split_once(' ')?;
    let cpu = id.parse().ok()?;
    let v: Vec<u64> = fields
        .split_ascii_whitespace()
        .take(8)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((cpu, total.saturating_sub(idle), total))
}

/// Each of `cpus` with its busy share between two readings of [`cpu_times`].
fn shares(
    before: &[(usize, u64, u64)],
    after: &[(usize, u64, u64)],
    cpus: &[usize],
) -> Vec<(usize, f64)> {
    cpus.iter()
        .map(|&cpu| {
            let find = |t: &[(usize, u64, u64)]| t.iter().find(|x| x.0 == cpu).copied();
            let share = match (find(before), find(after)) {
                (Some((_, b0, t0)), Some((_, b1, t1))) if t1 > t0 => {
                    b1.saturating_sub(b0) as f64 / (t1 - t0) as f64
                }
                _ => 0.0,
            };
            (cpu, share)
        })
        .collect()
}

/// The process's thread ids now.
fn threads() -> std::io::Result<Vec<i32>> {
    let mut tids = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            tids.push(tid);
        }
    }
    Ok(tids)
}

/// Sets every thread's CPUs to `mask`, then looks again for threads made meanwhile by one
/// not yet moved, a few times. Returns how many threads were moved.
fn apply(mask: &CpuSet) -> std::io::Result<usize> {
    let mut done = BTreeSet::new();
    for _ in 0..4 {
        let fresh: Vec<i32> = threads()?.into_iter().filter(|t| done.insert(*t)).collect();
        if fresh.is_empty() {
            break;
        }
        for tid in fresh {
            let Some(pid) = Pid::from_raw(tid) else {
                continue;
            };
            match sched_setaffinity(Some(pid), mask) {
                // The thread ended meanwhile.
                Err(rustix::io::Errno::SRCH) | Ok(()) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(done.len())
}

/// The CPUs each of the process's threads may run on now (for tests and diagnostics).
pub fn thread_cpus() -> Vec<Vec<usize>> {
    threads()
        .unwrap_or_default()
        .into_iter()
        .filter_map(Pid::from_raw)
        .filter_map(|p| sched_getaffinity(Some(p)).ok())
        .map(|s| cpus_in(&s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_stat_lines_as_busy_and_total() {
        assert_eq!(
            parse_cpu_line("cpu1 100 5 50 800 20 3 2 10 0 0"),
            Some((1, 170, 990))
        );
        assert_eq!(parse_cpu_line("cpu  1 2 3 4 5 6 7 8 0 0"), None, "the sum");
        assert_eq!(parse_cpu_line("intr 1 2 3"), None);
        let before = [(0, 100, 1000), (1, 100, 1000)];
        let after = [(0, 150, 1100), (1, 100, 1100)];
        assert_eq!(
            shares(&before, &after, &[0, 1, 7]),
            vec![(0, 0.5), (1, 0.0), (7, 0.0)]
        );
        assert!(!cpu_times().is_empty(), "this machine's /proc/stat");
    }
}
