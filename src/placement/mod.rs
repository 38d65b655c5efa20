//! Where the server's threads run: all on one CPU while the load is light, spread over every
//! CPU the process may use once it is not.
//!
//! A batch crosses threads on its way to its ack: the runtime worker hands the group to the
//! store's sync lane (a large group to the write lane first), and each hands it back. At a light
//! load each of those threads sleeps between groups, and the kernel wakes a sleeping thread
//! on an idle CPU if it has one. That costs far more than a switch between threads on one
//! CPU, at least in a virtual machine (where an idle vCPU halts and is woken through the
//! hypervisor; the cause is inferred, the cost measured): on the 2-vCPU VM of
//! `docs/benchmarks.md`, gathering cut the CPU per event at the steady load by 14 % (pinning
//! bare-durable, 25 %). Under a full load the lanes need a CPU of their own: one CPU cut the
//! most events a second by 18 %.
//!
//! So a thread of its own looks four times a second at the process's CPU time and at how
//! busy each CPU is. After a second below [`GATHER_BELOW`] of a CPU (or at its first look, as
//! the server starts) it gathers every thread on the least busy CPU; the moment the process
//! uses more than [`SPREAD_ABOVE`], or that CPU is nearly full (another process wants it
//! too), it spreads them again. Threads made later inherit their maker's CPUs.
//! `[pipeline] gather_threads = false` turns it off; it runs only for the embedded store,
//! whose lanes are the hand-offs it saves (with MongoDB the other side of each commit is
//! another process), and only on Linux.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Gather when the process used less than this share of one CPU for [`CALM_TICKS`] ticks.
pub const GATHER_BELOW: f64 = 0.3;
/// Spread when the process uses more than this share of one CPU.
pub const SPREAD_ABOVE: f64 = 0.6;
/// Spread when the CPU the threads are gathered on is busier than this (by anyone).
pub const CPU_FULL: f64 = 0.9;
/// Gather only onto a CPU whose busy share plus the process's own stays under this.
pub const GATHER_ROOM: f64 = 0.7;
/// Ticks below [`GATHER_BELOW`] before gathering.
pub const CALM_TICKS: u32 = 4;
/// Ticks after a move before the next decision: the first one pays for the move.
const SETTLE_TICKS: u32 = 2;

/// The CPU the threads are gathered on, or -1 while they are spread.
static GATHERED_ON: AtomicI64 = AtomicI64::new(-1);
/// Moves so far, either way.
static MOVES: AtomicU64 = AtomicU64::new(0);

/// The CPU the process's threads are gathered on now, if they are.
pub fn gathered_on() -> Option<usize> {
    usize::try_from(GATHERED_ON.load(Ordering::Relaxed)).ok()
}

/// How many times the threads were gathered or spread since the start.
pub fn moves() -> u64 {
    MOVES.load(Ordering::Relaxed)
}

/// What to do after a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Stay,
    Gather(usize),
    Spread,
}

/// The rule, apart from the system calls that measure and move, so that it is tested alone.
#[derive(Debug, Default)]
pub struct Policy {
    gathered: Option<usize>,
    calm: u32,
    settle: u32,
}

impl Policy {
    /// The rule as a server starts: with no load behind it, so its first calm tick gathers.
    pub fn at_start() -> Self {
        Policy {
            calm: CALM_TICKS - 1,
            ..Policy::default()
        }
    }

    /// One tick: `own` is the process's CPU time over the tick as a share of one CPU, `busy`
    /// each CPU it may use with that CPU's busy share (every process's) over the tick.
    pub fn decide(&mut self, own: f64, busy: &[(usize, f64)]) -> Decision {
        if self.settle > 0 {
            self.settle -= 1;
            return Decision::Stay;
        }
        if let Some(cpu) = self.gathered {
            let full = busy.iter().any(|&(c, b)| c == cpu && b > CPU_FULL);
            if own > SPREAD_ABOVE || full {
                self.gathered = None;
                self.calm = 0;
                self.settle = SETTLE_TICKS;
                return Decision::Spread;
            }
            return Decision::Stay;
        }
        self.calm = if own < GATHER_BELOW {
            self.calm.saturating_add(1)
        } else {
            0
        };
        if self.calm < CALM_TICKS || busy.len() < 2 {
            return Decision::Stay;
        }
        let least = busy
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        match least {
            Some((cpu, b)) if b + own < GATHER_ROOM => {
                self.gathered = Some(cpu);
                self.settle = SETTLE_TICKS;
                Decision::Gather(cpu)
            }
            _ => Decision::Stay,
        }
    }
}

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{spawn, thread_cpus, Placement};

