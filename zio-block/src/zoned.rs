//! `zoned`: a persistent zoned image in one sparse file, a format driver
//! over a protocol node. The zone rules are `zone_rules`' (through the
//! `emulated` engine), so a sequence of zio processes on one image behaves
//! like one process on /dev/nullb0: every zone comes back exactly as it was,
//! open zones included, with the implicit-close cursor. `power_cycle=on`
//! opens it as after a power loss instead: open zones come back closed, or
//! empty if unwritten.
//!
//! Zone faults (null_blk's configfs `zone_readonly` / `zone_offline`):
//! `zone_readonly=I[:J...]` and `zone_offline=I[:J...]` given at open put
//! those sequential zones into the read-only (13) or offline (15) condition
//! and write it to the table, so the fault stays, in every later open,
//! until `zone_restore=I[:J...]` brings the zones back empty (their data
//! discarded, as null_blk does when a condition is set twice). Asking for
//! a condition a zone already has, or restoring a healthy zone, changes
//! nothing. Opened read-only (`-r`), the faults apply to that session only.
//!
//! Layout (little endian), all checksums CRC-32; docs/zoned-image.md has
//! the byte tables:
//! - header, 4 KiB at 0: magic `ZIOZONED`, version 2, the geometry as
//!   given at creation (size, zone size and capacity, zone counts, limits),
//!   where the table, the log and the data start; its checksum last.
//! - table at 4 KiB: 32-byte records, each with its own checksum: record 0
//!   holds the implicit-close cursor, record 1 + i zone i's write pointer
//!   and condition. It is the state as of the last checkpoint.
//! - log: two 4 KiB superblock slots (the newer valid one names the log's
//!   epoch), then [`LOG_SIZE`] bytes of entries, each 4 KiB aligned: one
//!   entry per command (the records it changed) or a flush marker.
//! - data at the next MiB boundary, `size` bytes, sparse.
//!
//! Crash safety (write-ahead log): a command's data is stored first, then
//! one log entry with all the records it changed, so a kill at any point
//! leaves either the whole command or none of it. `flush` syncs the file,
//! appends a marker and syncs again: the marker says everything before it
//! is on stable storage. Opening replays the log over the table; entries
//! after the last marker are replayed only if they were written since this
//! machine booted (the boot id in each entry), since after a power loss
//! they may have reached the disk without their data. A checkpoint (log
//! full, or after dropping such entries) flushes, writes the logged
//! records into the table, syncs, and starts a new epoch in the other
//! slot. A reset is flushed before its data is discarded.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::emulated::{
    EmulatedZoned, ZoneStore, forward_to_engine, take_zone_config, take_zone_faults,
};
use super::open::open_child;
use super::zone::ZoneCond;
use super::zone_rules::{
    Device, Dirty, Kernel, SavedZones, ZoneConfig, ZoneGeometry, ZoneLoad, ZoneState,
};
use super::{BlockDriver, NodeInfo, OpenFlags, OptionMap, Role, WriteFlags};

pub const MAGIC: &[u8; 8] = b"ZIOZONED";
pub const VERSION: u32 = 2;
pub(crate) const HEADER_SIZE: u64 = 4096;
pub(crate) const RECORD: u64 = 32;
const DATA_ALIGN: u64 = 1 << 20;
/// One superblock slot of the log.
pub(crate) const SLOT: u64 = 4096;
/// Bytes of log entries after the two slots.
pub const LOG_SIZE: u64 = 8 << 20;
/// Log entries start at multiples of this (no entry shares a sector with
/// another).
pub(crate) const ENTRY_ALIGN: u64 = 4096;
const ENTRY_HEAD: usize = 64;
/// Largest write of table records written in place.
const TABLE_BATCH: usize = 1 << 20;
const LOG_REC: usize = 24;
const SLOT_MAGIC: &[u8; 8] = b"ZIOLOGSB";
const ENTRY_MAGIC: &[u8; 8] = b"ZIOLOGTX";
/// Entry kinds.
const KIND_CHANGE: u8 = 1;
const KIND_MARKER: u8 = 2;
/// The sector size write pointers are multiples of.
const SECTOR: u64 = super::emulated::SECTOR;

/// The header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub cfg: ZoneConfig,
    pub nr_zones: u64,
    pub table_offset: u64,
    /// The two superblock slots, then the entries.
    pub log_offset: u64,
    pub log_size: u64,
    pub data_offset: u64,
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

/// The kernel profile's code (`Kernel::code`; 0, 6.1, in older images).
const KERNEL_AT: usize = 104;
/// The device family's code (`Device::code`; 0, null_blk, in older images).
const DEVICE_AT: usize = 105;
/// Where the header's fields end; every byte from here to the checksum is
/// zero.
const HEADER_FIELDS_END: usize = 106;

