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
//! Layout (little endian), all checksums CRC-32:
//! - header, 4 KiB at 0: magic `ZIOZONED`, version, the geometry as given
//!   at creation (size, zone size and capacity, zone counts, limits), where
//!   the table and the data start; its checksum in the last 4 bytes.
//! - table at 4 KiB: 32-byte records, each with its own checksum (so one
//!   record is rewritten alone): record 0 holds the implicit-close cursor,
//!   record 1 + i zone i's write pointer and condition.
//! - data at the next MiB boundary, `size` bytes, sparse.
//!
//! Crash safety: a write's data reaches the file before its table record
//! (the engine persists a zone only once its data is down), so a record
//! never claims bytes that were not written.

use std::fs::OpenOptions;
use std::io;
use std::sync::{Arc, Mutex};

use super::emulated::{EmulatedZoned, ZoneStore, forward_to_engine, take_zone_faults};
use super::open::open_child;
use super::zone::ZoneCond;
use super::zone_rules::{Dirty, SavedZones, ZoneConfig, ZoneGeometry, ZoneState};
use super::{BlockDriver, NodeInfo, OpenFlags, OptionMap, Role, WriteFlags};

pub const MAGIC: &[u8; 8] = b"ZIOZONED";
pub const VERSION: u32 = 1;
pub(crate) const HEADER_SIZE: u64 = 4096;
pub(crate) const RECORD: u64 = 32;
const DATA_ALIGN: u64 = 1 << 20;

/// The header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub cfg: ZoneConfig,
    pub nr_zones: u64,
    pub table_offset: u64,
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

