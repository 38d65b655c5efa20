//! Protocol v1 frames: decoding and validating client frames, encoding server frames.
//!
//! MessagePack frames are validated in place by [`cursor`] and [`events`]; JSON text frames
//! are first transcoded into MessagePack, so both encodings pass the same checks and the
//! store only ever holds MessagePack `ev` bytes.

pub mod cursor;
pub mod events;
mod quick;

use bytes::Bytes;
use serde::Serialize;

use crate::config::Limits;
use crate::error::IngestError;
use crate::site::valid_id;
use cursor::{Cursor, Token};
pub use events::{ChunkStats, GpsFix};

/// The encoding of a client's frames, and so of the answers it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    MsgPack,
    Json,
}

pub const PROTOCOL_VERSION: i64 = 1;
const MAX_META_BYTES: usize = 4096;

/// A client's `hello`: the session it opens and what the page told about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Hello {
    pub sid: String,
    pub did: Option<String>,
    pub url: Option<String>,
    #[serde(rename = "ref")]
    pub referrer: Option<String>,
    pub title: Option<String>,
    pub vw: Option<f64>,
    pub vh: Option<f64>,
    pub dpr: Option<f64>,
    pub tz: Option<String>,
    pub lang: Option<String>,
}

/// A validated `batch`: `ev` is the raw MessagePack array exactly as it will be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub seq: u64,
    pub t0: i64,
    pub ev: Bytes,
    pub stats: ChunkStats,
    /// When the server decoded it (epoch ms): its receive time.
    pub rx: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClientFrame {
    Hello(Hello),
    Batch(Batch),
}

fn malformed(e: cursor::DecodeError) -> IngestError {
    IngestError::Malformed(e.0)
}

/// Decodes a JSON text frame by transcoding it to MessagePack first.
pub fn decode_json(text: &[u8], limits: &Limits, now_ms: i64) -> Result<ClientFrame, IngestError> {
    let packed = json_to_msgpack(text)?;
    decode_msgpack(&Bytes::from(packed), limits, now_ms)
}

/// Transcodes a JSON document into MessagePack (maps stay maps with string keys).
pub fn json_to_msgpack(text: &[u8]) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::with_capacity(text.len());
    let mut de = serde_json::Deserializer::from_slice(text);
    {
        let mut ser = rmp_serde::Serializer::new(&mut out);
        serde_transcode::transcode(&mut de, &mut ser)
            .map_err(|e| IngestError::Malformed(format!("invalid JSON: {e}")))?;
    }
    de.end()
        .map_err(|e| IngestError::Malformed(format!("invalid JSON: {e}")))?;
    Ok(out)
}

/// Decodes and validates one MessagePack client frame. `frame` is shared so that the
/// batch's `ev` can point into it without a copy.
pub fn decode_msgpack(
    frame: &Bytes,
    limits: &Limits,
    now_ms: i64,
) -> Result<ClientFrame, IngestError> {
    decode_frame(frame, limits, now_ms, None)
}

/// Like [`decode_msgpack`], for frames whose type is known from where they stand (the HTTP
/// fallback's `hello` and `batches`), so `t` may be left out.
pub fn decode_msgpack_as(
    frame: &Bytes,
    t: &'static str,
    limits: &Limits,
    now_ms: i64,
) -> Result<ClientFrame, IngestError> {
    decode_frame(frame, limits, now_ms, Some(t))
}