impl Header {
    /// The layout for a geometry.
    pub fn for_config(cfg: ZoneConfig, geo: &ZoneGeometry) -> Header {
        let nr_zones = geo.nr_zones() as u64;
        let table_len = ((nr_zones + 1) * RECORD).div_ceil(HEADER_SIZE) * HEADER_SIZE;
        let log_offset = HEADER_SIZE + table_len;
        let log_end = log_offset + 2 * SLOT + LOG_SIZE;
        Header {
            cfg,
            nr_zones,
            table_offset: HEADER_SIZE,
            log_offset,
            log_size: LOG_SIZE,
            data_offset: log_end.div_ceil(DATA_ALIGN) * DATA_ALIGN,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_SIZE as usize];
        let c = &self.cfg;
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        b[16..24].copy_from_slice(&c.size.to_le_bytes());
        b[24..32].copy_from_slice(&c.zone_size.to_le_bytes());
        b[32..40].copy_from_slice(&c.zone_capacity.unwrap_or(0).to_le_bytes());
        b[40..48].copy_from_slice(&self.nr_zones.to_le_bytes());
        b[48..56].copy_from_slice(&(c.nr_conv as u64).to_le_bytes());
        b[56..60].copy_from_slice(&c.max_open.to_le_bytes());
        b[60..64].copy_from_slice(&c.max_active.to_le_bytes());
        b[64..72].copy_from_slice(&c.zone_append_max.to_le_bytes());
        b[72..80].copy_from_slice(&self.table_offset.to_le_bytes());
        b[80..88].copy_from_slice(&self.data_offset.to_le_bytes());
        b[88..96].copy_from_slice(&self.log_offset.to_le_bytes());
        b[96..104].copy_from_slice(&self.log_size.to_le_bytes());
        b[KERNEL_AT] = c.kernel.code();
        b[DEVICE_AT] = c.device.code();
        let sum = crc(&b[..HEADER_SIZE as usize - 4]);
        b[HEADER_SIZE as usize - 4..].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Decodes and checks a header: magic, version, checksum, reserved
    /// bytes, and a geometry that can exist with the layout it implies.
    pub fn decode(b: &[u8]) -> Result<(Header, ZoneGeometry), String> {
        if b.len() < HEADER_SIZE as usize || &b[0..8] != MAGIC {
            return Err("not a zoned image (bad magic)".into());
        }
        let version = le32(b, 8);
        if version != VERSION {
            return Err(format!(
                "unsupported zoned image version {version} (this zio reads version {VERSION}; recreate the image with zio create)"
            ));
        }
        let sum = le32(b, HEADER_SIZE as usize - 4);
        if crc(&b[..HEADER_SIZE as usize - 4]) != sum {
            return Err("zoned image header checksum mismatch".into());
        }
        if le32(b, 12) as u64 != HEADER_SIZE {
            return Err(format!(
                "zoned image header size {} is not {HEADER_SIZE}",
                le32(b, 12)
            ));
        }
        if b[HEADER_FIELDS_END..HEADER_SIZE as usize - 4]
            .iter()
            .any(|&x| x != 0)
        {
            return Err("zoned image header: reserved bytes are not zero".into());
        }
        let cap = le64(b, 32);
        let cfg = ZoneConfig {
            size: le64(b, 16),
            zone_size: le64(b, 24),
            zone_capacity: (cap != 0).then_some(cap),
            nr_conv: le64(b, 48).min(usize::MAX as u64) as usize,
            max_open: le32(b, 56),
            max_active: le32(b, 60),
            zone_append_max: le64(b, 64),
            kernel: Kernel::from_code(b[KERNEL_AT])
                .ok_or_else(|| format!("unknown kernel profile {} in the header", b[KERNEL_AT]))?,
            device: Device::from_code(b[DEVICE_AT])
                .ok_or_else(|| format!("unknown device family {} in the header", b[DEVICE_AT]))?,
        };
        let geo = ZoneGeometry::new(&cfg).map_err(|e| format!("impossible geometry: {e}"))?;
        let want = Header::for_config(cfg, &geo);
        if want
            .data_offset
            .checked_add(cfg.size)
            .is_none_or(|end| end > i64::MAX as u64)
        {
            return Err(format!(
                "impossible geometry: a device of {} bytes does not fit in a file",
                cfg.size
            ));
        }
        let got = Header {
            cfg,
            nr_zones: le64(b, 40),
            table_offset: le64(b, 72),
            log_offset: le64(b, 88),
            log_size: le64(b, 96),
            data_offset: le64(b, 80),
        };
        if got != want {
            return Err(format!(
                "impossible geometry: {} zones, table at {}, log at {} ({} bytes), data at {} (expected {}, {}, {} ({}), {})",
                got.nr_zones,
                got.table_offset,
                got.log_offset,
                got.log_size,
                got.data_offset,
                want.nr_zones,
                want.table_offset,
                want.log_offset,
                want.log_size,
                want.data_offset
            ));
        }
        Ok((got, geo))
    }

    pub fn file_len(&self) -> u64 {
        self.data_offset + self.cfg.size
    }

    fn entries_offset(&self) -> u64 {
        self.log_offset + 2 * SLOT
    }
}

/// One table record: `(value, cond)` with its index folded into the
/// checksum, so a record written to the wrong place is caught too.
pub(crate) fn encode_record(index: u64, value: u64, cond: u8) -> [u8; RECORD as usize] {
    let mut r = [0u8; RECORD as usize];
    r[0..8].copy_from_slice(&value.to_le_bytes());
    r[8] = cond;
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(&r[..28]);
    r[28..32].copy_from_slice(&h.finalize().to_le_bytes());
    r
}

/// Decodes a table record whose checksum holds: `(value, cond)`, or what
/// is wrong with it (bad checksum, non-zero reserved bytes).
pub(crate) fn decode_record(index: u64, r: &[u8]) -> Result<(u64, u8), String> {
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(&r[..28]);
    if h.finalize() != le32(r, 28) {
        return Err("the record has a bad checksum".into());
    }
    if r[9..28].iter().any(|&x| x != 0) {
        return Err("the record's reserved bytes are not zero".into());
    }
    Ok((le64(r, 0), r[8]))
}

/// Checks one decoded record of table index `index` (0: the cursor, 1 + i:
/// zone i) against the geometry; `Ok` carries the zone's `(wp, cond)`.
pub(crate) fn check_record(
    geo: &ZoneGeometry,
    index: u64,
    value: u64,
    cond: u8,
) -> Result<(u64, ZoneCond), String> {
    if index == 0 {
        if cond != 0 {
            return Err(format!("the cursor record has a condition byte {cond}"));
        }
        if value < geo.nr_conv() as u64 || value >= geo.nr_zones() as u64 {
            return Err(format!(
                "the implicit-close cursor {value} is not a sequential zone"
            ));
        }
        return Ok((value, ZoneCond::Empty));
    }
    let i = index - 1;
    let c = ZoneCond::from_u8(cond).ok_or_else(|| format!("zone {i}: unknown condition {cond}"))?;
    if !value.is_multiple_of(SECTOR) {
        return Err(format!(
            "zone {i}: write pointer {value:#x} is not a multiple of {SECTOR}"
        ));
    }
    Ok((value, c))
}

/// The table records of a whole state (cursor first).
#[cfg(test)]
fn encode_table(saved: &SavedZones) -> Vec<u8> {
    let mut t = Vec::new();
    encode_table_batches(saved.cursor, saved.zones.iter().copied(), |_, b| {
        t.extend_from_slice(b);
        Ok(())
    })
    .expect("into memory");
    t
}

/// The table records of a whole state (the cursor first, then every
/// zone's `(wp, cond)` in zone order), handed to `write` as `(byte offset
/// in the table, records)` of at most [`TABLE_BATCH`] bytes.
fn encode_table_batches(
    cursor: usize,
    zones: impl Iterator<Item = (u64, ZoneCond)>,
    mut write: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let per_batch = TABLE_BATCH / RECORD as usize;
    let mut b = Vec::with_capacity(TABLE_BATCH);
    b.extend_from_slice(&encode_record(0, cursor as u64, 0));
    let mut at = 0;
    for (i, (wp, cond)) in zones.enumerate() {
        if b.len() / RECORD as usize == per_batch {
            write(at, &b)?;
            at += b.len() as u64;
            b.clear();
        }
        b.extend_from_slice(&encode_record(i as u64 + 1, wp, cond.as_u8()));
    }
    write(at, &b)
}

/// Reads and checks the table; errors name the zone.
#[cfg(test)]
fn decode_table(table: &[u8], geo: &ZoneGeometry) -> Result<SavedZones, String> {
    let mut saved = SavedZones {
        zones: vec![(0, ZoneCond::NotWp); geo.nr_zones()],
        cursor: 0,
    };
    decode_table_from(geo, &mut saved, |at, buf| {
        let at = at as usize;
        buf.copy_from_slice(&table[at..at + buf.len()]);
        Ok(())
    })?;
    Ok(saved)
}

/// Where decoded table and log records go: a [`SavedZones`] (`zio check`,
/// sized for the geometry) or a [`ZoneLoad`] (opening an image, which
/// keeps no copy of the table).
pub(crate) trait Records {
    /// Record `index` (0: the cursor, 1 + i: zone i) is `(value, cond)`.
    fn put(&mut self, index: u64, value: u64, cond: ZoneCond);
}

impl Records for SavedZones {
    fn put(&mut self, index: u64, value: u64, cond: ZoneCond) {
        match index {
            0 => self.cursor = value as usize,
            i => self.zones[i as usize - 1] = (value, cond),
        }
    }
}

impl Records for ZoneLoad {
    fn put(&mut self, index: u64, value: u64, cond: ZoneCond) {
        match index {
            0 => self.set_cursor(value as usize),
            i => self.set(i as usize - 1, value, cond),
        }
    }
}

/// Reads the table with `read(byte offset in the table, buffer)`, in
/// batches of at most [`TABLE_BATCH`] bytes, checks it (errors name the
/// zone) and hands every record to `out`.
fn decode_table_from(
    geo: &ZoneGeometry,
    out: &mut impl Records,
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), String>,
) -> Result<(), String> {
    let nr_zones = geo.nr_zones();
    let get = |i: usize, r: &[u8]| {
        let (v, c) = decode_record(i as u64, r).map_err(|e| match i {
            0 => format!("zone table: the cursor record: {e}"),
            _ => format!("zone table: zone {}: {e}", i - 1),
        })?;
        check_record(geo, i as u64, v, c).map_err(|e| format!("zone table: {e}"))
    };
    let per_batch = TABLE_BATCH / RECORD as usize;
    let mut buf = vec![0u8; per_batch.min(nr_zones + 1) * RECORD as usize];
    let mut first = 0;
    while first < nr_zones + 1 {
        let n = per_batch.min(nr_zones + 1 - first);
        let b = &mut buf[..n * RECORD as usize];
        read(first as u64 * RECORD, b)?;
        for (k, r) in b.chunks_exact(RECORD as usize).enumerate() {
            let i = first + k;
            let (v, c) = get(i, r)?;
            out.put(i as u64, v, c);
        }
        first += n;
    }
    Ok(())
}

