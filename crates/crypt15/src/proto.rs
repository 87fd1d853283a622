//! The few pieces of the protobuf wire format the crypt15 header needs (spec section 6.4.2).
//!
//! The reader never allocates: it hands out sub-slices of its input, checks every length
//! against what is left, rejects varints longer than ten bytes (or whose tenth byte carries
//! more than the 64th bit), field number 0, and groups. Unknown fields are skipped.

use crate::error::HeaderProblem;

/// Wire type of varints.
pub(crate) const WT_VARINT: u8 = 0;
/// Wire type of 64-bit fixed-width values.
pub(crate) const WT_I64: u8 = 1;
/// Wire type of length-delimited values.
pub(crate) const WT_LEN: u8 = 2;
/// Wire type of 32-bit fixed-width values.
pub(crate) const WT_I32: u8 = 5;

/// Largest field number protobuf allows.
const MAX_FIELD: u64 = (1 << 29) - 1;
/// Longest varint: ten bytes carry 64 bits.
pub(crate) const MAX_VARINT_LEN: u8 = 10;

/// A cursor over one protobuf message.
pub(crate) struct WireReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> WireReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads a varint of at most ten bytes.
    pub(crate) fn varint(&mut self) -> Result<u64, HeaderProblem> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(HeaderProblem::Truncated);
            };
            self.pos += 1;
            if i == MAX_VARINT_LEN - 1 && byte > 1 {
                return Err(HeaderProblem::OverlongVarint { max: MAX_VARINT_LEN });
            }
            value |= u64::from(byte & 0x7f) << (7 * u32::from(i));
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(HeaderProblem::OverlongVarint { max: MAX_VARINT_LEN })
    }

    /// Reads a tag: a field number (1 to 2^29 - 1) and a wire type (0, 1, 2 or 5).
    pub(crate) fn tag(&mut self) -> Result<(u32, u8), HeaderProblem> {
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > MAX_FIELD {
            return Err(HeaderProblem::InvalidFieldNumber { number });
        }
        let wire_type = (tag & 7) as u8;
        match wire_type {
            WT_VARINT | WT_I64 | WT_LEN | WT_I32 => {}
            other => return Err(HeaderProblem::UnsupportedWireType(other)),
        }
        // `number` is at most 2^29 - 1.
        Ok((number as u32, wire_type))
    }

    /// Reads the payload of a length-delimited field.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], HeaderProblem> {
        let len = self.varint()?;
        let left = self.buf.len() - self.pos;
        if len > left as u64 {
            return Err(HeaderProblem::Truncated);
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// Skips the value of a field of wire type `wire_type`.
    pub(crate) fn skip(&mut self, wire_type: u8) -> Result<(), HeaderProblem> {
        let width = match wire_type {
            WT_VARINT => return self.varint().map(|_| ()),
            WT_LEN => return self.bytes().map(|_| ()),
            WT_I64 => 8,
            WT_I32 => 4,
            other => return Err(HeaderProblem::UnsupportedWireType(other)),
        };
        if self.buf.len() - self.pos < width {
            return Err(HeaderProblem::Truncated);
        }
        self.pos += width;
        Ok(())
    }
}

/// Appends `value` as a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a tag.
pub(crate) fn put_tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

/// Appends a varint field.
pub(crate) fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    put_tag(out, field, WT_VARINT);
    put_varint(out, value);
}

/// Appends a length-delimited field.
pub(crate) fn put_bytes_field(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    put_tag(out, field, WT_LEN);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut reader = WireReader::new(&out);
            assert_eq!(reader.varint(), Ok(value));
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn overlong_and_truncated_varints_are_rejected() {
        let eleven = [0xffu8; 11];
        assert_eq!(
            WireReader::new(&eleven).varint(),
            Err(HeaderProblem::OverlongVarint { max: 10 })
        );
        let mut tenth_too_big = [0xffu8; 10];
        tenth_too_big[9] = 0x02;
        assert_eq!(
            WireReader::new(&tenth_too_big).varint(),
            Err(HeaderProblem::OverlongVarint { max: 10 })
        );
        assert_eq!(WireReader::new(&[0x80, 0x80]).varint(), Err(HeaderProblem::Truncated));
    }

    #[test]
    fn bad_tags_are_rejected() {
        assert_eq!(
            WireReader::new(&[0x01]).tag(),
            Err(HeaderProblem::InvalidFieldNumber { number: 0 })
        );
        assert_eq!(WireReader::new(&[0x0b]).tag(), Err(HeaderProblem::UnsupportedWireType(3)));
        assert_eq!(WireReader::new(&[0x0f]).tag(), Err(HeaderProblem::UnsupportedWireType(7)));
    }

    #[test]
    fn lengths_past_the_end_are_rejected() {
        assert_eq!(WireReader::new(&[0x05, 1, 2]).bytes(), Err(HeaderProblem::Truncated));
        assert_eq!(WireReader::new(&[0x01, 2, 3]).skip(WT_I64), Err(HeaderProblem::Truncated));
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(WireReader::new(&huge).bytes(), Err(HeaderProblem::Truncated));
    }
}
