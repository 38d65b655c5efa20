//! The one error contract: every error type, and the one place where an error becomes an
//! HTTP status, a WebSocket close code and a stable snake_case word (the `error` frame's
//! `code`, the JSON body's `error`). The snippet and the viewer share these words through
//! `js-snippet/src/protocol.ts`, which a test checks against [`IngestError::catalogue`],
//! [`ApiError::catalogue`] and [`ViewerClose::ALL`].
//!
//! Keys and tokens, everywhere: a missing one is 401; one that is unknown, or not allowed for
//! that site or origin, is 403.

use std::path::PathBuf;

use http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

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

/// Why an ingest connection or request (snippet or tracker app) is refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum IngestError {
    #[error("a write key is required: as ?key=, in the path, or as the basic-auth password")]
    MissingKey,
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
    #[error("full-page replay is not enabled for this site ([[site]] dom = true)")]
    DomDisabled,
    #[error("this session sent more full-page replay data than its site allows ({0})")]
    DomLimit(&'static str),
    #[error("nothing received within the idle timeout")]
    IdleTimeout,
    #[error("the client does not read what the server sends")]
    NotReading,
    #[error("the request body arrived too slowly")]
    BodyTimeout,
    #[error("the server holds too many unfinished uploads; retry later")]
    Busy,
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

    /// One value of every variant, for the tests that walk the contract and check the
    /// snippet's copy of it.
    pub fn catalogue() -> Vec<IngestError> {
        use IngestError::*;
        vec![
            MissingKey,
            BadKey,
            OriginNotAllowed,
            HelloRequired,
            HelloTimeout,
            UnexpectedHello,
            Malformed(String::new()),
            IngestError::invalid("", ""),
            UnknownEventKind(0),
            UnsupportedVersion(0),
            FrameTooLarge(0),
            BatchTooLarge(0),
            RateLimited,
            DomDisabled,
            DomLimit(""),
            IdleTimeout,
            NotReading,
            BodyTimeout,
            Busy,
            StoreUnavailable,
            ShuttingDown,
            Internal,
        ]
    }

    /// Everything about a variant at once: (word, close code, HTTP status). The match has no
    /// wildcard, so a new variant cannot be added without its row.
    fn contract(&self) -> (&'static str, u16, StatusCode) {
        use IngestError::*;
        match self {
            MissingKey => ("key_required", 1008, StatusCode::UNAUTHORIZED),
            BadKey => ("bad_key", 1008, StatusCode::FORBIDDEN),
            OriginNotAllowed => ("origin_not_allowed", 1008, StatusCode::FORBIDDEN),
            HelloRequired => ("hello_required", 1008, StatusCode::BAD_REQUEST),
            HelloTimeout => ("hello_timeout", 1008, StatusCode::REQUEST_TIMEOUT),
            UnexpectedHello => ("unexpected_hello", 1008, StatusCode::BAD_REQUEST),
            Malformed(_) => ("malformed_frame", 1007, StatusCode::BAD_REQUEST),
            InvalidField { .. } => ("invalid_field", 1007, StatusCode::BAD_REQUEST),
            UnknownEventKind(_) => ("unknown_event_kind", 1007, StatusCode::BAD_REQUEST),
            UnsupportedVersion(_) => ("unsupported_version", 1007, StatusCode::BAD_REQUEST),
            FrameTooLarge(_) => ("frame_too_large", 1009, StatusCode::PAYLOAD_TOO_LARGE),
            BatchTooLarge(_) => ("batch_too_large", 1009, StatusCode::PAYLOAD_TOO_LARGE),
            RateLimited => ("rate_limited", 1008, StatusCode::TOO_MANY_REQUESTS),
            DomDisabled => ("dom_disabled", 1008, StatusCode::FORBIDDEN),
            DomLimit(_) => ("dom_limit", 1008, StatusCode::TOO_MANY_REQUESTS),
            IdleTimeout => ("idle_timeout", 1000, StatusCode::REQUEST_TIMEOUT),
            NotReading => ("not_reading", 1008, StatusCode::REQUEST_TIMEOUT),
            BodyTimeout => ("body_timeout", 1008, StatusCode::REQUEST_TIMEOUT),
            Busy => ("busy", 1013, StatusCode::SERVICE_UNAVAILABLE),
            StoreUnavailable => ("store_unavailable", 1011, StatusCode::SERVICE_UNAVAILABLE),
            ShuttingDown => ("shutting_down", 1001, StatusCode::SERVICE_UNAVAILABLE),
            Internal => ("internal", 1011, StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The stable word of the `error` frame and the JSON body.
    pub fn code(&self) -> &'static str {
        self.contract().0
    }

    /// The WebSocket close code (RFC 6455 section 7.4.1).
    pub fn close_code(&self) -> u16 {
        self.contract().1
    }

    /// The status of an HTTP answer (the fallback and the tracker apps).
    pub fn status(&self) -> StatusCode {
        self.contract().2
    }

    /// Whether resending cannot help: the snippet stops for this page.
    pub fn is_fatal(&self) -> bool {
        use IngestError::*;
        matches!(
            self,
            MissingKey
                | BadKey
                | OriginNotAllowed
                | Malformed(_)
                | InvalidField { .. }
                | UnknownEventKind(_)
                | UnsupportedVersion(_)
                | FrameTooLarge(_)
                | BatchTooLarge(_)
        )
    }
}

/// Why a tracker app's request was refused. The message says which field and why, for the people
/// setting up the app.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpsError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("body: {0}")]
    Body(String),
    #[error("more than {0} positions in one request")]
    TooMany(usize),
}

impl GpsError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        GpsError::Invalid {
            field: field.into(),
            reason: reason.into(),
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

/// Why an HTTP request is refused, whichever route it reached (or none).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a read token is required")]
    Unauthorized,
    #[error("this is not a read token")]
    BadToken,
    #[error("this read token is for another site")]
    OtherSite,
    #[error("not found")]
    NotFound,
    #[error("no such endpoint")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("Content-Length required")]
    LengthRequired,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("body too large{}", .0.map(|n| format!(" (at most {n} bytes)")).unwrap_or_default())]
    TooLarge(Option<usize>),
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Position(#[from] GpsError),
}

impl ApiError {
    /// One value of every variant that has a word of its own (`Ingest` has its own
    /// catalogue).
    pub fn catalogue() -> Vec<ApiError> {
        use ApiError::*;
        vec![
            Unauthorized,
            BadToken,
            OtherSite,
            NotFound,
            NoRoute,
            MethodNotAllowed,
            LengthRequired,
            BadRequest(String::new()),
            TooLarge(None),
            Store(StoreError::Unavailable(String::new())),
            Position(GpsError::invalid("", "")),
            Position(GpsError::TooMany(0)),
        ]
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadToken | ApiError::OtherSite => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::LengthRequired => StatusCode::LENGTH_REQUIRED,
            ApiError::BadRequest(_) | ApiError::Position(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Ingest(e) => e.status(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadToken => "bad_token",
            ApiError::OtherSite => "other_site",
            ApiError::NotFound | ApiError::NoRoute => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::LengthRequired => "length_required",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::TooLarge(_) => "frame_too_large",
            ApiError::Store(_) => "store_unavailable",
            ApiError::Position(GpsError::TooMany(_)) => "too_many_positions",
            ApiError::Position(_) => "invalid_position",
            ApiError::Ingest(e) => e.code(),
        }
    }

    /// What warp's own rejections mean in this contract (checked in this order: warp
    /// reports "method not allowed" for any route whose path matched, even when another
    /// route's rejection says more). Ours are answered as they are.
    pub fn answer_rejection(r: &warp::Rejection) -> Response {
        if let Some(e) = r.find::<ApiError>() {
            return e.response();
        }
        let e = if r.is_not_found() {
            ApiError::NoRoute
        } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
            ApiError::TooLarge(None)
        } else if r.find::<warp::reject::LengthRequired>().is_some() {
            ApiError::LengthRequired
        } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
            ApiError::MethodNotAllowed
        } else {
            ApiError::BadRequest(format!("{r:?}"))
        };
        e.response()
    }

    /// `{"error": word, "message": text}` with the error's status; a missing write key also
    /// names the basic-auth scheme that tracker apps can answer with.
    pub fn response(&self) -> Response {
        let mut body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        if let ApiError::Ingest(e) = self {
            body["fatal"] = e.is_fatal().into();
        }
        let mut res =
            warp::reply::with_status(warp::reply::json(&body), self.status()).into_response();
        if matches!(self, ApiError::Ingest(IngestError::MissingKey)) {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"spoor\""),
            );
        }
        res
    }
}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        self.response()
    }
}