/// A superblock slot naming log epoch `epoch`.
fn encode_slot(epoch: u64) -> Vec<u8> {
    let mut b = vec![0u8; SLOT as usize];
    b[0..8].copy_from_slice(SLOT_MAGIC);
    b[8..16].copy_from_slice(&epoch.to_le_bytes());
    let sum = crc(&b[..SLOT as usize - 4]);
    b[SLOT as usize - 4..].copy_from_slice(&sum.to_le_bytes());
    b
}

/// The epoch a slot names, if it is intact.
pub(crate) fn decode_slot(b: &[u8]) -> Option<u64> {
    let n = SLOT as usize;
    (b.len() >= n
        && &b[0..8] == SLOT_MAGIC
        && b[16..n - 4].iter().all(|&x| x == 0)
        && crc(&b[..n - 4]) == le32(b, n - 4))
    .then(|| le64(b, 8))
}

/// This boot of the machine (Linux's boot id), or zeros if unknown.
fn boot_id() -> [u8; 16] {
    static ID: OnceLock<[u8; 16]> = OnceLock::new();
    *ID.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let hex: Vec<u8> = text
            .trim()
            .chars()
            .filter(|c| *c != '-')
            .filter_map(|c| c.to_digit(16).map(|d| d as u8))
            .collect();
        let mut id = [0u8; 16];
        if hex.len() == 32 {
            for (k, b) in id.iter_mut().enumerate() {
                *b = hex[2 * k] << 4 | hex[2 * k + 1];
            }
        }
        id
    })
}

/// Bytes an entry of `nrec` records takes in the log.
fn entry_len(nrec: usize) -> u64 {
    ((ENTRY_HEAD + nrec * LOG_REC) as u64).div_ceil(ENTRY_ALIGN) * ENTRY_ALIGN
}

