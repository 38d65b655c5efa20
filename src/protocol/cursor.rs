//! A bounds-checked MessagePack reader over a byte slice.
//!
//! Why not decode with serde: validation must not allocate per event, must capture the raw
//! bytes of `ev` so the store keeps exactly what the client sent, and must refuse a length
//! prefix that promises more than the frame holds *before* acting on it. This reader does
//! all three; `rmp::Marker` names the bytes.

use rmp::Marker;

/// One MessagePack token. Containers yield their element count; the caller walks them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Token<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    /// Only for values above `i64::MAX`.
    BigUInt(u64),
    Float(f64),
    Str(&'a str),
    Bin(&'a [u8]),
    Array(usize),
    Map(usize),
    Ext,
}

impl Token<'_> {
    /// What the token is, for error messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Token::Nil => "nil",
            Token::Bool(_) => "a boolean",
            Token::Int(_) | Token::BigUInt(_) => "an integer",
            Token::Float(_) => "a float",
            Token::Str(_) => "a string",
            Token::Bin(_) => "binary",
            Token::Array(_) => "an array",
            Token::Map(_) => "a map",
            Token::Ext => "an extension",
        }
    }

    /// A finite number, integer or float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Token::Int(i) => Some(i as f64),
            Token::BigUInt(u) => Some(u as f64),
            Token::Float(f) if f.is_finite() => Some(f),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        &self.buf[from..to]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return err(format!(
                "length {n} at byte {} exceeds the {} bytes left",
                self.pos,
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn len16(&mut self) -> Result<usize, DecodeError> {
        Ok(u16::from_be_bytes(self.be()?) as usize)
    }
    fn len32(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }

    /// A container may not promise more elements than bytes remain (each takes one at least).
    fn count(&self, n: usize, per: usize) -> Result<usize, DecodeError> {
        if n.saturating_mul(per) > self.remaining() {
            return err(format!(
                "a container of {n} elements at byte {} exceeds the {} bytes left",
                self.pos,
                self.remaining()
            ));
        }
        Ok(n)
    }

    fn str(&mut self, n: usize) -> Result<Token<'a>, DecodeError> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Token::Str(s)),
            Err(_) => err("string is not valid UTF-8"),
        }
    }

    /// Moves the cursor to `pos` (at most the end).
    pub fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.buf.len());
    }

    /// The next `N` bytes, not consumed.
    pub fn peek<const N: usize>(&self) -> Option<[u8; N]> {
        self.at(0)
    }

    /// The `N` bytes from `offset` bytes ahead, not consumed.
    fn at<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let from = self.pos + offset;
        self.buf.get(from..from + N)?.try_into().ok()
    }

    /// An integer in one of MessagePack's compact forms (fixint, 8, 16 or 32 bits), consumed.
    /// `None`, consuming nothing, for anything else: the caller then reads it with
    /// [`token`](Self::token), which knows every form. The hot rows (moves, scrolls) are all
    /// small integers, and this is several times cheaper than a whole token.
    #[inline(always)]
    pub fn quick_int(&mut self) -> Option<i64> {
        let [b] = self.peek::<1>()?;
        let (v, n) = match b {
            0x00..=0x7f => (i64::from(b), 1),
            0xe0..=0xff => (i64::from(b as i8), 1),
            0xcc => (i64::from(self.at::<1>(1)?[0]), 2),
            0xcd => (i64::from(u16::from_be_bytes(self.at(1)?)), 3),
            0xce => (i64::from(u32::from_be_bytes(self.at(1)?)), 5),
            0xd0 => (i64::from(self.at::<1>(1)?[0] as i8), 2),
            0xd1 => (i64::from(i16::from_be_bytes(self.at(1)?)), 3),
            0xd2 => (i64::from(i32::from_be_bytes(self.at(1)?)), 5),
            _ => return None,
        };
        self.pos += n;
        Some(v)
    }

    /// A finite number as [`quick_int`](Self::quick_int) reads integers, or a 32- or 64-bit
    /// float; `None`, consuming nothing, for anything else (a non-finite float included).
    #[inline(always)]
    pub fn quick_num(&mut self) -> Option<f64> {
        if let Some(i) = self.quick_int() {
            return Some(i as f64);
        }
        let (v, n) = match self.peek::<1>()? {
            [0xca] => (f64::from(f32::from_be_bytes(self.at(1)?)), 5),
            [0xcb] => (f64::from_be_bytes(self.at(1)?), 9),
            _ => return None,
        };
        if !v.is_finite() {
            return None;
        }
        self.pos += n;
        Some(v)
    }

    /// A boolean, consumed; `None`, consuming nothing, for anything else.
    #[inline(always)]
    pub fn quick_bool(&mut self) -> Option<bool> {
        let v = match self.peek::<1>()? {
            [0xc2] => false,
            [0xc3] => true,
            _ => return None,
        };
        self.pos += 1;
        Some(v)
    }

    /// Nil (`Some(None)`) or a string of at most `max` bytes in one of the short forms
    /// (fixstr, str8) that is valid UTF-8, consumed. `None`, consuming nothing, for anything
    /// else: the caller reads it with [`token`](Self::token), which reports what is wrong.
    #[inline(always)]
    pub fn quick_opt_str(&mut self, max: usize) -> Option<Option<&'a str>> {
        let (at, n) = match self.peek::<1>()? {
            [0xc0] => {
                self.pos += 1;
                return Some(None);
            }
            [b @ 0xa0..=0xbf] => (1, usize::from(b & 0x1f)),
            [0xd9] => (2, usize::from(self.at::<1>(1)?[0])),
            _ => return None,
        };
        let from = self.pos + at;
        let bytes = self.buf.get(from..from + n).filter(|_| n <= max)?;
        let s = std::str::from_utf8(bytes).ok()?;
        self.pos = from + n;
        Some(Some(s))
    }

    /// Reads the next token.
    pub fn token(&mut self) -> Result<Token<'a>, DecodeError> {
        let at = self.pos;
        let m = Marker::from_u8(self.u8()?);
        Ok(match m {
            Marker::FixPos(v) => Token::Int(v as i64),
            Marker::FixNeg(v) => Token::Int(v as i64),
            Marker::Null => Token::Nil,
            Marker::True => Token::Bool(true),
            Marker::False => Token::Bool(false),
            Marker::U8 => Token::Int(self.u8()? as i64),
            Marker::U16 => Token::Int(u16::from_be_bytes(self.be()?) as i64),
            Marker::U32 => Token::Int(u32::from_be_bytes(self.be()?) as i64),
            Marker::U64 => {
                let v = u64::from_be_bytes(self.be()?);
                match i64::try_from(v) {
                    Ok(i) => Token::Int(i),
                    Err(_) => Token::BigUInt(v),
                }
            }
            Marker::I8 => Token::Int(i8::from_be_bytes(self.be()?) as i64),
            Marker::I16 => Token::Int(i16::from_be_bytes(self.be()?) as i64),
            Marker::I32 => Token::Int(i32::from_be_bytes(self.be()?) as i64),
            Marker::I64 => Token::Int(i64::from_be_bytes(self.be()?)),
            Marker::F32 => Token::Float(f32::from_be_bytes(self.be()?) as f64),
            Marker::F64 => Token::Float(f64::from_be_bytes(self.be()?)),
            Marker::FixStr(n) => self.str(n as usize)?,
            Marker::Str8 => {
                let n = self.u8()? as usize;
                self.str(n)?
            }
            Marker::Str16 => {
                let n = self.len16()?;
                self.str(n)?
            }
            Marker::Str32 => {
                let n = self.len32()?;
                self.str(n)?
            }
            Marker::Bin8 => {
                let n = self.u8()? as usize;
                Token::Bin(self.take(n)?)
            }
            Marker::Bin16 => {
                let n = self.len16()?;
                Token::Bin(self.take(n)?)
            }
            Marker::Bin32 => {
                let n = self.len32()?;
                Token::Bin(self.take(n)?)
            }
            Marker::FixArray(n) => Token::Array(self.count(n as usize, 1)?),
            Marker::Array16 => {
                let n = self.len16()?;
                Token::Array(self.count(n, 1)?)
            }
            Marker::Array32 => {
                let n = self.len32()?;
                Token::Array(self.count(n, 1)?)
            }
            Marker::FixMap(n) => Token::Map(self.count(n as usize, 2)?),
            Marker::Map16 => {
                let n = self.len16()?;
                Token::Map(self.count(n, 2)?)
            }
            Marker::Map32 => {
                let n = self.len32()?;
                Token::Map(self.count(n, 2)?)
            }
            Marker::FixExt1 => self.ext(2)?,
            Marker::FixExt2 => self.ext(3)?,
            Marker::FixExt4 => self.ext(5)?,
            Marker::FixExt8 => self.ext(9)?,
            Marker::FixExt16 => self.ext(17)?,
            Marker::Ext8 => {
                let n = self.u8()? as usize;
                self.ext(n + 1)?
            }
            Marker::Ext16 => {
                let n = self.len16()?;
                self.ext(n + 1)?
            }
            Marker::Ext32 => {
                let n = self.len32()?;
                self.ext(n + 1)?
            }
            Marker::Reserved => return err(format!("reserved byte 0xc1 at byte {at}")),
        })
    }

    fn ext(&mut self, n: usize) -> Result<Token<'a>, DecodeError> {
        self.take(n)?;
        Ok(Token::Ext)
    }

    /// Skips one JSON-representable value (no binary, no extensions, finite floats, string
    /// map keys), nested at most `depth` levels.
    pub fn skip_value(&mut self, depth: usize, max_str: usize) -> Result<(), DecodeError> {
        let t = self.token()?;
        self.skip_after(t, depth, max_str)
    }

    /// Like [`skip_value`](Self::skip_value) for a token already read.
    pub fn skip_after(
        &mut self,
        t: Token<'a>,
        depth: usize,
        max_str: usize,
    ) -> Result<(), DecodeError> {
        match t {
            Token::Nil | Token::Bool(_) | Token::Int(_) | Token::BigUInt(_) => Ok(()),
            Token::Float(f) if f.is_finite() => Ok(()),
            Token::Float(_) => err("non-finite float"),
            Token::Str(s) if s.len() <= max_str => Ok(()),
            Token::Str(_) => err(format!("string longer than {max_str} bytes")),
            Token::Bin(_) | Token::Ext => err("binary and extension values are not accepted"),
            Token::Array(n) | Token::Map(n) if depth == 0 && n > 0 => {
                err("nested deeper than the depth limit")
            }
            Token::Array(n) => {
                for _ in 0..n {
                    self.skip_value(depth - 1, max_str)?;
                }
                Ok(())
            }
            Token::Map(n) => {
                for _ in 0..n {
                    match self.token()? {
                        Token::Str(s) if s.len() <= max_str => {}
                        other => {
                            return err(format!("map key is {}, not a string", other.describe()))
                        }
                    }
                    self.skip_value(depth - 1, max_str)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scalars_and_containers() {
        let bytes = rmp_serde::to_vec(&(1u8, -3i32, u64::MAX, 1.5f64, "hé", true, ())).unwrap();
        let mut c = Cursor::new(&bytes);
        assert_eq!(c.token().unwrap(), Token::Array(7));
        assert_eq!(c.token().unwrap(), Token::Int(1));
        assert_eq!(c.token().unwrap(), Token::Int(-3));
        assert_eq!(c.token().unwrap(), Token::BigUInt(u64::MAX));
        assert_eq!(c.token().unwrap(), Token::Float(1.5));
        assert_eq!(c.token().unwrap(), Token::Str("hé"));
        assert_eq!(c.token().unwrap(), Token::Bool(true));
        assert_eq!(c.token().unwrap(), Token::Nil);
        assert_eq!(c.remaining(), 0);
    }

    #[test]
    fn quick_reads_agree_with_tokens_and_refuse_what_they_do_not_know() {
        let ints = [
            0i64,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            4_294_967_295,
            -1,
            -32,
            -33,
        ];
        let more = [
            -128i64,
            -129,
            -32_768,
            -32_769,
            -2_147_483_648,
            i64::MAX,
            i64::MIN,
        ];
        for v in ints.into_iter().chain(more) {
            let bytes = rmp_serde::to_vec(&v).unwrap();
            let quick = Cursor::new(&bytes).quick_int();
            match Cursor::new(&bytes).token().unwrap() {
                // 64-bit forms are left to `token`.
                Token::Int(i) if bytes.len() == 9 => assert_eq!((quick, i), (None, v)),
                Token::Int(i) => assert_eq!(quick, Some(i), "{v}"),
                other => panic!("{v}: {other:?}"),
            }
            assert_eq!(Cursor::new(&bytes).quick_num(), quick.map(|i| i as f64));
        }
        for f in [1.5f64, -0.25, 1e300] {
            let bytes = rmp_serde::to_vec(&f).unwrap();
            let mut c = Cursor::new(&bytes);
            assert_eq!((c.quick_num(), c.remaining()), (Some(f), 0));
        }
        for f in [1.5f32, -0.25, 3e38] {
            let bytes = rmp_serde::to_vec(&f).unwrap();
            assert_eq!(Cursor::new(&bytes).quick_num(), Some(f64::from(f)));
        }
        for v in [
            rmp_serde::to_vec(&f64::NAN).unwrap(),
            rmp_serde::to_vec(&f32::INFINITY).unwrap(),
            rmp_serde::to_vec("1").unwrap(),
            rmp_serde::to_vec(&()).unwrap(),
            vec![0xcd, 0x01], // cut short
            vec![0xcb, 0, 0, 0],
            vec![],
        ] {
            let mut c = Cursor::new(&v);
            assert_eq!((c.quick_num(), c.pos()), (None, 0), "{v:?}");
        }
    }

    #[test]
    fn quick_strings_and_booleans_agree_with_tokens_and_refuse_the_rest() {
        let long = "é".repeat(100); // 200 bytes: str8
        for s in [
            "",
            "a",
            "hé",
            "main>div.card:nth-child(3)>button.buy",
            &long,
        ] {
            let bytes = rmp_serde::to_vec(s).unwrap();
            let mut c = Cursor::new(&bytes);
            assert_eq!(c.quick_opt_str(s.len()), Some(Some(s)));
            assert_eq!(c.remaining(), 0);
            assert_eq!(Cursor::new(&bytes).token().unwrap(), Token::Str(s));
            // Longer than allowed: left to `token`, whose caller says it is too long.
            if !s.is_empty() {
                let mut c = Cursor::new(&bytes);
                assert_eq!((c.quick_opt_str(s.len() - 1), c.pos()), (None, 0));
            }
        }
        let nil = rmp_serde::to_vec(&()).unwrap();
        let mut c = Cursor::new(&nil);
        assert_eq!((c.quick_opt_str(10), c.remaining()), (Some(None), 0));
        for b in [true, false] {
            let bytes = rmp_serde::to_vec(&b).unwrap();
            let mut c = Cursor::new(&bytes);
            assert_eq!((c.quick_bool(), c.remaining()), (Some(b), 0));
        }
        for v in [
            rmp_serde::to_vec(&"x".repeat(300)).unwrap(), // str16
            rmp_serde::to_vec(&1).unwrap(),
            vec![0xa2, 0xff, 0xfe], // not UTF-8
            vec![0xd9, 0x05, b'a'], // cut short
            vec![0xd9],
            vec![],
        ] {
            let mut c = Cursor::new(&v);
            assert_eq!((c.quick_opt_str(1000), c.pos()), (None, 0), "{v:?}");
            assert_eq!((c.quick_bool(), c.pos()), (None, 0), "{v:?}");
        }
    }

    #[test]
    fn refuses_length_prefixes_that_promise_more_than_the_frame() {
        // str32 of 4 GiB, array32 of 4 G elements, map32, bin32: each in a 5-byte frame.
        for marker in [0xdbu8, 0xdd, 0xdf, 0xc6] {
            let bytes = [marker, 0xff, 0xff, 0xff, 0xff];
            assert!(Cursor::new(&bytes).token().is_err(), "marker {marker:#x}");
        }
    }

    #[test]
    fn depth_limit_stops_deep_nesting() {
        let mut bytes = vec![0x91u8; 100]; // 100 nested one-element arrays
        bytes.push(0x01);
        assert!(Cursor::new(&bytes).skip_value(32, 100).is_err());
        assert!(Cursor::new(&bytes).skip_value(100, 100).is_ok());
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = rmp_serde::to_vec(&("a long enough string", 1.0f64)).unwrap();
        for cut in 0..bytes.len() {
            let mut c = Cursor::new(&bytes[..cut]);
            assert!(c.skip_value(4, 100).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn non_json_values_are_refused() {
        for v in [vec![0xc4u8, 0x01, 0x00], vec![0xd4, 0x01, 0x00], vec![0xc1]] {
            assert!(Cursor::new(&v).skip_value(4, 100).is_err());
        }
        let nan = rmp_serde::to_vec(&f64::NAN).unwrap();
        assert!(Cursor::new(&nan).skip_value(4, 100).is_err());
        let int_key = rmp_serde::to_vec(&std::collections::BTreeMap::from([(1, 2)])).unwrap();
        assert!(Cursor::new(&int_key).skip_value(4, 100).is_err());
    }
}