/// Why a geofence is refused (`POST`/`PUT /api/geofences`): each a 400 that says what to fix.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FenceError {
    #[error("a geofence needs either `circle` or `polygon`, not both and not neither")]
    Shape,
    #[error("`name` must be 1 to 200 characters")]
    Name,
    #[error("coordinates out of range: lat must be -90..90 and lon -180..180 ({0}, {1})")]
    Coordinates(f64, f64),
    #[error("`radius_m` must be more than 0 and at most 100 km (got {0})")]
    Radius(f64),
    #[error("a polygon needs at least 3 distinct vertices")]
    TooFewVertices,
    #[error("a polygon has at most {max} vertices (got {got})")]
    TooManyVertices { max: usize, got: usize },
    #[error("the polygon is not simple: {0}")]
    SelfIntersecting(String),
    #[error("a polygon may span at most 10 degrees of latitude or longitude")]
    TooLarge,
    #[error("this site has {0} geofences already, the most it may have")]
    TooMany(usize),
}

/// Why the server closes a live viewer's socket (session follow and `/api/live`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerClose {
    /// The viewer fell more than the live buffer behind, or stopped reading.
    TooSlow,
    /// The live feed ended.
    FeedClosed,
    /// The server is shutting down.
    ShuttingDown,
}

impl ViewerClose {
    pub const ALL: [ViewerClose; 3] = [
        ViewerClose::TooSlow,
        ViewerClose::FeedClosed,
        ViewerClose::ShuttingDown,
    ];