/// A log entry: records as `(table index, value, cond)`.
fn encode_entry(
    epoch: u64,
    seq: u64,
    kind: u8,
    boot: &[u8; 16],
    recs: &[(u64, u64, u8)],
) -> Vec<u8> {
    let mut b = vec![0u8; entry_len(recs.len()) as usize];
    b[0..8].copy_from_slice(ENTRY_MAGIC);
    b[8..16].copy_from_slice(&epoch.to_le_bytes());
    b[16..24].copy_from_slice(&seq.to_le_bytes());
    b[24..28].copy_from_slice(&(recs.len() as u32).to_le_bytes());
    b[28] = kind;
    b[32..48].copy_from_slice(boot);
    for (k, &(index, value, cond)) in recs.iter().enumerate() {
        let at = ENTRY_HEAD + k * LOG_REC;
        b[at..at + 8].copy_from_slice(&index.to_le_bytes());
        b[at + 8..at + 16].copy_from_slice(&value.to_le_bytes());
        b[at + 16] = cond;
    }
    let end = ENTRY_HEAD + recs.len() * LOG_REC;
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..60]);
    h.update(&b[ENTRY_HEAD..end]);
    b[60..64].copy_from_slice(&h.finalize().to_le_bytes());
    b
}

/// One entry read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub kind: u8,
    pub boot: [u8; 16],
    pub recs: Vec<(u64, u64, u8)>,
    pub len: u64,
}

/// Reads the entry at `pos` of the log if it is intact and the next one
/// (`epoch`, `seq`); `None` where the log ends, `Some(Err)` for an entry
/// whose checksum holds but whose content breaks the format.
fn read_entry(
    child: &dyn BlockDriver,
    h: &Header,
    epoch: u64,
    seq: u64,
    pos: u64,
) -> io::Result<Option<Result<Entry, String>>> {
    if pos + ENTRY_ALIGN > h.log_size {
        return Ok(None);
    }
    let mut head = vec![0u8; ENTRY_ALIGN as usize];
    child.read(h.entries_offset() + pos, &mut head)?;
    let nrec = le32(&head, 24) as usize;
    let kind = head[28];
    if &head[0..8] != ENTRY_MAGIC
        || le64(&head, 8) != epoch
        || le64(&head, 16) != seq
        || !(kind == KIND_CHANGE || kind == KIND_MARKER)
        || nrec as u64 > h.log_size / LOG_REC as u64
    {
        return Ok(None);
    }
    let len = entry_len(nrec);
    if pos + len > h.log_size {
        return Ok(None);
    }
    let mut b = head;
    if len > ENTRY_ALIGN {
        b.resize(len as usize, 0);
        child.read(
            h.entries_offset() + pos + ENTRY_ALIGN,
            &mut b[ENTRY_ALIGN as usize..],
        )?;
    }
    let end = ENTRY_HEAD + nrec * LOG_REC;
    let mut hs = crc32fast::Hasher::new();
    hs.update(&b[..60]);
    hs.update(&b[ENTRY_HEAD..end]);
    if hs.finalize() != le32(&b, 60) {
        return Ok(None);
    }
    let reserved_ok = b[29..32].iter().chain(&b[48..60]).all(|&x| x == 0)
        && (0..nrec).all(|k| {
            let at = ENTRY_HEAD + k * LOG_REC;
            b[at + 17..at + LOG_REC].iter().all(|&x| x == 0)
        })
        && (kind == KIND_CHANGE || nrec == 0);
    if !reserved_ok {
        return Ok(Some(Err(
            "its reserved bytes are not zero (or a flush marker has records)".into(),
        )));
    }
    let recs = (0..nrec)
        .map(|k| {
            let at = ENTRY_HEAD + k * LOG_REC;
            (le64(&b, at), le64(&b, at + 8), b[at + 16])
        })
        .collect();
    let mut boot = [0u8; 16];
    boot.copy_from_slice(&b[32..48]);
    Ok(Some(Ok(Entry {
        kind,
        boot,
        recs,
        len,
    })))
}

/// The log as found at open.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogScan {
    /// The current epoch and the slot (0 or 1) naming it.
    pub epoch: u64,
    pub slot: u64,
    /// Entries that count, in order, and where the log goes on after them.
    pub kept: Vec<Entry>,
    pub end: u64,
    /// Entries after the last flush marker that were dropped: written in
    /// an earlier boot, so their data may not have reached the disk.
    pub dropped: usize,
    /// An entry with a valid checksum that breaks the format: the log is
    /// taken to end before it (`zio check` reports it).
    pub problem: Option<String>,
}

/// Reads the superblock slots and the entries of the current epoch.
pub(crate) fn scan_log(child: &dyn BlockDriver, h: &Header) -> Result<LogScan, String> {
    let io_err = |e: io::Error| format!("reading the zoned image log: {}", super::strerror(&e));
    let mut slots = vec![0u8; 2 * SLOT as usize];
    child.read(h.log_offset, &mut slots).map_err(io_err)?;
    let a = decode_slot(&slots[..SLOT as usize]);
    let b = decode_slot(&slots[SLOT as usize..]);
    let (slot, epoch) = match (a, b) {
        (Some(x), Some(y)) if y > x => (1, y),
        (Some(x), _) => (0, x),
        (None, Some(y)) => (1, y),
        (None, None) => {
            return Err("zoned image log: neither superblock slot is intact".into());
        }
    };
    let mut all: Vec<Entry> = Vec::new();
    let mut pos = 0;
    let mut problem = None;
    while let Some(e) = read_entry(child, h, epoch, all.len() as u64, pos).map_err(io_err)? {
        match e {
            Ok(e) => {
                pos += e.len;
                all.push(e);
            }
            Err(why) => {
                // The log ends before it: it is not trusted.
                problem = Some(format!("zoned image log: entry {}: {why}", all.len()));
                break;
            }
        }
    }
    // Entries after the last marker count only if written in this boot.
    let after = all
        .iter()
        .rposition(|e| e.kind == KIND_MARKER)
        .map_or(0, |m| m + 1);
    let here = boot_id();
    let same_boot = here != [0; 16] && all[after..].iter().all(|e| e.boot == here);
    let keep = if same_boot { all.len() } else { after };
    let dropped = all.len() - keep;
    all.truncate(keep);
    let end = all.iter().map(|e| e.len).sum();
    Ok(LogScan {
        epoch,
        slot,
        kept: all,
        end,
        dropped,
        problem,
    })
}