impl Header {
    /// The layout for a geometry.
    pub fn for_config(cfg: ZoneConfig, geo: &ZoneGeometry) -> Header {
        let nr_zones = geo.nr_zones() as u64;
        let table_len = ((nr_zones + 1) * RECORD).div_ceil(HEADER_SIZE) * HEADER_SIZE;
        Header {
            cfg,
            nr_zones,
            table_offset: HEADER_SIZE,
            data_offset: (HEADER_SIZE + table_len).div_ceil(DATA_ALIGN) * DATA_ALIGN,
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
        let sum = crc(&b[..HEADER_SIZE as usize - 4]);
        b[HEADER_SIZE as usize - 4..].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Decodes and checks a header: magic, version, checksum, and a
    /// geometry that can exist with the layout it implies.
    pub fn decode(b: &[u8]) -> Result<(Header, ZoneGeometry), String> {
        if b.len() < HEADER_SIZE as usize || &b[0..8] != MAGIC {
            return Err("not a zoned image (bad magic)".into());
        }
        let version = le32(b, 8);
        if version != VERSION {
            return Err(format!(
                "unsupported zoned image version {version} (this zio reads version {VERSION})"
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
        let cap = le64(b, 32);
        let cfg = ZoneConfig {
            size: le64(b, 16),
            zone_size: le64(b, 24),
            zone_capacity: (cap != 0).then_some(cap),
            nr_conv: le64(b, 48).min(usize::MAX as u64) as usize,
            max_open: le32(b, 56),
            max_active: le32(b, 60),
            zone_append_max: le64(b, 64),
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
            data_offset: le64(b, 80),
        };
        if got != want {
            return Err(format!(
                "impossible geometry: {} zones, table at {}, data at {} (expected {}, {}, {})",
                got.nr_zones,
                got.table_offset,
                got.data_offset,
                want.nr_zones,
                want.table_offset,
                want.data_offset
            ));
        }
        Ok((got, geo))
    }

    pub fn file_len(&self) -> u64 {
        self.data_offset + self.cfg.size
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

pub(crate) fn decode_record(index: u64, r: &[u8]) -> Option<(u64, u8)> {
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(&r[..28]);
    (h.finalize() == le32(r, 28)).then(|| (le64(r, 0), r[8]))
}

/// The table records of a whole state (cursor first).
fn encode_table(saved: &SavedZones) -> Vec<u8> {
    let mut t = Vec::with_capacity((saved.zones.len() + 1) * RECORD as usize);
    t.extend_from_slice(&encode_record(0, saved.cursor as u64, 0));
    for (i, &(wp, cond)) in saved.zones.iter().enumerate() {
        t.extend_from_slice(&encode_record(i as u64 + 1, wp, cond.as_u8()));
    }
    t
}

/// Reads and checks the table; errors name the zone.
fn decode_table(table: &[u8], nr_zones: usize) -> Result<SavedZones, String> {
    let rec = |i: usize| &table[i * RECORD as usize..(i + 1) * RECORD as usize];
    let (cursor, _) = decode_record(0, rec(0))
        .ok_or_else(|| "zone table: the cursor record has a bad checksum".to_string())?;
    let mut zones = Vec::with_capacity(nr_zones);
    for i in 0..nr_zones {
        let (wp, c) = decode_record(i as u64 + 1, rec(i + 1))
            .ok_or_else(|| format!("zone table: the record of zone {i} has a bad checksum"))?;
        let cond = ZoneCond::from_u8(c)
            .ok_or_else(|| format!("zone table: zone {i} has an unknown condition {c}"))?;
        zones.push((wp, cond));
    }
    Ok(SavedZones {
        zones,
        cursor: cursor.min(usize::MAX as u64) as usize,
    })
}

/// Creates a zoned image at `path` (replacing what is there), empty.
pub fn create(path: &str, cfg: &ZoneConfig) -> Result<Header, String> {
    let geo = ZoneGeometry::new(cfg)?;
    let header = Header::for_config(*cfg, &geo);
    let fail = |e: io::Error| format!("Could not create '{path}': {}", super::strerror(&e));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(fail)?;
    file.set_len(header.file_len()).map_err(fail)?;
    use std::os::unix::fs::FileExt;
    file.write_all_at(&header.encode(), 0).map_err(fail)?;
    let table = encode_table(&ZoneState::new(geo).to_saved());
    file.write_all_at(&table, header.table_offset)
        .map_err(fail)?;
    file.sync_all().map_err(fail)?;
    Ok(header)
}

/// Where a zoned image keeps things: its protocol child.
pub struct ImageStore {
    child: Arc<dyn BlockDriver>,
    header: Header,
    /// Serialises table writes (records of one run go out together).
    table_lock: Mutex<()>,
}

impl ZoneStore for ImageStore {
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.child.read(self.header.data_offset + offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.child
            .write(self.header.data_offset + offset, buf, WriteFlags::default())
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.child.discard(self.header.data_offset + offset, len)
    }

    fn persist(&self, state: &ZoneState, dirty: &Dirty) -> io::Result<()> {
        let _g = self.table_lock.lock().unwrap_or_else(|p| p.into_inner());
        let t = self.header.table_offset;
        if dirty.cursor_moved {
            let r = encode_record(0, state.cursor() as u64, 0);
            self.child.write(t, &r, WriteFlags::default())?;
        }
        // Consecutive zones go out in one write.
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0usize;
        let zones = &dirty.zones;
        for (k, &i) in zones.iter().enumerate() {
            if run.is_empty() {
                run_start = i;
            }
            let z = state.zone(i);
            run.extend_from_slice(&encode_record(i as u64 + 1, z.wp, z.cond.as_u8()));
            if zones.get(k + 1) != Some(&(i + 1)) {
                let at = t + (run_start as u64 + 1) * RECORD;
                self.child.write(at, &run, WriteFlags::default())?;
                run.clear();
            }
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.child.flush()
    }
}

pub struct ZonedNode {
    dev: EmulatedZoned<ImageStore>,
}

/// `driver=zoned[,power_cycle=on][,zone_readonly=I:..][,zone_offline=I:..]
/// [,zone_restore=I:..],file.*=...`.
pub fn open(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let child = open_child(opts, "file", flags)?;
    open_over(child, opts, flags)
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
    let nr = geo.nr_zones();
    let mut table = vec![0u8; (nr + 1) * RECORD as usize];
    child
        .read(header.table_offset, &mut table)
        .map_err(|e| io_err("reading the zone table", e))?;
    let mut saved = decode_table(&table, nr)?;
    let mut cycled = Vec::new();
    if power_cycle {
        for (i, z) in saved.zones.iter_mut().enumerate() {
            if matches!(z.1, ZoneCond::ImplicitOpen | ZoneCond::ExplicitOpen) {
                let start = i as u64 * geo.zone_size();
                z.1 = if z.0 == start {
                    ZoneCond::Empty
                } else {
                    ZoneCond::Closed
                };
                cycled.push(i);
            }
        }
    }
    let mut state = ZoneState::from_saved(geo, &saved).map_err(|e| format!("zone table: {e}"))?;
    let restored = faults.apply(&mut state)?;
    let mut zones = state.take_changes().zones;
    zones.extend(cycled);
    zones.sort_unstable();
    zones.dedup();
    let store = ImageStore {
        child,
        header,
        table_lock: Mutex::new(()),
    };
    if !zones.is_empty() && !flags.read_only {
        for (start, len) in restored {
            store
                .discard(start, len)
                .map_err(|e| io_err("discarding a restored zone", e))?;
        }
        let dirty = Dirty {
            zones,
            cursor_moved: false,
        };
        store
            .persist(&state, &dirty)
            .map_err(|e| io_err("writing the zone table", e))?;
    }
    Ok(Arc::new(ZonedNode {
        dev: EmulatedZoned::new(store, state),
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
        self.dev.write(offset, buf)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ZoneConfig {
        ZoneConfig {
            size: 64 << 20,
            zone_size: 4 << 20,
            zone_capacity: Some(3 << 20),
            nr_conv: 1,
            max_open: 2,
            max_active: 3,
            zone_append_max: 0,
        }
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let c = cfg();
        let geo = ZoneGeometry::new(&c).unwrap();
        let h = Header::for_config(c, &geo);
        let b = h.encode();
        assert_eq!(Header::decode(&b).unwrap().0, h);
        assert_eq!(h.data_offset, 1 << 20);
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
        assert_eq!(decode_table(&t, saved.zones.len()).unwrap(), saved);
        let mut bad = t.clone();
        bad[RECORD as usize * 4 + 3] ^= 0x10;
        assert!(
            decode_table(&bad, saved.zones.len())
                .unwrap_err()
                .contains("zone 3")
        );
        // A record copied to another slot fails its checksum there.
        let mut moved = t.clone();
        let (a, b) = (RECORD as usize * 2, RECORD as usize * 3);
        let rec: Vec<u8> = moved[a..b].to_vec();
        moved[b..b + RECORD as usize].copy_from_slice(&rec);
        assert!(decode_table(&moved, saved.zones.len()).is_err());
    }
}
