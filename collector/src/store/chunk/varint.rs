//! LEB128 varints for the chunk header: seven bits a byte, low bits first; signed numbers
//! zigzagged so small magnitudes of either sign stay short.

use super::Corrupt;

pub fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn write_i64(out: &mut Vec<u8>, value: i64) {
    write_u64(out, zigzag(value));
}

pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

/// Reads varints from the front of a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    pub fn byte(&mut self) -> Result<u8, Corrupt> {
        let byte = *self
            .bytes
            .get(self.position)
            .ok_or(Corrupt("header cut short"))?;
        self.position += 1;
        Ok(byte)
    }

    /// A varint of at most ten bytes whose bits fit in a u64.
    pub fn u64(&mut self) -> Result<u64, Corrupt> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7F);
            if shift == 63 && bits > 1 {
                return Err(Corrupt("varint overflows 64 bits"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Corrupt("varint longer than ten bytes"))
    }

    pub fn i64(&mut self) -> Result<i64, Corrupt> {
        self.u64().map(unzigzag)
    }

    /// The bytes after what has been read.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.position..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_u64_and_i64_reads_back(unsigned in any::<u64>(), signed in any::<i64>()) {
            let mut out = Vec::new();
            write_u64(&mut out, unsigned);
            write_i64(&mut out, signed);
            let mut reader = Reader::new(&out);
            prop_assert_eq!(reader.u64().unwrap(), unsigned);
            prop_assert_eq!(reader.i64().unwrap(), signed);
            prop_assert!(reader.rest().is_empty());
        }
    }

    #[test]
    fn overlong_and_cut_varints_are_refused() {
        assert!(Reader::new(&[0x80; 11]).u64().is_err());
        assert!(
            Reader::new(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02])
                .u64()
                .is_err()
        );
        assert!(Reader::new(&[0x80]).u64().is_err());
    }
}