/// An epoch no entry left in a log whose slots are both lost can carry:
/// the time in nanoseconds (epochs otherwise count up from 1).
fn unused_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1 << 62, |d| d.as_nanos() as u64 | 1 << 62)
}

/// Starts a new, empty log epoch (after the table was rewritten whole):
/// the newer intact slot's epoch plus one, in the other slot.
pub(crate) fn restart_log(child: &dyn BlockDriver, h: &Header) -> io::Result<()> {
    let mut slots = vec![0u8; 2 * SLOT as usize];
    let (slot, epoch) = match child.read(h.log_offset, &mut slots) {
        Ok(()) => {
            let a = decode_slot(&slots[..SLOT as usize]);
            let b = decode_slot(&slots[SLOT as usize..]);
            match (a, b) {
                (Some(x), Some(y)) if y > x => (0, y + 1),
                (Some(x), _) => (1, x + 1),
                (None, Some(y)) => (0, y + 1),
                (None, None) => (0, unused_epoch()),
            }
        }
        Err(_) => (0, unused_epoch()),
    };
    child.write(
        h.log_offset + slot * SLOT,
        &encode_slot(epoch),
        WriteFlags::default(),
    )
}

/// Lays the kept log entries over a table's records; an entry naming a
/// record that does not exist or does not fit is an error.
pub(crate) fn replay(
    geo: &ZoneGeometry,
    saved: &mut impl Records,
    log: &LogScan,
) -> Result<(), String> {
    for (n, e) in log.kept.iter().enumerate() {
        for &(index, value, cond) in &e.recs {
            if index > geo.nr_zones() as u64 {
                return Err(format!(
                    "zoned image log: entry {n} names record {index} of {}",
                    geo.nr_zones() + 1
                ));
            }
            let (v, c) = check_record(geo, index, value, cond)
                .map_err(|err| format!("zoned image log: entry {n}: {err}"))?;
            saved.put(index, v, c);
        }
    }
    Ok(())
}

/// Creates a zoned image at `path`, empty: `format` builds it in a
/// temporary file that replaces `path` only once it is complete (see
/// `create::create_image`).
pub fn create(path: &str, cfg: &ZoneConfig) -> Result<Header, String> {
    super::create::create_image(path, |file| format(file, cfg))
}

/// The create hook (`zio create -f zoned -o zone_size=...`): the zone
/// options are checked, then the geometry, before anything is touched.
pub(crate) fn create_opts(path: &str, size: u64, opts: &mut OptionMap) -> Result<String, String> {
    let cfg = take_zone_config(opts, size)?;
    opts.finish("format", "zoned")?;
    let geo = ZoneGeometry::new(&cfg)?;
    create(path, &cfg)?;
    let notes = limit_notes(&cfg, &geo);
    Ok(format!(
        " size={size} zone_size={} zone_capacity={} zone_nr_conv={} zone_max_open={} zone_max_active={} zone_append_max={}",
        cfg.zone_size,
        cfg.zone_capacity.unwrap_or(cfg.zone_size),
        cfg.nr_conv,
        cfg.max_open,
        cfg.max_active,
        cfg.zone_append_max
    ) + &match cfg.kernel {
        Kernel::V6_1 => String::new(),
        k => format!(" kernel={}", k.name()),
    } + &match cfg.device {
        Device::NullBlk => String::new(),
        d => format!(" device={}", d.name()),
    } + &notes)
}

/// The lines that follow `Formatting ...` when a zone limit does not apply
/// as given: the limit the device reports and why (null_blk's rules, which
/// the image keeps for every device family). The header keeps the given
/// values; the limit is derived from them again at every open.
fn limit_notes(cfg: &ZoneConfig, geo: &ZoneGeometry) -> String {
    let nr_seq = (geo.nr_zones() - geo.nr_conv()) as u64;
    let seq_zones = super::units::plural(nr_seq, "sequential zone", "sequential zones");
    let mut notes = String::new();
    let mut note = |name: &str, given: u32, applied: u32, why: String| {
        if given != applied {
            let applied = match applied {
                0 => "0 (no limit)".to_string(),
                n => n.to_string(),
            };
            notes.push_str(&format!("\n{name}={given} applies as {applied}: {why}"));
        }
    };
    note(
        "zone_max_active",
        cfg.max_active,
        geo.max_active(),
        format!("it is not below the {}", seq_zones),
    );
    let why = if geo.max_active() != 0 && cfg.max_open > geo.max_active() {
        "null_blk clamps zone_max_open to zone_max_active".to_string()
    } else {
        format!("it is not below the {seq_zones}")
    };
    note("zone_max_open", cfg.max_open, geo.max_open(), why);
    notes
}

/// Writes a fresh, empty zoned image of `cfg` into `file` (open for
/// writing, empty) and syncs it. Errors are the reason alone (the caller
/// names the file).
pub fn format(file: &File, cfg: &ZoneConfig) -> Result<Header, String> {
    let geo = ZoneGeometry::new(cfg)?;
    let header = Header::for_config(*cfg, &geo);
    let fail = |e: io::Error| super::strerror(&e);
    file.set_len(header.file_len()).map_err(fail)?;
    let zones = (0..geo.nr_zones()).map(|i| {
        let z = geo.initial_zone(i);
        (z.wp, z.cond)
    });
    encode_table_batches(geo.nr_conv(), zones, |at, b| {
        file.write_all_at(b, header.table_offset + at)
    })
    .map_err(fail)?;
    file.write_all_at(&encode_slot(1), header.log_offset)
        .map_err(fail)?;
    // (A temporary file until it replaces the target: nothing needs to
    // be ordered inside it.)
    file.write_all_at(&header.encode(), 0).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    Ok(header)
}

/// The log's position while the image is open.
struct Log {
    epoch: u64,
    slot: u64,
    seq: u64,
    pos: u64,
    /// Table records changed since the last checkpoint, as last logged.
    logged: BTreeMap<u64, (u64, u8)>,
    /// Entries written since the last marker.
    unflushed: bool,
}

