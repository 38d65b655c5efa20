//! Rate limits: batches per second per session and per site key (token buckets), and open
//! sockets per client IP. A write key is public, so these are what keep one abusive page or
//! script from taking the pipeline from everyone else; a client over its rate gets
//! `rate_limited` (close 1008) and others are unaffected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A token bucket: `rate` tokens a second, holding at most `burst`. A rate of 0 is unlimited.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate: u32, burst: u32) -> Self {
        Bucket {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes `n` tokens if there are enough.
    pub fn take(&mut self, n: u32, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= f64::from(n) {
            self.tokens -= f64::from(n);
            true
        } else {
            false
        }
    }
}

/// One bucket per site key, shared by all its sessions.
#[derive(Debug, Default)]
pub struct KeyLimits {
    buckets: HashMap<String, KeyBucket>,
}

impl KeyLimits {
    pub fn new<'a>(sites: impl Iterator<Item = &'a str>, rate: u32, burst: u32) -> Self {
        let bucket =
            || KeyBucket((rate > 0).then(|| Arc::new(Mutex::new(Bucket::new(rate, burst)))));
        KeyLimits {
            buckets: sites.map(|s| (s.to_owned(), bucket())).collect(),
        }
    }

    pub fn take(&self, site: &str, n: u32, now: Instant) -> bool {
        self.bucket(site).take(n, now)
    }

    /// A site's bucket, to keep: a session looks it up once, not once a batch.
    pub fn bucket(&self, site: &str) -> KeyBucket {
        self.buckets.get(site).cloned().unwrap_or_default()
    }
}

/// One site key's bucket, shared; none when the key's rate is unlimited.
#[derive(Debug, Clone, Default)]
pub struct KeyBucket(Option<Arc<Mutex<Bucket>>>);

impl KeyBucket {
    /// Takes `n` tokens if there are enough (always, when unlimited).
    pub fn take(&self, n: u32, now: Instant) -> bool {
        match &self.0 {
            // The lock is held for a few arithmetic operations; nothing awaits under it.
            Some(b) => b.lock().unwrap_or_else(|p| p.into_inner()).take(n, now),
            None => true,
        }
    }
}

/// Open sockets per client IP.
#[derive(Debug, Default)]
pub struct IpSessions {
    max: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// Holds one socket's place; gives it back when dropped.
#[derive(Debug)]
pub struct IpSlot {
    sessions: Arc<IpSessions>,
    ip: IpAddr,
}

impl IpSessions {
    /// `max` 0 is unlimited.
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(IpSessions {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more socket from `ip`, if it has fewer than the maximum open. IPv6
    /// clients count by /64: one host usually holds a whole /64.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let ip = group(ip);
        if self.max == 0 {
            return Some(IpSlot {
                sessions: self.clone(),
                ip,
            });
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            sessions: self.clone(),
            ip,
        })
    }
}

/// The address a client counts as: IPv4 (and IPv4-mapped) as is, IPv6 by its /64.
pub fn group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if self.sessions.max == 0 {
            return;
        }
        let mut open = self.sessions.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let limit = IpSessions::new(1);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _held = limit.enter(a).unwrap();
        assert!(limit.enter(b).is_none(), "same /64");
        assert!(limit.enter(other).is_some(), "another /64");
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(group(v4), v4);
        assert_eq!(group("::ffff:10.0.0.1".parse().unwrap()), v4);
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t = Instant::now();
        let mut b = Bucket::new(10, 5);
        assert!((0..5).all(|_| b.take(1, t)));
        assert!(!b.take(1, t), "burst spent");
        assert!(
            b.take(1, t + Duration::from_millis(100)),
            "0.1 s refills one"
        );
        assert!(!b.take(1, t + Duration::from_millis(100)));
        assert!(Bucket::new(0, 0).take(1_000_000, t), "rate 0 is unlimited");
    }

    #[test]
    fn ip_slots_are_counted_and_given_back() {
        let s = IpSessions::new(2);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let a = s.enter(ip).unwrap();
        let _b = s.enter(ip).unwrap();
        assert!(s.enter(ip).is_none());
        assert!(s.enter("10.1.2.4".parse().unwrap()).is_some(), "per IP");
        drop(a);
        assert!(s.enter(ip).is_some());
    }
}
