//! `null`: an in-memory protocol driver, plain or zoned.
//!
//! Unwritten bytes read as zero; data is kept sparsely in fixed-size chunks
//! (sharded locks, so requests to different places run in parallel), so a
//! large device holding little data uses little memory. With `zoned=on` it
//! is a host-managed zoned device that behaves like Linux's null_blk with
//! `zoned=1 memory_backed=1`, with options named after null_blk's.
//! `zone_readonly=I[:J...]` and `zone_offline=I[:J...]` put sequential
//! zones into the read-only (13) or offline (15) condition at open, as
//! null_blk's configfs attributes of the same names do.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::emulated::{
    EmulatedZoned, FAULT_OPTIONS, ZONE_OPTIONS, ZoneStore, forward_to_engine, take_zone_config,
    take_zone_faults,
};
use super::zone_rules::{ZoneGeometry, ZoneState};
use super::{BlockDriver, NodeInfo, OpenFlags, OptionMap, Role, WriteFlags};

/// Size of `null` without `size=` (zoned: null_blk's 250 GiB).
pub const DEFAULT_SIZE: u64 = 1 << 30;
pub const DEFAULT_ZONED_SIZE: u64 = 250 << 30;

const CHUNK: u64 = 64 * 1024;
const SHARDS: u64 = 64;

type Shard = Mutex<HashMap<u64, Box<[u8]>>>;

/// Sparse bytes in memory.
pub struct Chunks {
    shards: Vec<Shard>,
}

impl Default for Chunks {
    fn default() -> Self {
        Chunks {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Chunks {
    fn shard(&self, idx: u64) -> MutexGuard<'_, HashMap<u64, Box<[u8]>>> {
        self.shards[(idx % SHARDS) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Calls `f(chunk index, range inside the chunk, range inside the
    /// request)` for each chunk `[offset, offset + len)` touches.
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

    pub fn read(&self, offset: u64, buf: &mut [u8]) {
        Self::for_chunks(offset, buf.len() as u64, |idx, src, dst| {
            match self.shard(idx).get(&idx) {
                Some(c) => buf[dst].copy_from_slice(&c[src]),
                None => buf[dst].fill(0),
            }
        });
    }

    pub fn write(&self, offset: u64, buf: &[u8]) {
        Self::for_chunks(offset, buf.len() as u64, |idx, dst, src| {
            let mut shard = self.shard(idx);
            let c = shard
                .entry(idx)
                .or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
            c[dst].copy_from_slice(&buf[src]);
        });
    }

    /// Zeroes a range, freeing the chunks it covers whole.
    pub fn zero(&self, offset: u64, len: u64) {
        Self::for_chunks(offset, len, |idx, range, _| {
            let mut shard = self.shard(idx);
            if range.len() == CHUNK as usize {
                shard.remove(&idx);
            } else if let Some(c) = shard.get_mut(&idx) {
                c[range].fill(0);
            }
        });
    }

    #[cfg(test)]
    pub fn chunk_count(&self) -> usize {
        (0..SHARDS).map(|i| self.shard(i).len()).sum()
    }
}

impl ZoneStore for Chunks {
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        Chunks::read(self, offset, buf);
        Ok(())
    }

    fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        Chunks::write(self, offset, buf);
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.zero(offset, len);
        Ok(())
    }
}

/// A plain in-memory device.
pub struct NullNode {
    size: u64,
    data: Chunks,
}

/// A zoned in-memory device.
pub struct ZonedNullNode {
    dev: EmulatedZoned<Chunks>,
}

/// `driver=null[,size=SIZE][,zoned=on,zone_size=...,...]`.
pub fn open(opts: &mut OptionMap, _flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let zoned = opts.take_bool("zoned")?.unwrap_or(false);
    if !zoned {
        if let Some(k) = ZONE_OPTIONS
            .iter()
            .chain(FAULT_OPTIONS)
            .find(|k| opts.contains(k))
        {
            return Err(format!("Option '{k}' needs zoned=on"));
        }
        let size = opts.take_size("size")?.unwrap_or(DEFAULT_SIZE);
        return Ok(Arc::new(NullNode::new(size)));
    }
    let size = opts.take_size("size")?.unwrap_or(DEFAULT_ZONED_SIZE);
    let cfg = take_zone_config(opts, size)?;
    let faults = take_zone_faults(opts, false)?;
    let geo = ZoneGeometry::new(&cfg)?;
    let mut state = ZoneState::new(geo);
    faults.apply(&mut state)?;
    state.take_changes();
    Ok(Arc::new(ZonedNullNode {
        dev: EmulatedZoned::new(Chunks::default(), state),
    }))
}

impl NullNode {
    pub fn new(size: u64) -> Self {
        NullNode {
            size,
            data: Chunks::default(),
        }
    }
}

fn null_info() -> NodeInfo {
    NodeInfo {
        format_names: vec!["null".into(), "null".into()],
        ..NodeInfo::default()
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
        self.data.read(offset, buf);
        Ok(())
    }

    fn write(&self, offset: u64, buf: &[u8], _flags: WriteFlags) -> io::Result<()> {
        self.data.write(offset, buf);
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64, _flags: WriteFlags) -> io::Result<()> {
        self.data.zero(offset, len);
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.data.zero(offset, len);
        Ok(())
    }

    fn info(&self) -> NodeInfo {
        null_info()
    }
}

impl BlockDriver for ZonedNullNode {
    forward_to_engine!(dev);

    fn driver_name(&self) -> &'static str {
        "null"
    }

    fn role(&self) -> Role {
        Role::Protocol
    }

    fn write(&self, offset: u64, buf: &[u8], _flags: WriteFlags) -> io::Result<()> {
        self.dev.write(offset, buf)
    }

    fn info(&self) -> NodeInfo {
        null_info()
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
        assert_eq!(n.data.chunk_count(), 0);
    }
}