/// The HTTP fallback body `{"hello":{…},"batches":[{…},…]}` (MessagePack), split into its
/// frames without copying.
pub fn split_fallback_body(
    body: &Bytes,
    limits: &Limits,
) -> Result<(Bytes, Vec<Bytes>), IngestError> {
    let mut c = Cursor::new(body);
    let entries = match c.token().map_err(malformed)? {
        Token::Map(n) => n,
        other => {
            return Err(IngestError::Malformed(format!(
                "the body is a map, this is {}",
                other.describe()
            )))
        }
    };
    let mut hello = None;
    let mut batches = Vec::new();
    for _ in 0..entries {
        let key = match c.token().map_err(malformed)? {
            Token::Str(k) => k,
            _ => return Err(IngestError::Malformed("body keys are strings".into())),
        };
        match key {
            "hello" => {
                let start = c.pos();
                c.skip_value(limits.max_depth, limits.max_string_bytes)
                    .map_err(malformed)?;
                hello = Some(body.slice(start..c.pos()));
            }
            "batches" => {
                let n = match c.token().map_err(malformed)? {
                    Token::Array(n) => n,
                    _ => return Err(IngestError::invalid("batches", "must be an array")),
                };
                for _ in 0..n {
                    let start = c.pos();
                    c.skip_value(limits.max_depth, limits.max_string_bytes)
                        .map_err(malformed)?;
                    batches.push(body.slice(start..c.pos()));
                }
            }
            _ => c
                .skip_value(limits.max_depth, limits.max_string_bytes)
                .map_err(malformed)?,
        }
    }
    if c.remaining() != 0 {
        return Err(IngestError::Malformed("bytes after the body".into()));
    }
    let hello = hello.ok_or_else(|| IngestError::invalid("hello", "missing"))?;
    Ok((hello, batches))
}

fn decode_frame(
    frame: &Bytes,
    limits: &Limits,
    now_ms: i64,
    default_t: Option<&'static str>,
) -> Result<ClientFrame, IngestError> {
    let mut c = Cursor::new(frame);
    let entries = match c.token().map_err(malformed)? {
        Token::Map(n) => n,
        other => {
            return Err(IngestError::Malformed(format!(
                "a frame is a map, this is {}",
                other.describe()
            )))
        }
    };
    let mut t: Option<&str> = None;
    let mut v: Option<i64> = None;
    let mut seq: Option<i64> = None;
    let mut t0: Option<i64> = None;
    let mut ev: Option<(usize, usize, ChunkStats)> = None;
    let mut hello = Hello::default();
    let mut sid: Option<&str> = None;
    for _ in 0..entries {
        let key = match c.token().map_err(malformed)? {
            Token::Str(k) => k,
            other => {
                return Err(IngestError::Malformed(format!(
                    "frame keys are strings, this is {}",
                    other.describe()
                )))
            }
        };
        match key {
            "t" => t = Some(str_field(&mut c, "t")?),
            "v" => v = Some(int_field(&mut c, "v")?),
            "seq" => seq = Some(int_field(&mut c, "seq")?),
            "t0" => t0 = Some(int_field(&mut c, "t0")?),
            "ev" => {
                let start = c.pos();
                let stats = events::validate_events(&mut c, limits)?;
                ev = Some((start, c.pos(), stats));
            }
            "sid" => sid = Some(str_field(&mut c, "sid")?),
            "did" => hello.did = opt_str(&mut c, "did")?.map(str::to_owned),
            "url" => hello.url = opt_meta(&mut c, "url")?,
            "ref" => hello.referrer = opt_meta(&mut c, "ref")?,
            "title" => hello.title = opt_meta(&mut c, "title")?,
            "tz" => hello.tz = opt_meta(&mut c, "tz")?,
            "lang" => hello.lang = opt_meta(&mut c, "lang")?,
            "vw" => hello.vw = opt_num(&mut c, "vw")?,
            "vh" => hello.vh = opt_num(&mut c, "vh")?,
            "dpr" => hello.dpr = opt_num(&mut c, "dpr")?,
            _ => c
                .skip_value(limits.max_depth, limits.max_string_bytes)
                .map_err(malformed)?,
        }
    }
    if c.remaining() != 0 {
        return Err(IngestError::Malformed(format!(
            "{} bytes after the frame",
            c.remaining()
        )));
    }
    match t.or(default_t) {
        Some("hello") => {
            let v = v.unwrap_or(PROTOCOL_VERSION);
            if v != PROTOCOL_VERSION {
                return Err(IngestError::UnsupportedVersion(v));
            }
            let sid = sid.ok_or_else(|| IngestError::invalid("sid", "missing"))?;
            if !valid_id(sid, 8, 64) {
                return Err(IngestError::invalid(
                    "sid",
                    "must be 8-64 chars of [A-Za-z0-9_-]",
                ));
            }
            if let Some(did) = &hello.did {
                if !valid_id(did, 1, 64) {
                    return Err(IngestError::invalid(
                        "did",
                        "must be 1-64 chars of [A-Za-z0-9_-]",
                    ));
                }
            }
            hello.sid = sid.to_owned();
            Ok(ClientFrame::Hello(hello))
        }
        Some("batch") => {
            let seq = seq.ok_or_else(|| IngestError::invalid("seq", "missing"))?;
            if seq < 0 || seq as u64 > limits.max_seq {
                return Err(IngestError::invalid(
                    "seq",
                    format!("must be 0..={}", limits.max_seq),
                ));
            }
            let t0 = t0.ok_or_else(|| IngestError::invalid("t0", "missing"))?;
            if t0 < now_ms - limits.max_past_ms || t0 > now_ms + limits.max_future_ms {
                return Err(IngestError::invalid(
                    "t0",
                    "too far from the server's clock",
                ));
            }
            let (start, end, mut stats) =
                ev.ok_or_else(|| IngestError::invalid("ev", "missing"))?;
            for g in &mut stats.fixes {
                g.ts += t0;
            }
            // Row spans were taken in the frame; make them relative to `ev`.
            for m in &mut stats.marks {
                m.span = (m.span.0 - start, m.span.1 - start);
                m.text = m.text.map(|(a, b)| (a - start, b - start));
            }
            Ok(ClientFrame::Batch(Batch {
                seq: seq as u64,
                t0,
                ev: frame.slice(start..end),
                stats,
                rx: now_ms,
            }))
        }
        Some(other) => Err(IngestError::invalid(
            "t",
            format!("unknown frame type {other:?}"),
        )),
        None => Err(IngestError::invalid("t", "missing")),
    }
}