/// Where a zoned image keeps things: its protocol child.
pub struct ImageStore {
    child: Arc<dyn BlockDriver>,
    header: Header,
    log: Mutex<Log>,
    /// Something was written to the child since its last sync.
    written: AtomicBool,
}

fn wf() -> WriteFlags {
    WriteFlags::default()
}

impl ImageStore {
    fn lock_log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append_entry(&self, log: &mut Log, kind: u8, recs: &[(u64, u64, u8)]) -> io::Result<()> {
        self.written.store(true, Ordering::Release);
        let e = encode_entry(log.epoch, log.seq, kind, &boot_id(), recs);
        let at = self.header.entries_offset() + log.pos;
        if let Err(err) = self.child.write(at, &e, wf()) {
            // Whatever part landed must not be taken for an entry later.
            let _ = self.child.write(at, &[0u8; ENTRY_ALIGN as usize], wf());
            return Err(err);
        }
        log.pos += e.len() as u64;
        log.seq += 1;
        Ok(())
    }

    /// Everything stored and logged so far on stable storage, with a
    /// marker saying so.
    fn flush_log(&self, log: &mut Log) -> io::Result<()> {
        if !self.written.swap(false, Ordering::AcqRel) && !log.unflushed {
            return Ok(());
        }
        if let Err(e) = self.child.flush() {
            self.written.store(true, Ordering::Release);
            return Err(e);
        }
        if log.unflushed {
            self.append_entry(log, KIND_MARKER, &[])?;
            self.child.flush()?;
            self.written.store(false, Ordering::Release);
            log.unflushed = false;
        }
        Ok(())
    }

    /// Writes records into the table in place: runs of consecutive
    /// records in one write each, a long run in writes of at most
    /// [`TABLE_BATCH`] bytes, so memory stays bounded however many records
    /// there are.
    fn write_table(&self, recs: impl IntoIterator<Item = (u64, u64, u8)>) -> io::Result<()> {
        self.written.store(true, Ordering::Release);
        let t = self.header.table_offset;
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0;
        let mut next = None;
        for (index, value, cond) in recs {
            if !run.is_empty() && (next != Some(index) || run.len() >= TABLE_BATCH) {
                self.child.write(t + run_start * RECORD, &run, wf())?;
                run.clear();
            }
            if run.is_empty() {
                run_start = index;
            }
            run.extend_from_slice(&encode_record(index, value, cond));
            next = Some(index + 1);
        }
        if !run.is_empty() {
            self.child.write(t + run_start * RECORD, &run, wf())?;
        }
        Ok(())
    }

    /// Folds the log into the table and starts a new, empty epoch.
    fn checkpoint(&self, log: &mut Log) -> io::Result<()> {
        self.flush_log(log)?;
        if !log.logged.is_empty() {
            self.write_table(log.logged.iter().map(|(&i, &(v, c))| (i, v, c)))?;
            self.child.flush()?;
        }
        let next = 1 - log.slot;
        self.written.store(true, Ordering::Release);
        self.child.write(
            self.header.log_offset + next * SLOT,
            &encode_slot(log.epoch + 1),
            wf(),
        )?;
        // Not synced: until the next sync makes it durable, a power loss
        // brings back the old epoch, whose log (all before a marker)
        // replays over the table to the same state.
        log.epoch += 1;
        log.slot = next;
        log.seq = 0;
        log.pos = 0;
        log.logged.clear();
        Ok(())
    }
}

impl ZoneStore for ImageStore {
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.child.read(self.header.data_offset + offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.written.store(true, Ordering::Release);
        self.child
            .write(self.header.data_offset + offset, buf, wf())
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.written.store(true, Ordering::Release);
        self.child.discard(self.header.data_offset + offset, len)
    }

    fn expose(&self, offset: u64, len: u64) -> io::Result<()> {
        self.written.store(true, Ordering::Release);
        let flags = WriteFlags {
            may_unmap: true,
            ..WriteFlags::default()
        };
        self.child
            .write_zeroes(self.header.data_offset + offset, len, flags)
    }

    fn commit(&self, state: &ZoneState, dirty: &Dirty) -> io::Result<()> {
        let mut log = self.lock_log();
        let cursor = dirty.cursor_moved.then(|| (0, state.cursor() as u64, 0));
        let order = state.releases_first(&dirty.zones);
        let recs = cursor.into_iter().chain(order.iter().map(|&i| {
            let z = state.zone(i);
            (i as u64 + 1, z.wp, z.cond.as_u8())
        }));
        let len = entry_len(order.len() + usize::from(cursor.is_some()));
        if log.pos + len + ENTRY_ALIGN > self.header.log_size {
            self.checkpoint(&mut log)?;
        }
        if len + ENTRY_ALIGN > self.header.log_size {
            // Larger than the whole log: written in place after the
            // checkpoint, the records that give resources back first, so
            // every prefix keeps the limits.
            // (`recs` is the cursor, then the releases, then the rest,
            // each in ascending order: runs break between them.)
            return self.write_table(recs);
        }
        let recs: Vec<_> = recs.collect();
        self.append_entry(&mut log, KIND_CHANGE, &recs)?;
        for (index, value, cond) in recs {
            log.logged.insert(index, (value, cond));
        }
        log.unflushed = true;
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        let mut log = self.lock_log();
        self.flush_log(&mut log)
    }
}

pub struct ZonedNode {
    dev: EmulatedZoned<ImageStore>,
    read_only: bool,
}

/// `driver=zoned[,power_cycle=on][,zone_readonly=I:..][,zone_offline=I:..]
/// [,zone_restore=I:..],file.*=...`.
pub fn open(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let child = open_child(opts, "file", flags)?;
    open_over(child, opts, flags)
}

/// What a zoned image holds, read and checked: the header, the table
/// with the log replayed over it (still to be judged as a whole).
pub(crate) struct Loaded {
    pub header: Header,
    pub zones: ZoneLoad,
    pub log: LogScan,
}