/// Elsewhere the threads stay where the system puts them.
#[cfg(not(target_os = "linux"))]
pub fn spawn(_tick: std::time::Duration) -> Option<Placement> {
    None
}

/// Nothing to stop where nothing runs.
#[cfg(not(target_os = "linux"))]
pub struct Placement;

fn note(gathered: Option<usize>) {
    GATHERED_ON.store(gathered.map_or(-1, |c| c as i64), Ordering::Relaxed);
    MOVES.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two(b0: f64, b1: f64) -> Vec<(usize, f64)> {
        vec![(0, b0), (1, b1)]
    }

    #[test]
    fn gathers_on_the_least_busy_cpu_after_a_calm_second_and_spreads_at_once_under_load() {
        let mut p = Policy::default();
        for _ in 0..CALM_TICKS - 1 {
            assert_eq!(p.decide(0.1, &two(0.5, 0.2)), Decision::Stay);
        }
        assert_eq!(p.decide(0.1, &two(0.5, 0.2)), Decision::Gather(1));
        for _ in 0..SETTLE_TICKS {
            assert_eq!(p.decide(0.9, &two(0.5, 0.9)), Decision::Stay, "settling");
        }
        assert_eq!(p.decide(0.2, &two(0.5, 0.3)), Decision::Stay);
        assert_eq!(p.decide(0.61, &two(0.5, 0.7)), Decision::Spread);
    }

    #[test]
    fn a_starting_server_gathers_at_its_first_calm_tick() {
        let mut p = Policy::at_start();
        assert_eq!(p.decide(0.5, &two(0.5, 0.2)), Decision::Stay, "busy start");
        let mut p = Policy::at_start();
        assert_eq!(p.decide(0.01, &two(0.5, 0.2)), Decision::Gather(1));
    }

    #[test]
    fn a_busy_tick_restarts_the_calm_count() {
        let mut p = Policy::default();
        for _ in 0..CALM_TICKS - 1 {
            p.decide(0.1, &two(0.1, 0.1));
        }
        assert_eq!(p.decide(0.35, &two(0.1, 0.1)), Decision::Stay);
        for _ in 0..CALM_TICKS - 1 {
            assert_eq!(p.decide(0.1, &two(0.1, 0.1)), Decision::Stay);
        }
        assert_eq!(p.decide(0.1, &two(0.1, 0.1)), Decision::Gather(0));
    }

    #[test]
    fn spreads_when_another_process_fills_the_cpu_and_gathers_elsewhere_later() {
        let mut p = Policy::default();
        for _ in 0..CALM_TICKS {
            p.decide(0.1, &two(0.1, 0.3));
        }
        for _ in 0..SETTLE_TICKS {
            p.decide(0.1, &two(0.2, 0.3));
        }
        // Our share is small, but CPU 0 is full: someone else needs it.
        assert_eq!(p.decide(0.1, &two(0.95, 0.3)), Decision::Spread);
        for _ in 0..SETTLE_TICKS + CALM_TICKS - 1 {
            assert_eq!(p.decide(0.1, &two(0.95, 0.3)), Decision::Stay);
        }
        assert_eq!(p.decide(0.1, &two(0.95, 0.3)), Decision::Gather(1));
    }

    #[test]
    fn never_gathers_onto_a_cpu_without_room_or_with_one_cpu() {
        let mut p = Policy::default();
        for _ in 0..20 {
            assert_eq!(p.decide(0.25, &two(0.5, 0.6)), Decision::Stay);
        }
        let mut one = Policy::default();
        for _ in 0..20 {
            assert_eq!(one.decide(0.0, &[(0, 0.0)]), Decision::Stay);
        }
    }
}
