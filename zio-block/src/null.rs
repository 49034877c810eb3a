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

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Unit of storage: a write allocates whole chunks (counted against the
/// memory limit), zeroing or discarding a whole chunk frees it.
pub const CHUNK: u64 = 64 * 1024;
const SHARDS: u64 = 64;

/// `mem_limit` when `/proc/meminfo` cannot be read.
const FALLBACK_MEM_LIMIT: u64 = 1 << 30;

type Shard = Mutex<BTreeMap<u64, Box<[u8]>>>;

/// A quarter of the machine's memory (`MemTotal` in `/proc/meminfo`), or
/// 1 GiB if that cannot be read: the default `mem_limit`.
pub fn default_mem_limit() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024) / 4)
        })
        .filter(|&n| n > 0)
        .unwrap_or(FALLBACK_MEM_LIMIT)
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

/// Sparse bytes in memory, at most `limit` bytes of chunks.
pub struct Chunks {
    shards: Vec<Shard>,
    /// Bytes of chunks stored (or reserved by a write under way).
    used: AtomicU64,
    limit: u64,
}

impl Default for Chunks {
    /// No memory limit.
    fn default() -> Self {
        Chunks::new(u64::MAX)
    }
}

impl Chunks {
    /// Storing at most `limit` bytes (whole chunks): a write that needs
    /// more fails with ENOSPC, storing nothing.
    pub fn new(limit: u64) -> Self {
        Chunks {
            shards: (0..SHARDS).map(|_| Mutex::new(BTreeMap::new())).collect(),
            used: AtomicU64::new(0),
            limit,
        }
    }