/// Reads a zoned image's header, table and log from `child`.
pub(crate) fn load(child: &dyn BlockDriver) -> Result<Loaded, String> {
    let io_err = |what: &str, e: io::Error| format!("{what}: {}", super::strerror(&e));
    let len = child.length().map_err(|e| io_err("zoned image", e))?;
    if len < HEADER_SIZE {
        return Err(format!(
            "zoned image is truncated: {len} bytes, less than a header"
        ));
    }
    let mut hb = vec![0u8; HEADER_SIZE as usize];
    child
        .read(0, &mut hb)
        .map_err(|e| io_err("reading the zoned image header", e))?;
    let (header, geo) = Header::decode(&hb)?;
    if len < header.file_len() {
        return Err(format!(
            "zoned image is truncated: {len} bytes, the geometry needs {}",
            header.file_len()
        ));
    }
    let mut zones = ZoneLoad::new(geo);
    decode_table_from(&geo, &mut zones, |at, buf| {
        child
            .read(header.table_offset + at, buf)
            .map_err(|e| io_err("reading the zone table", e))
    })?;
    let log = scan_log(child, &header)?;
    replay(&geo, &mut zones, &log)?;
    Ok(Loaded { header, zones, log })
}

/// An open error that `zio check --repair` can repair (a bad table record
/// or log entry, a truncated file) points at it; a damaged header cannot
/// be repaired and gets no hint.
fn repair_hint(e: String) -> String {
    let repairable = e.starts_with("zone table:")
        || e.starts_with("zoned image log:")
        || e.contains("the geometry needs");
    if repairable {
        format!("{e} (zio check --repair can repair the image)")
    } else {
        e
    }
}

/// Opens a zoned image on an already open protocol node (probing).
pub fn open_over(
    child: Arc<dyn BlockDriver>,
    opts: &mut OptionMap,
    flags: &OpenFlags,
) -> Result<Arc<dyn BlockDriver>, String> {
    let power_cycle = opts.take_bool("power_cycle")?.unwrap_or(false);
    let faults = take_zone_faults(opts, true)?;
    let io_err = |what: &str, e: io::Error| format!("{what}: {}", super::strerror(&e));
    let Loaded {
        header,
        zones: mut load,
        log: scan,
    } = load(child.as_ref()).map_err(repair_hint)?;
    let cycled = if power_cycle {
        load.power_cycle()
    } else {
        Vec::new()
    };
    let mut state = load
        .finish()
        .map_err(|e| repair_hint(format!("zone table: {e}")))?;
    let restored = faults.apply(&mut state)?;
    let mut logged = BTreeMap::new();
    for e in &scan.kept {
        for &(index, value, cond) in &e.recs {
            logged.insert(index, (value, cond));
        }
    }
    let store = ImageStore {
        child,
        header,
        written: AtomicBool::new(false),
        log: Mutex::new(Log {
            epoch: scan.epoch,
            slot: scan.slot,
            seq: scan.kept.len() as u64,
            pos: scan.end,
            logged,
            unflushed: scan.kept.last().is_some_and(|e| e.kind == KIND_CHANGE),
        }),
    };
    if !flags.read_only {
        let mut log = store.lock_log();
        if scan.dropped > 0 {
            // Start a new epoch so the dropped entries can never count.
            store
                .checkpoint(&mut log)
                .map_err(|e| io_err("writing the zone table", e))?;
        }
        drop(log);
        let mut dirty = state.take_changes();
        dirty.zones.extend(cycled);
        dirty.zones.sort_unstable();
        dirty.zones.dedup();
        if !dirty.zones.is_empty() {
            store
                .commit(&state, &dirty)
                .and_then(|()| store.flush())
                .map_err(|e| io_err("writing the zone table", e))?;
            for (start, len) in restored {
                let _ = store.discard(start, len);
            }
        }
    } else {
        state.take_changes();
    }
    Ok(Arc::new(ZonedNode {
        dev: EmulatedZoned::new(store, state),
        read_only: flags.read_only,
    }))
}

/// True if the first bytes of a file are a zoned image's magic.
pub fn probe(first: &[u8]) -> bool {
    first.len() >= MAGIC.len() && &first[..MAGIC.len()] == MAGIC
}

impl BlockDriver for ZonedNode {
    forward_to_engine!(dev);

    fn driver_name(&self) -> &'static str {
        "zoned"
    }

    fn role(&self) -> Role {
        Role::Format
    }

    fn child(&self) -> Option<&Arc<dyn BlockDriver>> {
        Some(&self.dev.store().child)
    }

    fn write(&self, offset: u64, buf: &[u8], flags: WriteFlags) -> io::Result<()> {
        self.writev(offset, &[buf], flags, &|_| {})
    }

    fn writev(
        &self,
        offset: u64,
        bufs: &[&[u8]],
        flags: WriteFlags,
        progress: crate::OnProgress<'_>,
    ) -> io::Result<()> {
        self.dev.writev(offset, bufs, progress)?;
        if flags.fua {
            self.dev.flush()?;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.dev.flush()
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            format_names: vec!["zoned".into()],
            ..NodeInfo::default()
        }
    }
}