fn str_field<'a>(c: &mut Cursor<'a>, name: &str) -> Result<&'a str, IngestError> {
    match c.token().map_err(malformed)? {
        Token::Str(s) if s.len() <= MAX_META_BYTES => Ok(s),
        other => Err(IngestError::invalid(
            name,
            format!("is {}", other.describe()),
        )),
    }
}

fn opt_str<'a>(c: &mut Cursor<'a>, name: &str) -> Result<Option<&'a str>, IngestError> {
    match c.token().map_err(malformed)? {
        Token::Nil => Ok(None),
        Token::Str(s) if s.len() <= MAX_META_BYTES => Ok(Some(s)),
        Token::Str(_) => Err(IngestError::invalid(name, "too long")),
        other => Err(IngestError::invalid(
            name,
            format!("is {}", other.describe()),
        )),
    }
}

fn opt_meta(c: &mut Cursor<'_>, name: &str) -> Result<Option<String>, IngestError> {
    Ok(opt_str(c, name)?.map(str::to_owned))
}

fn opt_num(c: &mut Cursor<'_>, name: &str) -> Result<Option<f64>, IngestError> {
    match c.token().map_err(malformed)? {
        Token::Nil => Ok(None),
        t => t
            .as_f64()
            .map(Some)
            .ok_or_else(|| IngestError::invalid(name, format!("is {}", t.describe()))),
    }
}

fn int_field(c: &mut Cursor<'_>, name: &str) -> Result<i64, IngestError> {
    match c.token().map_err(malformed)? {
        Token::Int(i) => Ok(i),
        other => Err(IngestError::invalid(
            name,
            format!("must be an integer, is {}", other.describe()),
        )),
    }
}

/// Frames the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum ServerFrame<'a> {
    Welcome {
        sid: &'a str,
        acked: i64,
    },
    Ack {
        seq: i64,
    },
    /// `fatal`: resending cannot help (the snippet stops for the page); the server says so,
    /// so that clients need no list of words.
    Error {
        code: &'a str,
        msg: &'a str,
        fatal: bool,
    },
}

impl ServerFrame<'_> {
    /// Encodes the frame; `Err` never happens for these types but is not unwrapped here.
    pub fn encode(&self, enc: Encoding) -> Result<Vec<u8>, IngestError> {
        match enc {
            Encoding::MsgPack => rmp_serde::to_vec_named(self).map_err(|_| IngestError::Internal),
            Encoding::Json => serde_json::to_vec(self).map_err(|_| IngestError::Internal),
        }
    }
}

#[cfg(test)]
mod tests;