    /// The close frame's reason.
    pub fn code(self) -> &'static str {
        match self {
            ViewerClose::TooSlow => "viewer_too_slow",
            ViewerClose::FeedClosed => "closed",
            ViewerClose::ShuttingDown => "shutting_down",
        }
    }

    pub fn close_code(self) -> u16 {
        match self {
            ViewerClose::TooSlow => 1008,
            ViewerClose::FeedClosed | ViewerClose::ShuttingDown => 1001,
        }
    }
}

/// API answers (recorded sessions, positions, errors) are for the one client that asked: no
/// cache along the way may keep them, and no browser may sniff them into another type.
pub fn private(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract as DESIGN.md and docs/protocol.md state it, row by row.
    #[test]
    fn every_ingest_error_has_its_word_close_code_and_status() {
        let want: &[(&str, u16, u16, bool)] = &[
            ("key_required", 1008, 401, true),
            ("bad_key", 1008, 403, true),
            ("origin_not_allowed", 1008, 403, true),
            ("hello_required", 1008, 400, false),
            ("hello_timeout", 1008, 408, false),
            ("unexpected_hello", 1008, 400, false),
            ("malformed_frame", 1007, 400, true),
            ("invalid_field", 1007, 400, true),
            ("unknown_event_kind", 1007, 400, true),
            ("unsupported_version", 1007, 400, true),
            ("frame_too_large", 1009, 413, true),
            ("batch_too_large", 1009, 413, true),
            ("rate_limited", 1008, 429, false),
            ("dom_disabled", 1008, 403, false),
            ("dom_limit", 1008, 429, false),
            ("idle_timeout", 1000, 408, false),
            ("not_reading", 1008, 408, false),
            ("body_timeout", 1008, 408, false),
            ("busy", 1013, 503, false),
            ("store_unavailable", 1011, 503, false),
            ("shutting_down", 1001, 503, false),
            ("internal", 1011, 500, false),
        ];
        let got: Vec<(&str, u16, u16, bool)> = IngestError::catalogue()
            .iter()
            .map(|e| (e.code(), e.close_code(), e.status().as_u16(), e.is_fatal()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn every_api_error_has_its_word_and_status() {
        let want: &[(&str, u16)] = &[
            ("unauthorized", 401),
            ("bad_token", 403),
            ("other_site", 403),
            ("not_found", 404),
            ("not_found", 404),
            ("method_not_allowed", 405),
            ("length_required", 411),
            ("bad_request", 400),
            ("frame_too_large", 413),
            ("store_unavailable", 503),
            ("invalid_position", 400),
            ("too_many_positions", 400),
        ];
        let got: Vec<(&str, u16)> = ApiError::catalogue()
            .iter()
            .map(|e| (e.code(), e.status().as_u16()))
            .collect();
        assert_eq!(got, want);
        let wrapped = ApiError::from(IngestError::BadKey);
        assert_eq!(
            (wrapped.code(), wrapped.status().as_u16()),
            ("bad_key", 403)
        );
    }

    #[test]
    fn answers_carry_the_word_the_message_and_the_status() {
        let res = ApiError::from(IngestError::MissingKey).into_response();
        assert_eq!(res.status(), 401);
        assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
        let res = ApiError::BadToken.into_response();
        assert_eq!(res.status(), 403);
        assert!(!res.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn viewer_closes_have_words_and_codes() {
        let got: Vec<(&str, u16)> = ViewerClose::ALL
            .iter()
            .map(|c| (c.code(), c.close_code()))
            .collect();
        assert_eq!(
            got,
            [
                ("viewer_too_slow", 1008),
                ("closed", 1001),
                ("shutting_down", 1001)
            ]
        );
    }
}