impl Drop for ZonedNode {
    /// Closing flushes, as QEMU flushes an image it closes, and folds the
    /// log into the table: every command that completed is on stable
    /// storage and a cleanly closed image has an empty log.
    fn drop(&mut self) {
        if !self.read_only {
            let store = self.dev.store();
            let mut log = store.lock_log();
            if log.pos > 0 {
                let _ = store.checkpoint(&mut log);
            } else {
                let _ = store.flush_log(&mut log);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ZoneOp;

    fn cfg() -> ZoneConfig {
        ZoneConfig {
            size: 64 << 20,
            zone_size: 4 << 20,
            zone_capacity: Some(3 << 20),
            nr_conv: 1,
            max_open: 2,
            max_active: 3,
            zone_append_max: 0,
            kernel: Kernel::V6_1,
            device: Device::NullBlk,
        }
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let c = cfg();
        let geo = ZoneGeometry::new(&c).unwrap();
        let h = Header::for_config(c, &geo);
        let b = h.encode();
        assert_eq!(Header::decode(&b).unwrap().0, h);
        assert_eq!(
            h.data_offset,
            9 << 20,
            "4 KiB header and table, log, data at the next MiB"
        );
        let mut bad = b.clone();
        bad[20] ^= 1;
        assert!(Header::decode(&bad).unwrap_err().contains("checksum"));
        let mut bad = b.clone();
        bad[8] = 9;
        assert!(Header::decode(&bad).unwrap_err().contains("version 9"));
        let mut bad = b.clone();
        bad[0] = b'X';
        assert!(Header::decode(&bad).unwrap_err().contains("magic"));
        // A size that overflows the file's length, with a valid checksum.
        let mut huge = h;
        huge.cfg.size = 0xffff_ffff_ffff_fe00;
        huge.cfg.zone_size = 1 << 63;
        huge.nr_zones = 2;
        assert!(
            Header::decode(&huge.encode())
                .unwrap_err()
                .contains("impossible geometry")
        );
        // A geometry that cannot exist, with a valid checksum.
        let mut odd = c;
        odd.zone_size = 3 << 20;
        let mut h2 = h;
        h2.cfg = odd;
        assert!(
            Header::decode(&h2.encode())
                .unwrap_err()
                .contains("impossible geometry")
        );
    }

    #[test]
    fn table_round_trips_and_names_bad_records() {
        let geo = ZoneGeometry::new(&cfg()).unwrap();
        let saved = ZoneState::new(geo).to_saved();
        let t = encode_table(&saved);
        assert_eq!(decode_table(&t, &geo).unwrap(), saved);
        let mut bad = t.clone();
        bad[RECORD as usize * 4 + 3] ^= 0x10;
        assert!(decode_table(&bad, &geo).unwrap_err().contains("zone 3"));
        // A record copied to another slot fails its checksum there.
        let mut moved = t.clone();
        let (a, b) = (RECORD as usize * 2, RECORD as usize * 3);
        let rec: Vec<u8> = moved[a..b].to_vec();
        moved[b..b + RECORD as usize].copy_from_slice(&rec);
        assert!(decode_table(&moved, &geo).is_err());
    }

    /// An image in memory: the child, formatted for `cfg()`.
    fn image() -> (Arc<dyn BlockDriver>, Header) {
        let geo = ZoneGeometry::new(&cfg()).unwrap();
        let h = Header::for_config(cfg(), &geo);
        let child: Arc<dyn BlockDriver> = Arc::new(crate::null::NullNode::new(h.file_len()));
        let w = WriteFlags::default();
        child.write(0, &h.encode(), w).unwrap();
        child
            .write(
                h.table_offset,
                &encode_table(&ZoneState::new(geo).to_saved()),
                w,
            )
            .unwrap();
        child.write(h.log_offset, &encode_slot(1), w).unwrap();
        (child, h)
    }

    fn reopen(child: &Arc<dyn BlockDriver>, read_only: bool) -> Arc<dyn BlockDriver> {
        let flags = OpenFlags {
            read_only,
            ..OpenFlags::default()
        };
        open_over(child.clone(), &mut OptionMap::default(), &flags).unwrap()
    }

    fn wp(node: &Arc<dyn BlockDriver>, zone: u64) -> (u64, ZoneCond) {
        let z = node.zone_report(zone << 22, 1).unwrap()[0];
        (z.wp - z.start, z.cond)
    }

    /// A killed process (the node is never dropped) leaves its commands in
    /// the log; the next open replays them, and a clean close folds the
    /// log into the table.
    #[test]
    fn log_replays_after_a_kill_and_empties_on_close() {
        let (child, h) = image();
        let node = reopen(&child, false);
        node.write(4 << 20, &[7u8; 8192], WriteFlags::default())
            .unwrap();
        node.zone_mgmt(ZoneOp::Open, 8 << 20, 4 << 20).unwrap();
        std::mem::forget(node);
        let scan = scan_log(child.as_ref(), &h).unwrap();
        assert_eq!((scan.kept.len(), scan.dropped), (2, 0));
        let node = reopen(&child, false);
        assert_eq!(wp(&node, 1), (8192, ZoneCond::ImplicitOpen));
        assert_eq!(wp(&node, 2), (0, ZoneCond::ExplicitOpen));
        drop(node);
        let scan = scan_log(child.as_ref(), &h).unwrap();
        assert!(scan.kept.is_empty());
        assert_eq!(scan.epoch, 2);
        let node = reopen(&child, true);
        assert_eq!(wp(&node, 1), (8192, ZoneCond::ImplicitOpen));
    }

    /// Entries after the last flush marker that another boot wrote are
    /// dropped (a power loss may have kept them without their data); the
    /// ones before it stay; a writable open then starts a new epoch so
    /// they can never count again.
    #[test]
    fn entries_of_another_boot_after_the_last_flush_are_dropped() {
        let (child, h) = image();
        let node = reopen(&child, false);
        node.write(4 << 20, &[7u8; 4096], WriteFlags::default())
            .unwrap();
        node.flush().unwrap();
        node.write(8 << 20, &[8u8; 4096], WriteFlags::default())
            .unwrap();
        std::mem::forget(node);
        // Rewrite the last entry as if an earlier boot had written it.
        let scan = scan_log(child.as_ref(), &h).unwrap();
        assert_eq!(scan.kept.len(), 3);
        let last = &scan.kept[2];
        let at = scan.end - last.len;
        let forged = encode_entry(scan.epoch, 2, KIND_CHANGE, &[9; 16], &last.recs);
        child
            .write(h.entries_offset() + at, &forged, WriteFlags::default())
            .unwrap();
        let scan = scan_log(child.as_ref(), &h).unwrap();
        assert_eq!((scan.kept.len(), scan.dropped), (2, 1));
        let node = reopen(&child, false);
        assert_eq!(wp(&node, 1), (4096, ZoneCond::ImplicitOpen));
        assert_eq!(wp(&node, 2), (0, ZoneCond::Empty));
        std::mem::forget(node);
        let scan = scan_log(child.as_ref(), &h).unwrap();
        assert_eq!((scan.epoch, scan.kept.len(), scan.dropped), (2, 0, 0));
    }
}
