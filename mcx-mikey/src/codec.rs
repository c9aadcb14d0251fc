//! The cursor and trait every payload codec uses (the rustls `codec.rs`
//! shape: a `Reader` with `take`/`sub`/`expect_empty`, and `Codec`).

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};

/// A cursor over a message being decoded. Offsets in errors are absolute
/// (from the start of the message), also inside a [`Reader::sub`] reader.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    payload: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over a whole message.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            base: 0,
            payload: "message",
        }
    }

    /// A reader over `buf`, whose first octet is at `base` in the message.
    pub fn at(buf: &'a [u8], base: usize, payload: &'static str) -> Self {
        Self {
            buf,
            pos: 0,
            base,
            payload,
        }
    }

    /// Names the payload being read, for errors.
    pub fn set_payload(&mut self, payload: &'static str) {
        self.payload = payload;
    }

    /// The payload being read.
    pub fn payload(&self) -> &'static str {
        self.payload
    }

    /// The absolute offset of the next octet.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Octets left.
    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether octets are left.
    pub fn any_left(&self) -> bool {
        self.left() > 0
    }

    /// An error at the current offset.
    pub fn error(&self, field: &'static str, kind: DecodeErrorKind) -> DecodeError {
        self.error_at(self.offset(), field, kind)
    }

    /// An error at `offset`.
    pub fn error_at(
        &self,
        offset: usize,
        field: &'static str,
        kind: DecodeErrorKind,
    ) -> DecodeError {
        DecodeError {
            payload: self.payload,
            field,
            offset,
            kind,
        }
    }

    /// The next `n` octets.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.left() < n {
            return Err(self.error(
                field,
                DecodeErrorKind::Truncated {
                    needed: n,
                    available: self.left(),
                },
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `N` octets as an array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// A reader over the next `n` octets, which this reader skips.
    pub fn sub(&mut self, n: usize, field: &'static str) -> Result<Self, DecodeError> {
        let base = self.offset();
        let buf = self.take(n, field)?;
        Ok(Self {
            buf,
            pos: 0,
            base,
            payload: self.payload,
        })
    }

    /// One octet.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    /// Two octets, big-endian.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Four octets, big-endian.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Five octets, big-endian (TS 24.282 date and time).
    pub fn u40(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let b: [u8; 5] = self.array(field)?;
        Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// Eight octets, big-endian.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Fails with `TrailingData` if octets are left.
    pub fn expect_empty(&self, field: &'static str) -> Result<(), DecodeError> {
        if self.any_left() {
            Err(self.error(field, DecodeErrorKind::TrailingData(self.left())))
        } else {
            Ok(())
        }
    }
}

/// A value with a wire encoding.
pub trait Codec: Sized + core::fmt::Debug {
    /// Appends the encoding of `self`.
    ///
    /// # Errors
    /// [`EncodeError`] if a value does not fit its length field.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError>;

    /// Reads one value.
    ///
    /// # Errors
    /// [`DecodeError`] naming the field and offset.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Reads one value that must fill `bytes` exactly.
    ///
    /// # Errors
    /// [`DecodeError`], also if octets are left over.
    fn read_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::read(&mut r)?;
        r.expect_empty("end")?;
        Ok(v)
    }

    /// The encoding of `self`.
    ///
    /// # Errors
    /// [`EncodeError`] if a value does not fit its length field.
    fn get_encoding(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

/// Appends `len` as one octet.
pub fn put_len8(out: &mut Vec<u8>, len: usize, what: &'static str) -> Result<(), EncodeError> {
    out.push(u8::try_from(len).map_err(|_| EncodeError(what))?);
    Ok(())
}

/// Appends `len` as two octets, big-endian.
pub fn put_len16(out: &mut Vec<u8>, len: usize, what: &'static str) -> Result<(), EncodeError> {
    out.extend_from_slice(
        &u16::try_from(len)
            .map_err(|_| EncodeError(what))?
            .to_be_bytes(),
    );
    Ok(())
}

/// Appends the low 40 bits of `v` as five octets.
pub fn put_u40(out: &mut Vec<u8>, v: u64, what: &'static str) -> Result<(), EncodeError> {
    if v >> 40 != 0 {
        return Err(EncodeError(what));
    }
    out.extend_from_slice(&v.to_be_bytes()[3..]);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reader_offsets_are_absolute() {
        let data = [1u8, 2, 3, 4, 5, 6];
        let mut r = Reader::new(&data);
        assert_eq!(r.u8("a").unwrap(), 1);
        let mut s = r.sub(3, "b").unwrap();
        assert_eq!(s.offset(), 1);
        assert_eq!(s.u16("c").unwrap(), 0x0203);
        let e = s.u16("d").unwrap_err();
        assert_eq!(e.offset, 3);
        assert_eq!(
            e.kind,
            DecodeErrorKind::Truncated {
                needed: 2,
                available: 1
            }
        );
        assert_eq!(r.offset(), 4);
        assert_eq!(
            r.expect_empty("x").unwrap_err().kind,
            DecodeErrorKind::TrailingData(2)
        );
        let mut out = Vec::new();
        put_u40(&mut out, 0x01_0203_0405, "t").unwrap();
        assert_eq!(out, [1, 2, 3, 4, 5]);
        assert!(put_u40(&mut out, 1 << 40, "t").is_err());
        assert_eq!(Reader::new(&out).u40("t").unwrap(), 0x01_0203_0405);
    }
}
