//! `null`: an in-memory protocol driver. Unwritten bytes read as zero; data
//! is kept sparsely in fixed-size chunks, so a large device holding little
//! data uses little memory.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use super::{BlockDriver, NodeInfo, OpenFlags, OptionMap, Role, WriteFlags};

/// Size of the embedded default device and of `null` without `size=`.
pub const DEFAULT_SIZE: u64 = 1 << 30;

const CHUNK: u64 = 64 * 1024;

pub struct NullNode {
    size: u64,
    chunks: Mutex<HashMap<u64, Box<[u8]>>>,
}

/// `driver=null[,size=SIZE]`.
pub fn open(opts: &mut OptionMap, _flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let size = opts.take_size("size")?.unwrap_or(DEFAULT_SIZE);
    Ok(Arc::new(NullNode::new(size)))
}

impl NullNode {
    pub fn new(size: u64) -> Self {
        NullNode {
            size,
            chunks: Mutex::new(HashMap::new()),
        }
    }

    /// Calls `f(chunk index, range inside the chunk, range inside the request)`
    /// for each chunk that `[offset, offset + len)` touches.
    fn for_chunks(
        offset: u64,
        len: u64,
        mut f: impl FnMut(u64, std::ops::Range<usize>, std::ops::Range<usize>),
    ) {
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let idx = pos / CHUNK;
            let in_chunk = (pos % CHUNK) as usize;
            let n = (CHUNK - pos % CHUNK).min(end - pos) as usize;
            let at = (pos - offset) as usize;
            f(idx, in_chunk..in_chunk + n, at..at + n);
            pos += n as u64;
        }
    }

    fn chunks(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Box<[u8]>>> {
        // A panic elsewhere cannot leave a chunk half-updated in a way that
        // matters more than losing the device, so keep serving.
        self.chunks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BlockDriver for NullNode {
    fn driver_name(&self) -> &'static str {
        "null"
    }

    fn role(&self) -> Role {
        Role::Protocol
    }

    fn length(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let chunks = self.chunks();
        Self::for_chunks(offset, buf.len() as u64, |idx, src, dst| {
            match chunks.get(&idx) {
                Some(c) => buf[dst].copy_from_slice(&c[src]),
                None => buf[dst].fill(0),
            }
        });
        Ok(())
    }

    fn write(&self, offset: u64, buf: &[u8], _flags: WriteFlags) -> io::Result<()> {
        let mut chunks = self.chunks();
        Self::for_chunks(offset, buf.len() as u64, |idx, dst, src| {
            let c = chunks
                .entry(idx)
                .or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
            c[dst].copy_from_slice(&buf[src]);
        });
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64, _flags: WriteFlags) -> io::Result<()> {
        let mut chunks = self.chunks();
        Self::for_chunks(offset, len, |idx, range, _| {
            if range.len() == CHUNK as usize {
                chunks.remove(&idx);
            } else if let Some(c) = chunks.get_mut(&idx) {
                c[range].fill(0);
            }
        });
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(offset, len, WriteFlags::default())
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            format_names: vec!["null".into(), "null".into()],
            ..NodeInfo::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwritten_reads_zero_and_writes_stick_across_chunks() {
        let n = NullNode::new(1 << 20);
        let mut buf = vec![0xffu8; 100];
        n.read(5, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        n.write(CHUNK - 7, &data, WriteFlags::default()).unwrap();
        let mut back = vec![0u8; data.len()];
        n.read(CHUNK - 7, &mut back).unwrap();
        assert_eq!(back, data);
        n.discard(0, 1 << 20).unwrap();
        n.read(CHUNK - 7, &mut back).unwrap();
        assert!(back.iter().all(|&b| b == 0));
        assert!(n.chunks().is_empty());
    }
}
