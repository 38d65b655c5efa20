//! Error types, and the one place where errors become WebSocket close codes, `error` frame
//! codes and HTTP statuses.

use std::path::PathBuf;

use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Why an ingest connection or request is refused. Each variant has a stable snake_case code
/// (the `error` frame's `code`, the JSON body's `error`), a WebSocket close code and an HTTP
/// status, as DESIGN.md fixes them.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum IngestError {
    #[error("unknown write key")]
    BadKey,
    #[error("origin not allowed for this site")]
    OriginNotAllowed,
    #[error("the first frame must be a hello")]
    HelloRequired,
    #[error("no hello within the hello timeout")]
    HelloTimeout,
    #[error("hello sent twice on one socket")]
    UnexpectedHello,
    #[error("frame could not be decoded: {0}")]
    Malformed(String),
    #[error("invalid field {field}: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("unknown event kind {0}")]
    UnknownEventKind(i64),
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(i64),
    #[error("frame larger than {0} bytes")]
    FrameTooLarge(usize),
    #[error("batch has more than {0} events")]
    BatchTooLarge(usize),
    #[error("rate limit exceeded")]
    RateLimited,
    #[error("nothing received within the idle timeout")]
    IdleTimeout,
    #[error("the store failed; resend what was not acknowledged")]
    StoreUnavailable,
    #[error("the server is shutting down; resend what was not acknowledged")]
    ShuttingDown,
    #[error("internal error")]
    Internal,
}

impl IngestError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        IngestError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The stable code of the `error` frame.
    pub fn code(&self) -> &'static str {
        use IngestError::*;
        match self {
            BadKey => "bad_key",
            OriginNotAllowed => "origin_not_allowed",
            HelloRequired => "hello_required",
            HelloTimeout => "hello_timeout",
            UnexpectedHello => "unexpected_hello",
            Malformed(_) => "malformed_frame",
            InvalidField { .. } => "invalid_field",
            UnknownEventKind(_) => "unknown_event_kind",
            UnsupportedVersion(_) => "unsupported_version",
            FrameTooLarge(_) => "frame_too_large",
            BatchTooLarge(_) => "batch_too_large",
            RateLimited => "rate_limited",
            IdleTimeout => "idle_timeout",
            StoreUnavailable => "store_unavailable",
            ShuttingDown => "shutting_down",
            Internal => "internal",
        }
    }

    /// The WebSocket close code (RFC 6455 section 7.4.1).
    pub fn close_code(&self) -> u16 {
        use IngestError::*;
        match self {
            Malformed(_) | InvalidField { .. } | UnknownEventKind(_) | UnsupportedVersion(_) => {
                1007
            }
            BadKey | OriginNotAllowed | HelloRequired | HelloTimeout | UnexpectedHello
            | RateLimited => 1008,
            FrameTooLarge(_) | BatchTooLarge(_) => 1009,
            IdleTimeout => 1000,
            ShuttingDown => 1001,
            StoreUnavailable | Internal => 1011,
        }
    }

    /// The status of the HTTP fallback's answer.
    pub fn status(&self) -> StatusCode {
        use IngestError::*;
        match self {
            BadKey => StatusCode::UNAUTHORIZED,
            OriginNotAllowed => StatusCode::FORBIDDEN,
            FrameTooLarge(_) | BatchTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            StoreUnavailable | ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            HelloTimeout | IdleTimeout => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A store operation failed. `Unavailable` is transient (disk full, database unreachable):
/// the batches are not acked and clients resend. `Corrupt` means stored data could not be
/// read back.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Errors of the read API, each with its HTTP status and code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid read token is required")]
    Unauthorized,
    #[error("this read token is for another site")]
    OtherSite,
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::OtherSite => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Ingest(e) => e.status(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::OtherSite => "other_site",
            ApiError::NotFound => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::TooLarge(_) => "frame_too_large",
            ApiError::Store(_) => "store_unavailable",
            ApiError::Ingest(e) => e.code(),
        }
    }
}

impl warp::reject::Reject for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_follow_the_contract() {
        assert_eq!(IngestError::Malformed("x".into()).close_code(), 1007);
        assert_eq!(IngestError::invalid("sid", "bad").close_code(), 1007);
        assert_eq!(IngestError::BadKey.close_code(), 1008);
        assert_eq!(IngestError::OriginNotAllowed.close_code(), 1008);
        assert_eq!(IngestError::HelloRequired.close_code(), 1008);
        assert_eq!(IngestError::RateLimited.close_code(), 1008);
        assert_eq!(IngestError::FrameTooLarge(1).close_code(), 1009);
        assert_eq!(IngestError::BatchTooLarge(1).close_code(), 1009);
        assert_eq!(IngestError::Internal.close_code(), 1011);
        assert_eq!(IngestError::StoreUnavailable.close_code(), 1011);
    }
}
