//! One-use tickets for WebSockets. A browser cannot put a header on a WebSocket, so the UI's
//! live sockets used to carry the long-lived read token in their URL, where proxy and access
//! logs keep it. Now the UI trades its token (sent as a header) for a ticket that opens one
//! socket within a short time, and only the ticket goes in the URL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a ticket may wait before it is used.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// Tickets waiting at most: issuing past it drops the oldest first.
const MAX_TICKETS: usize = 10_000;

/// What a ticket grants: what the token that bought it could read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Every site (the global read token).
    All,
    /// One site (that site's read token).
    Site(String),
}

/// Tickets issued and not yet used.
#[derive(Debug, Default)]
pub struct Tickets {
    open: Mutex<HashMap<String, (Grant, Instant)>>,
}

impl Tickets {
    /// A new ticket for `grant`, valid once within [`TICKET_TTL`].
    pub fn issue(&self, grant: Grant) -> String {
        // Without an entropy source there is no safe ticket; the UI then falls back to
        // nothing (the socket is refused), never to a guessable one.
        let Some(ticket) = crate::config::bootstrap::try_random_token("tk_") else {
            return String::new();
        };
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, (_, at)| now.duration_since(*at) < TICKET_TTL);
        if open.len() >= MAX_TICKETS {
            if let Some(oldest) = open
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                open.remove(&oldest);
            }
        }
        open.insert(ticket.clone(), (grant, now));
        ticket
    }

    /// Uses a ticket up: its grant if it was issued, unused and not expired.
    pub fn redeem(&self, ticket: &str) -> Option<Grant> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (grant, at) = open.remove(ticket)?;
        (at.elapsed() < TICKET_TTL).then_some(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_once() {
        let t = Tickets::default();
        let a = t.issue(Grant::Site("shop".into()));
        assert!(a.starts_with("tk_") && a.len() == 51);
        assert_eq!(t.redeem(&a), Some(Grant::Site("shop".into())));
        assert_eq!(t.redeem(&a), None, "used up");
        assert_eq!(t.redeem("tk_never_issued"), None);
        let b = t.issue(Grant::All);
        assert_ne!(a, b);
    }
}