    fn shard(&self, idx: u64) -> MutexGuard<'_, BTreeMap<u64, Box<[u8]>>> {
        self.shards[(idx % SHARDS) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes stored, in whole chunks.
    #[cfg(test)]
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Calls `f(chunk index, range inside the chunk, range inside the
    /// request)` for each chunk `[offset, offset + len)` touches.
    fn for_chunks(
        offset: u64,
        len: u64,
        mut f: impl FnMut(u64, std::ops::Range<usize>, std::ops::Range<usize>),
    ) {
        let mut pos = offset;
        let end = offset.saturating_add(len);
        while pos < end {
            let idx = pos / CHUNK;
            let in_chunk = (pos % CHUNK) as usize;
            let n = (CHUNK - pos % CHUNK).min(end - pos) as usize;
            let at = (pos - offset) as usize;
            f(idx, in_chunk..in_chunk + n, at..at + n);
            pos += n as u64;
        }
    }

    /// True if the chunk holding `offset` is stored.
    pub fn has_chunk(&self, offset: u64) -> bool {
        let idx = offset / CHUNK;
        self.shard(idx).contains_key(&idx)
    }

    pub fn read(&self, offset: u64, buf: &mut [u8]) {
        Self::for_chunks(offset, buf.len() as u64, |idx, src, dst| {
            match self.shard(idx).get(&idx) {
                Some(c) => buf[dst].copy_from_slice(&c[src]),
                None => buf[dst].fill(0),
            }
        });
    }

    /// Takes `n` bytes from the limit, or ENOSPC taking nothing.
    fn reserve(&self, n: u64) -> io::Result<()> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| enospc())
    }

    /// Writes `buf` at `offset`. The chunks it adds are reserved against
    /// the limit first: past it, ENOSPC and nothing is written.
    pub fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut missing = 0u64;
        Self::for_chunks(offset, buf.len() as u64, |idx, _, _| {
            if !self.shard(idx).contains_key(&idx) {
                missing += 1;
            }
        });
        self.reserve(missing * CHUNK)?;
        let mut added = 0u64;
        Self::for_chunks(offset, buf.len() as u64, |idx, dst, src| {
            let mut shard = self.shard(idx);
            let c = shard.entry(idx).or_insert_with(|| {
                added += 1;
                vec![0u8; CHUNK as usize].into_boxed_slice()
            });
            c[dst].copy_from_slice(&buf[src]);
        });
        // Other requests may have added or freed some of these chunks in
        // between: count what was added.
        if added < missing {
            self.used
                .fetch_sub((missing - added) * CHUNK, Ordering::AcqRel);
        } else if added > missing {
            self.used
                .fetch_add((added - missing) * CHUNK, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Zeroes a range, freeing the chunks it covers whole. Costs what is
    /// stored there, not the length: the whole chunks go in one range
    /// removal per shard. Returns how many chunks it removed or zeroed in
    /// part.
    pub fn zero(&self, offset: u64, len: u64) -> u64 {
        let end = offset.saturating_add(len);
        let (first, last) = (offset.div_ceil(CHUNK), end / CHUNK);
        if first >= last {
            // No whole chunk: at most two partial ones.
            return self.zero_part(offset, end - offset);
        }
        let mut done = self.zero_part(offset, first * CHUNK - offset);
        for i in 0..SHARDS {
            let mut shard = self.shard(i);
            let keys: Vec<u64> = shard.range(first..last).map(|(&k, _)| k).collect();
            for k in &keys {
                shard.remove(k);
            }
            done += keys.len() as u64;
            self.used
                .fetch_sub(keys.len() as u64 * CHUNK, Ordering::AcqRel);
        }
        done + self.zero_part(last * CHUNK, end - last * CHUNK)
    }

    /// Zeroes the stored part of a range within at most two chunks.
    fn zero_part(&self, offset: u64, len: u64) -> u64 {
        let mut done = 0;
        Self::for_chunks(offset, len, |idx, range, _| {
            if let Some(c) = self.shard(idx).get_mut(&idx) {
                c[range].fill(0);
                done += 1;
            }
        });
        done
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
        Chunks::write(self, offset, buf)
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

/// `driver=null[,size=SIZE][,mem_limit=SIZE][,zoned=on,zone_size=...,...]`.
pub fn open(opts: &mut OptionMap, _flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let zoned = opts.take_bool("zoned")?.unwrap_or(false);
    let limit = opts
        .take_size("mem_limit")?
        .unwrap_or_else(default_mem_limit);
    if !zoned {
        if let Some(k) = ZONE_OPTIONS
            .iter()
            .chain(FAULT_OPTIONS)
            .find(|k| opts.contains(k))
        {
            return Err(format!("Option '{k}' needs zoned=on"));
        }
        let size = opts.take_size("size")?.unwrap_or(DEFAULT_SIZE);
        return Ok(Arc::new(NullNode::with_limit(size, limit)));
    }
    let size = opts.take_size("size")?.unwrap_or(DEFAULT_ZONED_SIZE);
    let cfg = take_zone_config(opts, size)?;
    let faults = take_zone_faults(opts, false)?;
    let geo = ZoneGeometry::new(&cfg)?;
    let mut state = ZoneState::new(geo);
    faults.apply(&mut state)?;
    state.take_changes();
    Ok(Arc::new(ZonedNullNode {
        dev: EmulatedZoned::new(Chunks::new(limit), state),
    }))
}

impl NullNode {
    /// A plain device without a memory limit (tests and the fuzzer).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn new(size: u64) -> Self {
        NullNode::with_limit(size, u64::MAX)
    }

    /// A plain device storing at most `limit` bytes.
    pub fn with_limit(size: u64, limit: u64) -> Self {
        NullNode {
            size,
            data: Chunks::new(limit),
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
        self.data.write(offset, buf)
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

    fn writev(
        &self,
        offset: u64,
        bufs: &[&[u8]],
        _flags: WriteFlags,
        progress: crate::OnProgress<'_>,
    ) -> io::Result<()> {
        self.dev.writev(offset, bufs, progress)
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

    fn open_opts(o: &str) -> Arc<dyn BlockDriver> {
        open(&mut OptionMap::parse(o).unwrap(), &OpenFlags::default()).unwrap()
    }

    /// A write past `mem_limit` fails with ENOSPC and changes nothing; the
    /// chunks a discard frees can be used again.
    #[test]
    fn writes_past_the_memory_limit_fail_with_enospc() {
        let n = open_opts("driver=null,size=1G,mem_limit=256k");
        let wf = WriteFlags::default();
        n.write(0, &[1u8; 3 * CHUNK as usize], wf).unwrap();
        // Two new chunks where one is left.
        let e = n
            .write(3 * CHUNK, &[2u8; 2 * CHUNK as usize], wf)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        let mut back = vec![0u8; 5 * CHUNK as usize];
        n.read(0, &mut back).unwrap();
        assert!(back[..3 * CHUNK as usize].iter().all(|&b| b == 1));
        assert!(back[3 * CHUNK as usize..].iter().all(|&b| b == 0));
        // Rewriting stored chunks needs no memory; one more chunk fits.
        n.write(0, &[3u8; 4 * CHUNK as usize], wf).unwrap();
        assert!(n.write(4 * CHUNK, &[4u8; 1], wf).is_err());
        n.discard(0, 2 * CHUNK).unwrap();
        n.write(100 * CHUNK, &[5u8; 2 * CHUNK as usize], wf)
            .unwrap();
        let mut bad = OptionMap::parse("driver=null,mem_limit=x").unwrap();
        assert!(open(&mut bad, &OpenFlags::default()).is_err());
    }

    /// Zoned: a write past the limit fails with ENOSPC and is rolled back
    /// (the write pointer stays); a reset gives the memory back.
    #[test]
    fn zoned_write_past_the_memory_limit_is_rolled_back() {
        let n = open_opts("driver=null,zoned=on,size=64M,zone_size=1M,mem_limit=64k");
        let wf = WriteFlags::default();
        n.write(0, &[1u8; CHUNK as usize], wf).unwrap();
        let before = n.zone_report(0, 2).unwrap();
        let e = n.write(CHUNK, &[2u8; 2 * CHUNK as usize], wf).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(n.zone_report(0, 2).unwrap(), before);
        let e = n.zone_append(1 << 20, &[2u8; 4096]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(n.zone_report(0, 2).unwrap(), before);
        n.zone_mgmt(crate::ZoneOp::Reset, 0, 1 << 20).unwrap();
        n.write(0, &[3u8; CHUNK as usize], wf).unwrap();
        assert_eq!(n.zone_report(0, 1).unwrap()[0].wp, CHUNK);
    }

    /// Zeroing costs what is stored, not the length: a huge range holding
    /// two chunks touches two chunks (a loop over the range would not end).
    #[test]
    fn zeroing_a_huge_range_touches_only_what_is_stored() {
        let c = Chunks::default();
        c.write(1 << 40, &[1u8; 4096]).unwrap();
        c.write((1 << 50) + 7, &[1u8; CHUNK as usize]).unwrap();
        assert_eq!(c.chunk_count(), 3);
        assert_eq!(c.used(), 3 * CHUNK);
        assert_eq!(c.zero((1 << 40) + 5, u64::MAX), 3);
        assert_eq!(c.chunk_count(), 1, "the partial first chunk stays");
        assert_eq!(c.used(), CHUNK);
        assert_eq!(c.zero(0, 1 << 62), 1);
        assert_eq!((c.chunk_count(), c.used()), (0, 0));
        assert_eq!(c.zero(0, u64::MAX), 0);
    }
}
