//! Classifying driver errors: what a failed write means for the batches in it.
//!
//! - a duplicate key (11000) on our own `_id`s: the record is already stored (a resend);
//! - transient (network, no primary, pool cleared, write concern not yet satisfied,
//!   `RetryableWriteError`): not durable now, the client resends and it will work later;
//! - anything else is fatal for that request (a bug or a misconfiguration) and logged as
//!   such; the client still resends, and the store stays up.
//!
//! The decision is made on plain facts pulled out of the driver's error, so the rules are
//! unit-tested without a server.

use mongodb::error::{Error, ErrorKind, WriteFailure};

use crate::error::StoreError;

pub const DUPLICATE_KEY: i32 = 11000;

/// Server error codes that mean "try again later" (from the server's retryable list).
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
    64,    // WriteConcernFailed
    50,    // MaxTimeMSExpired
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Duplicate,
    Transient,
    Fatal,
}

/// What the classification looks at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// Per-document write errors: (index in the request, code).
    pub write_errors: Vec<(usize, i32)>,
    /// The command's own error code, if the whole command failed.
    pub code: Option<i32>,
    /// The write concern was not satisfied (the writes may not be durable).
    pub write_concern_failed: bool,
    /// A network, server-selection or pool error, or a retryable label.
    pub transient: bool,
}

pub fn facts(e: &Error) -> Facts {
    let mut f = Facts {
        transient: e.contains_label("RetryableWriteError")
            || e.contains_label("TransientTransactionError")
            || e.contains_label("ResumableChangeStreamError"),
        ..Facts::default()
    };
    match e.kind.as_ref() {
        ErrorKind::InsertMany(im) => {
            f.write_errors = im
                .write_errors
                .iter()
                .flatten()
                .map(|w| (w.index, w.code))
                .collect();
            f.write_concern_failed = im.write_concern_error.is_some();
        }
        ErrorKind::Write(WriteFailure::WriteError(w)) => f.write_errors = vec![(0, w.code)],
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => f.write_concern_failed = true,
        ErrorKind::Command(c) => f.code = Some(c.code),
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => f.transient = true,
        _ => {}
    }
    f
}

/// The class of a whole failed request.
pub fn classify(f: &Facts) -> Class {
    if f.write_concern_failed || f.transient {
        return Class::Transient;
    }
    if let Some(code) = f.code {
        return if TRANSIENT_CODES.contains(&code) {
            Class::Transient
        } else if code == DUPLICATE_KEY {
            Class::Duplicate
        } else {
            Class::Fatal
        };
    }
    if f.write_errors.is_empty() {
        return Class::Fatal;
    }
    if f.write_errors.iter().all(|&(_, c)| c == DUPLICATE_KEY) {
        Class::Duplicate
    } else if f
        .write_errors
        .iter()
        .all(|&(_, c)| c == DUPLICATE_KEY || TRANSIENT_CODES.contains(&c))
    {
        Class::Transient
    } else {
        Class::Fatal
    }
}

/// The outcome of an unordered insert: the indexes that were already stored, or the error
/// that makes the request not durable.
pub fn duplicates(result: Result<(), Error>) -> Result<Vec<usize>, StoreError> {
    let Err(e) = result else {
        return Ok(Vec::new());
    };
    let f = facts(&e);
    match classify(&f) {
        Class::Duplicate => Ok(f.write_errors.iter().map(|&(i, _)| i).collect()),
        class => Err(to_store_error(class, &e)),
    }
}

pub fn to_store_error(class: Class, e: &Error) -> StoreError {
    if class == Class::Fatal {
        tracing::error!(error = %e, "MongoDB refused a request.");
    }
    StoreError::Unavailable(format!("MongoDB: {e}"))
}

/// Any driver error as a store error, logged by its class.
pub fn store_error(e: Error) -> StoreError {
    to_store_error(classify(&facts(&e)), &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_alone_mean_already_stored() {
        let f = Facts {
            write_errors: vec![(0, 11000), (3, 11000)],
            ..Facts::default()
        };
        assert_eq!(classify(&f), Class::Duplicate);
    }

    #[test]
    fn a_write_concern_failure_is_never_durable() {
        let f = Facts {
            write_errors: vec![(0, 11000)],
            write_concern_failed: true,
            ..Facts::default()
        };
        assert_eq!(classify(&f), Class::Transient);
    }

    #[test]
    fn network_and_elections_are_transient() {
        let net = Facts {
            transient: true,
            ..Facts::default()
        };
        assert_eq!(classify(&net), Class::Transient);
        for code in [10107, 189, 91, 11602] {
            let f = Facts {
                code: Some(code),
                ..Facts::default()
            };
            assert_eq!(classify(&f), Class::Transient, "{code}");
        }
        let mixed = Facts {
            write_errors: vec![(0, 11000), (1, 10107)],
            ..Facts::default()
        };
        assert_eq!(classify(&mixed), Class::Transient);
    }

    #[test]
    fn other_errors_are_fatal() {
        // 2: BadValue; 121: DocumentValidationFailure; 13: Unauthorized.
        for f in [
            Facts {
                code: Some(13),
                ..Facts::default()
            },
            Facts {
                write_errors: vec![(0, 121)],
                ..Facts::default()
            },
            Facts {
                write_errors: vec![(0, 11000), (1, 2)],
                ..Facts::default()
            },
            Facts::default(),
        ] {
            assert_eq!(classify(&f), Class::Fatal, "{f:?}");
        }
    }

    #[test]
    fn facts_from_driver_errors() {
        let io = Error::from(ErrorKind::Io(std::sync::Arc::new(std::io::Error::other(
            "reset",
        ))));
        assert!(facts(&io).transient);
        assert!(matches!(
            duplicates(Err(io)),
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(duplicates(Ok(())).unwrap(), Vec::<usize>::new());
        let custom = Error::custom("x");
        assert_eq!(classify(&facts(&custom)), Class::Fatal);
    }
}
