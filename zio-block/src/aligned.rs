//! Heap buffers aligned for O_DIRECT, without `unsafe`: a `Vec` with slack,
//! sliced at the first aligned address.

/// Alignment that satisfies O_DIRECT on 512-byte and 4 KiB devices.
pub const DIRECT_ALIGN: usize = 4096;

pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zero-filled buffer of `len` bytes starting on a DIRECT_ALIGN boundary.
    pub fn new(len: usize) -> Self {
        AlignedBuf::with_alignment(len, DIRECT_ALIGN)
    }

    /// A zero-filled buffer of `len` bytes starting on an `align` boundary
    /// (a power of two, at least DIRECT_ALIGN). The slack is allocated but
    /// never touched, so it costs address space, not memory.
    pub fn with_alignment(len: usize, align: usize) -> Self {
        let align = align.max(DIRECT_ALIGN).next_power_of_two();
        let storage = vec![0u8; len + align];
        let start = storage.as_ptr().align_offset(align);
        AlignedBuf {
            storage,
            start,
            len,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// True when an O_DIRECT request needs no bounce buffer: offset and length
/// on `a`-byte boundaries (the device's logical block size), memory on
/// DIRECT_ALIGN.
pub fn is_aligned(offset: u64, buf: &[u8], a: u64) -> bool {
    offset.is_multiple_of(a)
        && (buf.len() as u64).is_multiple_of(a)
        && buf.as_ptr().align_offset(DIRECT_ALIGN) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_is_aligned_and_sized() {
        for len in [0, 1, 4095, 4096, 1 << 20] {
            let b = AlignedBuf::new(len);
            assert_eq!(b.as_slice().len(), len);
            assert_eq!(b.as_slice().as_ptr() as usize % DIRECT_ALIGN, 0);
        }
        let h = AlignedBuf::with_alignment(2 << 20, 2 << 20);
        assert_eq!(h.as_slice().len(), 2 << 20);
        assert_eq!(h.as_slice().as_ptr() as usize % (2 << 20), 0);
    }

    #[test]
    fn alignment_check() {
        let b = AlignedBuf::new(8192);
        assert!(is_aligned(4096, b.as_slice(), 4096));
        assert!(!is_aligned(512, b.as_slice(), 4096));
        assert!(is_aligned(512, &b.as_slice()[..512], 512));
        assert!(!is_aligned(0, &b.as_slice()[..100], 512));
        assert!(!is_aligned(0, &b.as_slice()[1..4097], 4096));
    }
}
