//! Task input bytes, stored inline when small so that a million tiny tasks do not
//! cost a million extra allocations.

/// Bytes that live inside the task when they fit, on the heap otherwise.
#[derive(Clone)]
pub enum Payload {
    /// Up to [`Payload::INLINE`] bytes kept in place.
    Inline {
        /// Number of bytes used.
        len: u8,
        /// Storage.
        bytes: [u8; Payload::INLINE],
    },
    /// Larger inputs.
    Heap(Box<[u8]>),
}

impl Payload {
    /// Largest input stored without an allocation.
    pub(crate) const INLINE: usize = 22;

    /// Copies `data`.
    pub fn copy_from(data: &[u8]) -> Payload {
        if data.len() <= Self::INLINE {
            let mut bytes = [0u8; Self::INLINE];
            bytes[..data.len()].copy_from_slice(data);
            Payload::Inline {
                len: data.len() as u8,
                bytes,
            }
        } else {
            Payload::Heap(data.into())
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Inline { len, bytes } => &bytes[..*len as usize],
            Payload::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({} bytes)", self.as_slice().len())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn small_inputs_stay_inline_and_large_ones_round_trip() {
        let small = Payload::copy_from(b"sixteen bytes!!!");
        assert!(matches!(small, Payload::Inline { .. }));
        assert_eq!(small.as_slice(), b"sixteen bytes!!!");
        let big: Vec<u8> = (0..100u8).collect();
        let heap = Payload::copy_from(&big);
        assert!(matches!(heap, Payload::Heap(_)));
        assert_eq!(heap.as_slice(), &big[..]);
        assert_eq!(Payload::copy_from(&[]).as_slice(), b"");
        assert!(std::mem::size_of::<Payload>() <= 24);
    }
}
