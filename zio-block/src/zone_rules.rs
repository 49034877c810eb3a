//! Zone rules: a pure, I/O-free model of a host-managed zoned device's zone
//! state, shared by the emulated zoned drivers, and the one place every
//! other layer asks a zone rule of instead of repeating it: the checks of
//! a zone management command with the lines QEMU's host_device prints
//! ([`check_mgmt`], [`ZoneError`]), where a zone append lands on a zone as
//! a device reports it ([`append_position`]), and how Linux cuts one write
//! into requests and chains their errors ([`split_write`],
//! [`ChainResult`]).
//!
//! The model owns the geometry (zone size, capacity, conventional zones,
//! open/active limits), every zone's write pointer and condition, the
//! open/active resource counters and the implicit-close round-robin cursor.
//! It never stores data: it decides whether an operation is allowed, updates
//! the state and tells the driver which byte ranges to write, discard or fill.
//! Per zone it keeps only the write pointer and the condition, 4 bytes a
//! zone for zones of at most 128 MiB ([`ZoneState`]); a persistent driver
//! rebuilds it from its saved records with [`ZoneLoad`], without a copy of
//! them.
//! The rules are Linux null_blk's by default; NVMe ZNS (QEMU's nvme-ns) and
//! SCSI ZBC (scsi_debug) differ only in the data of [`DeviceRules`], and
//! Linux 6.12's block layer in what [`Kernel`] selects (docs/semantics.md
//! has a table per profile, with what the VM tier measured on the real
//! drivers). Everything is in bytes.
//!
//! Writes and appends are split in two: [`ZoneState::check_write`] judges a
//! request (a refusal changes only what the device and the host block layer
//! change when they refuse) and returns a [`WritePlan`], which
//! [`ZoneState::apply_write`] applies without failing. A driver that stores
//! data applies the plan, writes the data, and if the store fails takes the
//! whole command back with [`ZoneState::mark`] / [`ZoneState::rollback`], so
//! a failed store never moves a write pointer. It records the new state only
//! once the data is down (data before metadata).

use std::collections::BTreeMap;
use std::io;

use nix::errno::Errno;

use super::errno;
pub use super::zone::{KernelSeries, Zone, ZoneCond, ZoneError, ZoneOp, ZoneType};

/// Sector size the geometry must be aligned to.
const SECTOR: u64 = 512;

/// The rules' view of a zone descriptor.
impl Zone {
    pub(crate) fn is_conventional(&self) -> bool {
        self.ztype == ZoneType::Conventional
    }

    /// Whether a saved `(wp, cond)` can describe this zone: what
    /// [`ZoneState::from_saved`] and `zio check` accept. `closed_at_start`:
    /// the device closes an open zone with nothing written as closed
    /// ([`DeviceRules::close_keeps_closed`]).
    pub fn fits(&self, wp: u64, cond: ZoneCond, closed_at_start: bool) -> bool {
        let (s, cap_end, end) = (self.start, self.start + self.cap, self.start + self.len);
        if self.is_conventional() {
            return cond == ZoneCond::NotWp && wp == end;
        }
        match cond {
            ZoneCond::NotWp => false,
            ZoneCond::Empty => wp == s,
            ZoneCond::ExplicitOpen => wp >= s && wp < cap_end,
            ZoneCond::Closed if closed_at_start => wp >= s && wp < cap_end,
            ZoneCond::ImplicitOpen | ZoneCond::Closed => wp > s && wp < cap_end,
            ZoneCond::Full => wp == cap_end || wp == end,
            ZoneCond::ReadOnly | ZoneCond::Offline => wp == end,
        }
    }
}

/// Most zones an emulated device may have: its state costs 4 bytes a zone
/// in memory with zones of at most 128 MiB (5 up to 2 GiB, 9 above), and
/// a zoned image 32 bytes a zone on disk.
pub const MAX_ZONES: usize = 1 << 24;

/// The host block layer an emulated device answers as (`kernel=`): Linux
/// 6.1 (the default, and what every golden file was recorded on) or 6.12.
/// The difference the emulation models: since zone write plugging (6.10),
/// a write the device refused leaves its zone's write plug needing a write
/// pointer update, and the block layer fails every further write to that
/// zone (EIO) until a zone report, a reset or a finish of it refreshes the
/// write pointer (`BLK_ZONE_WPLUG_NEED_WP_UPDATE` in block/blk-zoned.c).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kernel {
    #[default]
    V6_1,
    V6_12,
}

impl Kernel {
    /// As `kernel=` takes it and `info` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::V6_1 => "6.1",
            Kernel::V6_12 => "6.12",
        }
    }

    pub fn parse(s: &str) -> Option<Kernel> {
        match s {
            "6.1" => Some(Kernel::V6_1),
            "6.12" => Some(Kernel::V6_12),
            _ => None,
        }
    }

    /// Its number in a zoned image's header (0 is 6.1, so images made
    /// before profiles existed read as 6.1).
    pub fn code(self) -> u8 {
        match self {
            Kernel::V6_1 => 0,
            Kernel::V6_12 => 1,
        }
    }

    pub fn from_code(c: u8) -> Option<Kernel> {
        match c {
            0 => Some(Kernel::V6_1),
            1 => Some(Kernel::V6_12),
            _ => None,
        }
    }

    pub fn series(self) -> KernelSeries {
        match self {
            Kernel::V6_1 => KernelSeries { major: 6, minor: 1 },
            Kernel::V6_12 => KernelSeries {
                major: 6,
                minor: 12,
            },
        }
    }

    /// Does a refused write leave its zone failing writes until refreshed?
    fn plugs_failed_zones(self) -> bool {
        self == Kernel::V6_12
    }
}

/// The device family an emulated device answers as (`device=`): Linux
/// null_blk (the default, what every golden file was first recorded on),
/// an NVMe ZNS namespace (QEMU's `nvme-ns` with `zoned=true` behind Linux's
/// nvme driver) or a host-managed SCSI ZBC disk (scsi_debug behind Linux's
/// sd). The families differ only in the data of [`DeviceRules`], which the
/// one transition table below reads; docs/semantics.md has a table per
/// family with what the VM tier confirmed on the real drivers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    #[default]
    NullBlk,
    NvmeZns,
    ScsiZbc,
}

/// Which implicitly open zone a device closes to free an open slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImplicitClose {
    /// The next one from a cursor that moves past each zone it closed and
    /// wraps (null_blk's `null_close_imp_open_zone`: round robin).
    RoundRobin,
    /// The one implicitly opened longest ago (QEMU's nvme: the head of its
    /// list of implicitly open zones).
    Oldest,
    /// The lowest-numbered one (scsi_debug).
    Lowest,
}

/// What differs between the device families (see [`Device`]): data the
/// one transition table reads, each field with the driver function that
/// causes it (docs/semantics.md has the table the VM tier confirmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRules {
    /// The device may have conventional zones (QEMU's nvme-ns has none).
    pub conventional_zones: bool,
    /// The device has an active zone limit (scsi_debug has none).
    pub active_limit: bool,
    /// Which implicitly open zone it closes for an open slot.
    pub implicit_close: ImplicitClose,
    /// The implicit close comes first, before the active limit is checked,
    /// and stays done when that check then refuses the command (QEMU's
    /// `nvme_zrm_open_flags` calls `nvme_zrm_auto_transition_zone` before
    /// `nvme_zns_check_resources`); else it happens only when the active
    /// limit allows it (null_blk's `null_check_zone_resources`).
    pub close_before_active_check: bool,
    /// A finish of an empty or closed zone needs open/active resources
    /// (null_blk's `null_finish_zone`; QEMU's `nvme_zrm_finish` and
    /// scsi_debug's finish take none).
    pub finish_needs_resources: bool,
    /// An open of a full zone succeeds and changes nothing (scsi_debug),
    /// else EIO.
    pub open_full_ok: bool,
    /// A close of an empty or full zone succeeds and changes nothing
    /// (scsi_debug), else EIO.
    pub close_any_ok: bool,
    /// A close of an open zone whose write pointer is at its start leaves
    /// it closed (and active), not empty (QEMU's `nvme_zrm_close`).
    pub close_keeps_closed: bool,
    /// A zone that becomes full reports the zone end as its write pointer,
    /// even when writes filled it to a smaller capacity (Linux's nvme
    /// `nvme_zone_parse_entry` and sd's `sd_zbc_parse_report`).
    pub full_wp_at_zone_end: bool,
    /// The error of a write the device refuses for its write pointer, a
    /// full zone or the capacity, and of a zone command on a conventional
    /// zone: EIO, or EREMOTEIO for a SCSI disk (scsi_debug's ILLEGAL
    /// REQUEST sense reaches the block layer as BLK_STS_TARGET).
    pub refusal: Errno,
    /// A conventional zone reports an invalid write pointer, all ones
    /// ([`Zone::INVALID_WP`]; scsi_debug, passed on by sd), not its end.
    pub conventional_wp_invalid: bool,
    /// What bytes never written (at or after a write pointer, or below it
    /// after a finish or reset) read as: 0xff on null_blk with
    /// memory_backed=1, zeros on the others.
    pub unwritten: u8,
    /// On Linux 6.12 a zone report clears the block layer's "failed" mark
    /// of a zone a refused write left (see [`ZoneState::reported`]). Not
    /// for NVMe: with `CONFIG_NVME_MULTIPATH=y` (Debian's) the disk is the
    /// multipath head, `nvme0n1`; writes are plugged on the path disk
    /// (`nvme0c0n1`) while a report of the head updates only the head's
    /// plugs, so only a reset or finish clears the mark (measured in the VM
    /// tier; realdev-write-recovery-zns).
    pub reports_refresh_plugs: bool,
}

impl Device {
    pub const ALL: [Device; 3] = [Device::NullBlk, Device::NvmeZns, Device::ScsiZbc];

    /// As `device=` takes it and `info` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Device::NullBlk => "null_blk",
            Device::NvmeZns => "nvme-zns",
            Device::ScsiZbc => "scsi-zbc",
        }
    }

    pub fn parse(s: &str) -> Option<Device> {
        Device::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Its number in a zoned image's header (0 is null_blk, so images made
    /// before families existed read as null_blk).
    pub fn code(self) -> u8 {
        match self {
            Device::NullBlk => 0,
            Device::NvmeZns => 1,
            Device::ScsiZbc => 2,
        }
    }

    pub fn from_code(c: u8) -> Option<Device> {
        Device::ALL.into_iter().find(|d| d.code() == c)
    }

    /// The largest write request, in bytes, the block layer sends this
    /// device (its queue's `max_sectors_kb`, read in the VM tier); a longer
    /// write is split into requests of this size. null_blk: 255 sectors
    /// (BLK_SAFE_MAX_SECTORS, `max_sectors_kb` 127). NVMe: QEMU's mdts=7
    /// with 4 KiB pages, 512 KiB. SCSI: scsi_debug has no limit of its own,
    /// so sd's default applies: 512 KiB on 6.1, 1280 KiB on 6.12
    /// (BLK_DEF_MAX_SECTORS_CAP).
    pub fn max_request(self, kernel: Kernel) -> u64 {
        match (self, kernel) {
            (Device::NullBlk, _) => 255 * 512,
            (Device::NvmeZns, _) | (Device::ScsiZbc, Kernel::V6_1) => 512 << 10,
            (Device::ScsiZbc, Kernel::V6_12) => 1280 << 10,
        }
    }

    pub fn rules(self) -> DeviceRules {
        let null_blk = DeviceRules {
            conventional_zones: true,
            active_limit: true,
            implicit_close: ImplicitClose::RoundRobin,
            close_before_active_check: false,
            finish_needs_resources: true,
            open_full_ok: false,
            close_any_ok: false,
            close_keeps_closed: false,
            full_wp_at_zone_end: false,
            refusal: Errno::EIO,
            conventional_wp_invalid: false,
            unwritten: 0xff,
            reports_refresh_plugs: true,
        };
        match self {
            Device::NullBlk => null_blk,
            Device::NvmeZns => DeviceRules {
                conventional_zones: false,
                implicit_close: ImplicitClose::Oldest,
                close_before_active_check: true,
                finish_needs_resources: false,
                close_keeps_closed: true,
                full_wp_at_zone_end: true,
                unwritten: 0,
                reports_refresh_plugs: false,
                ..null_blk
            },
            Device::ScsiZbc => DeviceRules {
                active_limit: false,
                implicit_close: ImplicitClose::Lowest,
                finish_needs_resources: false,
                open_full_ok: true,
                close_any_ok: true,
                full_wp_at_zone_end: true,
                refusal: Errno::EREMOTEIO,
                conventional_wp_invalid: true,
                unwritten: 0,
                ..null_blk
            },
        }
    }
}

/// What the user asked for; [`ZoneGeometry::new`] validates and clamps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneConfig {
    /// Device size in bytes.
    pub size: u64,
    /// Zone size in bytes (power of two).
    pub zone_size: u64,
    /// Zone capacity in bytes; `None` = zone size.
    pub zone_capacity: Option<u64>,
    /// Number of conventional zones, placed first.
    pub nr_conv: usize,
    /// Open zone limit, 0 = none.
    pub max_open: u32,
    /// Active zone limit, 0 = none.
    pub max_active: u32,
    /// Largest zone append in bytes, 0 = no limit.
    pub zone_append_max: u64,
    /// The host block layer it answers as.
    pub kernel: Kernel,
    /// The device family whose rules it follows.
    pub device: Device,
}

/// Validated, clamped geometry and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneGeometry {
    size: u64,
    zone_size: u64,
    zone_capacity: u64,
    nr_zones: usize,
    nr_conv: usize,
    max_open: u32,
    max_active: u32,
    zone_append_max: u64,
    kernel: Kernel,
    device: Device,
}

impl ZoneGeometry {
    /// Validates `cfg` and applies null_blk's clamping: an active limit >=
    /// the number of sequential zones becomes 0; then an open limit above a
    /// non-zero active limit is lowered to it, else an open limit >= the
    /// number of sequential zones becomes 0.
    pub fn new(cfg: &ZoneConfig) -> Result<ZoneGeometry, String> {
        if cfg.size == 0 || !cfg.size.is_multiple_of(SECTOR) {
            return Err(format!(
                "device size {} must be a non-zero multiple of 512 bytes",
                cfg.size
            ));
        }
        let zs = cfg.zone_size;
        if zs == 0 || !zs.is_power_of_two() || !zs.is_multiple_of(SECTOR) {
            return Err(format!(
                "zone size {zs} must be a power of two and a multiple of 512 bytes"
            ));
        }
        let cap = cfg.zone_capacity.unwrap_or(zs);
        if cap == 0 || !cap.is_multiple_of(SECTOR) {
            return Err(format!(
                "zone capacity {cap} must be a non-zero multiple of 512 bytes"
            ));
        }
        if cap > zs {
            return Err(format!(
                "zone capacity {cap} must not exceed the zone size {zs}"
            ));
        }
        if !cfg.zone_append_max.is_multiple_of(SECTOR) {
            return Err(format!(
                "zone append limit {} must be a multiple of 512 bytes",
                cfg.zone_append_max
            ));
        }
        let nr_zones =
            usize::try_from(cfg.size.div_ceil(zs)).map_err(|_| "too many zones".to_string())?;
        if nr_zones > MAX_ZONES {
            return Err(format!(
                "{nr_zones} zones are more than zio emulates ({MAX_ZONES}); use larger zones"
            ));
        }
        if cfg.nr_conv >= nr_zones {
            return Err(format!(
                "{} conventional zones leave no sequential zone among {nr_zones} zones",
                cfg.nr_conv
            ));
        }
        let rules = cfg.device.rules();
        if cfg.nr_conv > 0 && !rules.conventional_zones {
            return Err(format!(
                "device={} has no conventional zones (zone_nr_conv={})",
                cfg.device.name(),
                cfg.nr_conv
            ));
        }
        if cfg.max_active > 0 && !rules.active_limit {
            return Err(format!(
                "device={} has no active zone limit (zone_max_active={})",
                cfg.device.name(),
                cfg.max_active
            ));
        }
        let nr_seq = (nr_zones - cfg.nr_conv) as u64;
        let mut max_active = cfg.max_active;
        let mut max_open = cfg.max_open;
        if u64::from(max_active) >= nr_seq {
            max_active = 0;
        }
        if max_active != 0 && max_open > max_active {
            max_open = max_active;
        } else if u64::from(max_open) >= nr_seq {
            max_open = 0;
        }
        Ok(ZoneGeometry {
            size: cfg.size,
            zone_size: zs,
            zone_capacity: cap,
            nr_zones,
            nr_conv: cfg.nr_conv,
            max_open,
            max_active,
            zone_append_max: cfg.zone_append_max,
            kernel: cfg.kernel,
            device: cfg.device,
        })
    }

    /// Device size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Zone size in bytes (the last zone may be smaller).
    pub fn zone_size(&self) -> u64 {
        self.zone_size
    }
    /// Capacity of a full-size sequential zone in bytes.
    pub fn zone_capacity(&self) -> u64 {
        self.zone_capacity
    }
    pub fn nr_zones(&self) -> usize {
        self.nr_zones
    }
    pub fn nr_conv(&self) -> usize {
        self.nr_conv
    }
    /// Open limit after clamping, 0 = none.
    pub fn max_open(&self) -> u32 {
        self.max_open
    }
    /// Active limit after clamping, 0 = none.
    pub fn max_active(&self) -> u32 {
        self.max_active
    }
    /// Largest zone append in bytes, 0 = no limit.
    pub fn zone_append_max(&self) -> u64 {
        self.zone_append_max
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The device family's rules.
    pub fn rules(&self) -> DeviceRules {
        self.device.rules()
    }

    /// Index of the zone holding byte `offset` (`offset < size`).
    pub fn zone_index(&self, offset: u64) -> usize {
        (offset / self.zone_size) as usize
    }

    /// The zone at `idx` in its initial state. Panics when out of range.
    pub fn initial_zone(&self, idx: usize) -> Zone {
        assert!(idx < self.nr_zones, "zone {idx} of {} zones", self.nr_zones);
        let start = idx as u64 * self.zone_size;
        let len = self.zone_size.min(self.size - start);
        if idx < self.nr_conv {
            Zone {
                start,
                len,
                cap: len,
                wp: start + len,
                ztype: ZoneType::Conventional,
                cond: ZoneCond::NotWp,
            }
        } else {
            Zone {
                start,
                len,
                cap: self.zone_capacity.min(len),
                wp: start,
                ztype: ZoneType::SeqWriteRequired,
                cond: ZoneCond::Empty,
            }
        }
    }
}

/// What varies per zone: its write pointer, as a byte offset from the
/// zone's start, and its condition (4 bits: [`ZoneCond::as_u8`] XOR
/// `Empty`'s, so an empty zone at its start is all zero bits and a fresh
/// state's memory stays untouched until its zones change). Bytes, not
/// sectors: the model takes writes of any length (the drivers widen theirs
/// to sectors). The geometry picks the narrowest form once: 4 bytes a zone
/// with zones of at most 128 MiB (a 28-bit offset and the condition in one
/// word), 5 with zones of at most 2 GiB, else 9.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Slots {
    Packed(Vec<u32>),
    Narrow(Vec<u32>, Vec<u8>),
    Wide(Vec<u64>, Vec<u8>),
}

impl Slots {
    /// Bits of a packed word that hold the offset.
    const OFFSET_BITS: u32 = 28;

    /// Every zone at its start, empty (all zero bits).
    fn new(geo: &ZoneGeometry) -> Slots {
        let n = geo.nr_zones;
        if geo.zone_size < 1 << Self::OFFSET_BITS {
            Slots::Packed(vec![0; n])
        } else if u32::try_from(geo.zone_size).is_ok() {
            Slots::Narrow(vec![0; n], vec![0; n])
        } else {
            Slots::Wide(vec![0; n], vec![0; n])
        }
    }

    /// The stored form of `cond`, 0 for `Empty`.
    fn code(cond: ZoneCond) -> u8 {
        cond.as_u8() ^ ZoneCond::Empty.as_u8()
    }

    /// Zone `i`'s `(offset, cond)`. Panics when out of range.
    fn get(&self, i: usize) -> (u64, ZoneCond) {
        let (off, c) = match self {
            Slots::Packed(v) => (
                u64::from(v[i] & ((1 << Self::OFFSET_BITS) - 1)),
                (v[i] >> Self::OFFSET_BITS) as u8,
            ),
            Slots::Narrow(w, c) => (u64::from(w[i]), c[i]),
            Slots::Wide(w, c) => (w[i], c[i]),
        };
        let cond = ZoneCond::from_u8(c ^ ZoneCond::Empty.as_u8());
        (off, cond.expect("a stored condition"))
    }

    /// Sets zone `i`'s `(offset, cond)`; `off` is at most the zone size.
    fn set(&mut self, i: usize, off: u64, cond: ZoneCond) {
        let c = Self::code(cond);
        match self {
            Slots::Packed(v) => {
                debug_assert!(off < 1 << Self::OFFSET_BITS);
                v[i] = off as u32 | u32::from(c) << Self::OFFSET_BITS;
            }
            Slots::Narrow(w, cs) => {
                w[i] = u32::try_from(off).expect("offset within the zone");
                cs[i] = c;
            }
            Slots::Wide(w, cs) => {
                w[i] = off;
                cs[i] = c;
            }
        }
    }
}

/// Whether a zone going from `old` to `new` takes no open or active
/// resource (every change either takes none or gives none back). Records
/// written in place go releases first, so that every prefix of them keeps
/// the open and active counts within the limits.
pub fn releases_resources(old: ZoneCond, new: ZoneCond) -> bool {
    let rank = |c: ZoneCond| (c.is_open() as u8, c.is_active() as u8);
    let (o, n) = (rank(old), rank(new));
    n.0 <= o.0 && n.1 <= o.1
}

/// Resource counters: zones implicitly open, explicitly open, closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZoneCounts {
    pub imp_open: u32,
    pub exp_open: u32,
    pub closed: u32,
}

impl ZoneCounts {
    /// Implicitly + explicitly open.
    pub fn open(&self) -> u32 {
        self.imp_open + self.exp_open
    }
    /// Open + closed.
    pub fn active(&self) -> u32 {
        self.open() + self.closed
    }
    fn slot(&mut self, c: ZoneCond) -> Option<&mut u32> {
        match c {
            ZoneCond::ImplicitOpen => Some(&mut self.imp_open),
            ZoneCond::ExplicitOpen => Some(&mut self.exp_open),
            ZoneCond::Closed => Some(&mut self.closed),
            _ => None,
        }
    }
    fn change(&mut self, old: ZoneCond, new: ZoneCond) {
        if let Some(n) = self.slot(old) {
            *n -= 1;
        }
        if let Some(n) = self.slot(new) {
            *n += 1;
        }
    }
}

/// The plain form a persistent image saves: per zone `(wp, cond)` in zone
/// order (conventional zones included) and the implicit-close cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedZones {
    pub zones: Vec<(u64, ZoneCond)>,
    pub cursor: usize,
}

/// A state read record by record (a saved table, then log entries laid
/// over it) and judged as a whole by [`finish`](Self::finish), as
/// [`ZoneState::from_saved`] judges a [`SavedZones`], without a copy of
/// every zone: a record that fits its zone goes straight into the state,
/// one that does not (a damaged table, or a value a later record may
/// replace) waits aside until then.
pub struct ZoneLoad {
    st: ZoneState,
    misfits: BTreeMap<usize, (u64, ZoneCond)>,
    cursor: usize,
}

impl ZoneLoad {
    /// Every zone as [`ZoneState::new`] makes it, the cursor at the first
    /// sequential zone.
    pub fn new(geo: ZoneGeometry) -> ZoneLoad {
        ZoneLoad {
            st: ZoneState::new(geo),
            misfits: BTreeMap::new(),
            cursor: geo.nr_conv,
        }
    }

    pub fn set_cursor(&mut self, cursor: usize) {
        self.cursor = cursor;
    }

    /// Zone `i`'s `(wp, cond)` is now this. Panics when out of range.
    pub fn set(&mut self, i: usize, wp: u64, cond: ZoneCond) {
        let closed_at_start = self.st.geo.rules().close_keeps_closed;
        if self.st.geo.initial_zone(i).fits(wp, cond, closed_at_start) {
            // (Unchanged zones are not written: their memory stays
            // untouched.)
            if self.st.get(i) != (wp, cond) {
                self.st.put(i, wp, cond);
            }
            self.misfits.remove(&i);
        } else {
            self.misfits.insert(i, (wp, cond));
        }
    }

    /// Zone `i`'s `(wp, cond)` as set last.
    pub fn get(&self, i: usize) -> (u64, ZoneCond) {
        match self.misfits.get(&i) {
            Some(&v) => v,
            None => self.st.get(i),
        }
    }

    /// A power cycle: every open zone becomes closed, or empty if its write
    /// pointer is at its start. Returns those zones, ascending.
    pub fn power_cycle(&mut self) -> Vec<usize> {
        let mut cycled = Vec::new();
        for i in 0..self.st.geo.nr_zones {
            let (wp, c) = self.get(i);
            if c.is_open() {
                let cond = if wp == i as u64 * self.st.geo.zone_size {
                    ZoneCond::Empty
                } else {
                    ZoneCond::Closed
                };
                self.set(i, wp, cond);
                cycled.push(i);
            }
        }
        cycled
    }

    /// The state, with its counters: rejects a cursor that is not a
    /// sequential zone, a write pointer that does not fit its condition
    /// (the first such zone), or counts above the limits.
    pub fn finish(self) -> Result<ZoneState, String> {
        let ZoneLoad {
            mut st,
            misfits,
            cursor,
        } = self;
        let g = st.geo;
        if cursor < g.nr_conv || cursor >= g.nr_zones {
            return Err(format!(
                "implicit-close cursor {cursor} is not a sequential zone"
            ));
        }
        if let Some((&i, &(wp, cond))) = misfits.first_key_value() {
            let s = i as u64 * g.zone_size;
            return Err(format!(
                "zone {i} (start {s}): condition {cond:?} does not fit write pointer {wp}"
            ));
        }
        let mut c = ZoneCounts::default();
        let queued = st.queued();
        for i in g.nr_conv..g.nr_zones {
            let cond = st.cond(i);
            c.change(ZoneCond::Empty, cond);
            if queued && cond == ZoneCond::ImplicitOpen {
                let key = st.queue.next;
                st.queue.insert(i, key);
            }
        }
        if (g.max_open != 0 && c.open() > g.max_open)
            || (g.max_active != 0 && c.active() > g.max_active)
        {
            return Err(format!(
                "{} open and {} active zones exceed the limits (open {}, active {})",
                c.open(),
                c.active(),
                g.max_open,
                g.max_active
            ));
        }
        st.counts = c;
        st.cursor = cursor;
        Ok(st)
    }
}

/// State changes computed by a check, applied later without failing.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Changes {
    zones: Vec<(usize, u64, ZoneCond)>,
    counts: ZoneCounts,
    cursor: usize,
    generation: u64,
}

/// An accepted write: the per-zone pieces to write, and the state change to
/// apply once they are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WritePlan {
    pieces: Vec<(u64, u64)>,
    changes: Changes,
}

impl WritePlan {
    /// `(offset, len)` per zone touched, in order, split at zone boundaries.
    pub fn pieces(&self) -> &[(u64, u64)] {
        &self.pieces
    }
}

/// An accepted zone append: where the data lands and the write to do there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendPlan {
    /// Byte position the data lands at (the zone's write pointer).
    pub pos: u64,
    pub write: WritePlan,
}

/// What a zone management command did. Ranges are not atomic (as on Linux,
/// which sends one request per zone): every zone is tried, `result` is the
/// first error in zone order, and zones that succeeded keep their change.
#[derive(Debug)]
pub struct MgmtOutcome {
    /// `(start, len)` of the zones that were reset from a non-empty
    /// condition, ascending, adjacent zones joined into one range: the
    /// driver may discard their data.
    pub reset: Vec<(u64, u64)>,
    /// `(offset, len)` that the command made readable without writing it
    /// (a finish moves the write pointer to the zone end), ascending,
    /// adjacent ranges joined: the driver must make it read as never
    /// written before it records the change, so no byte left there by an
    /// earlier life of the zone shows.
    pub exposed: Vec<(u64, u64)>,
    pub result: io::Result<()>,
}

/// All zones of a device with their resource counters. Per zone it keeps
/// only what changes, its write pointer and condition (see [`Slots`]: 4
/// bytes a zone with zones of at most 128 MiB); start, length, capacity
/// and type come from the geometry, and [`zone`](Self::zone) puts the
/// descriptor together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneState {
    geo: ZoneGeometry,
    slots: Slots,
    counts: ZoneCounts,
    /// Next zone the implicit close considers; always a sequential zone.
    cursor: usize,
    /// Bumped by every change, to catch a plan applied to a changed state.
    generation: u64,
    /// Zones changed since the last [`take_changes`](Self::take_changes).
    changed: Vec<usize>,
    /// The cursor moved since the last `take_changes`.
    cursor_moved: bool,
    /// `(zone, wp, cond)` before each change since the last
    /// `take_changes`, for [`rollback`](Self::rollback).
    undo: Vec<(usize, u64, ZoneCond)>,
    /// Zones whose write pointer the host block layer must refresh before
    /// it takes another write ([`Kernel::V6_12`] after a refused write),
    /// each with whether a zone report leaves it so (see
    /// [`reported`](Self::reported)). Block layer state, not the device's:
    /// never stored, committed or rolled back, and empty at open. (The
    /// real kernel keeps the zones a report does not refresh from one
    /// process to the next; an emulated device forgets them when it closes.)
    stale: BTreeMap<usize, bool>,
    /// The implicitly open zones in the order the device closes them, for
    /// a device whose implicit close is not round robin and that has an
    /// open limit (else empty).
    queue: ImpQueue,
    /// `(zone, its queue key before)` for each queue change since the last
    /// `take_changes`, for `rollback`.
    queue_undo: Vec<(usize, Option<u64>)>,
}

/// Implicitly open zones by the key the device closes them in (the
/// smallest first): the order they were opened in ([`ImplicitClose::Oldest`])
/// or their index ([`ImplicitClose::Lowest`]). Not stored: a device
/// reopened from its records orders its implicitly open zones by index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ImpQueue {
    by_key: BTreeMap<u64, usize>,
    key_of: BTreeMap<usize, u64>,
    next: u64,
}

impl ImpQueue {
    fn remove(&mut self, i: usize) -> Option<u64> {
        let k = self.key_of.remove(&i)?;
        self.by_key.remove(&k);
        Some(k)
    }

    fn insert(&mut self, i: usize, key: u64) {
        self.by_key.insert(key, i);
        self.key_of.insert(i, key);
        self.next = self.next.max(key + 1);
    }
}

/// A point to go back to with [`ZoneState::rollback`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    undo: usize,
    changed: usize,
    counts: ZoneCounts,
    cursor: usize,
    cursor_moved: bool,
    queue_undo: usize,
    queue_next: u64,
}

/// What changed since the last look: what a persistent driver writes back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dirty {
    /// Indices of changed zones, ascending, each once.
    pub zones: Vec<usize>,
    pub cursor_moved: bool,
}

/// Appends `(at, len)` to ascending `ranges`, joined to the last range if
/// it ends at `at`.
fn push_range(ranges: &mut Vec<(u64, u64)>, at: u64, len: u64) {
    match ranges.last_mut() {
        Some((s, n)) if *s + *n == at => *n += len,
        _ => ranges.push((at, len)),
    }
}

fn eio() -> io::Error {
    errno(Errno::EIO)
}

/// The checks QEMU's host_device driver makes on a zone management
/// command before its ioctl (block/file-posix.c `raw_co_zone_mgmt`), with
/// its diagnostic lines, on a zoned device of `size` bytes whose first
/// `nr_conv` zones of `zone_size` bytes are conventional: the offset must
/// be a zone start and the length a multiple of the zone size unless the
/// range ends at the device end (EINVAL), and the first zone must not be
/// conventional unless the range is the whole device (EIO). The range
/// itself is checked before (the backend's EIO). Every zoned driver asks
/// this, so emulated and real devices fail alike, with the same lines.
pub fn check_mgmt(
    zone_size: u64,
    nr_conv: u64,
    size: u64,
    offset: u64,
    len: u64,
) -> Result<(), ZoneError> {
    let zs = zone_size.max(1);
    if !offset.is_multiple_of(zs) {
        return Err(ZoneError::diag(
            Errno::EINVAL,
            format!(
                "sector offset {} is not aligned to zone size {}",
                offset / SECTOR,
                zs / SECTOR
            ),
        ));
    }
    if offset.saturating_add(len) < size && !len.is_multiple_of(zs) {
        return Err(ZoneError::diag(
            Errno::EINVAL,
            format!(
                "number of sectors {} is not aligned to zone size {}",
                len / SECTOR,
                zs / SECTOR
            ),
        ));
    }
    if len != size && offset / zs < nr_conv {
        return Err(ZoneError::diag(
            Errno::EIO,
            "zone mgmt operations are not allowed for conventional zones".into(),
        ));
    }
    Ok(())
}

/// Where a zone append of `len` bytes to the zone starting at `zone_start`
/// lands, judged on `zone` as a zone report gives it: at its write
/// pointer. EIO if `zone` does not start at `zone_start`, is
/// conventional, full, read-only or offline, or if the data would pass
/// its capacity (an append never spills into the next zone). The open and
/// active limits are the device's to apply (see
/// [`ZoneState::check_append`], which asks this first).
pub fn append_position(zone: &Zone, zone_start: u64, len: u64) -> io::Result<u64> {
    if zone.start != zone_start
        || zone.is_conventional()
        || !matches!(
            zone.cond,
            ZoneCond::Empty | ZoneCond::ImplicitOpen | ZoneCond::ExplicitOpen | ZoneCond::Closed
        )
        || zone.wp.saturating_add(len) > zone.start + zone.cap
    {
        return Err(eio());
    }
    Ok(zone.wp)
}

/// How Linux cuts ONE write to a zoned device into the requests the
/// device judges: at every zone boundary, and into pieces of at most
/// `max_request` bytes counted from the write's start (and from each zone
/// boundary). `(offset, len)` of each request, in order; the write must
/// lie inside the device of `size` bytes.
pub fn split_write(
    offset: u64,
    len: u64,
    zone_size: u64,
    size: u64,
    max_request: u64,
) -> impl Iterator<Item = (u64, u64)> {
    let end = offset + len;
    let zs = zone_size.max(1);
    let max = max_request.max(1);
    let mut pos = offset;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let zone_end = ((pos / zs + 1) * zs).min(size).max(pos + 1);
        let n = (end - pos).min(max).min(zone_end - pos);
        let at = pos;
        pos += n;
        Some((at, n))
    })
}

/// The outcome of one write carried out as a chain of requests (see
/// [`split_write`]), reported the way Linux reports a split write: the
/// split-off requests are chained to the last one, so the error is the
/// last request's if it failed, else the first failed request's, else
/// success.
#[derive(Default)]
pub struct ChainResult {
    first: Option<io::Error>,
    last: Option<io::Error>,
}

impl ChainResult {
    /// Records the next request's outcome.
    pub fn add(&mut self, r: io::Result<()>) {
        match r {
            Ok(()) => self.last = None,
            Err(e) => {
                if self.first.is_none() {
                    self.first = Some(match e.raw_os_error() {
                        Some(code) => io::Error::from_raw_os_error(code),
                        None => io::Error::new(e.kind(), e.to_string()),
                    });
                }
                self.last = Some(e);
            }
        }
    }

    /// The write's outcome.
    /// Has any request failed so far?
    pub fn failed(&self) -> bool {
        self.first.is_some()
    }

    pub fn finish(self) -> io::Result<()> {
        match (self.last, self.first) {
            (Some(e), _) | (None, Some(e)) => Err(e),
            (None, None) => Ok(()),
        }
    }
}

impl ZoneState {
    /// A device with every sequential zone empty.
    pub fn new(geo: ZoneGeometry) -> ZoneState {
        let mut slots = Slots::new(&geo);
        for i in 0..geo.nr_conv {
            let z = geo.initial_zone(i);
            slots.set(i, z.wp - z.start, z.cond);
        }
        ZoneState {
            slots,
            counts: ZoneCounts::default(),
            cursor: geo.nr_conv,
            generation: 0,
            changed: Vec::new(),
            cursor_moved: false,
            undo: Vec::new(),
            stale: BTreeMap::new(),
            queue: ImpQueue::default(),
            queue_undo: Vec::new(),
            geo,
        }
    }

    /// The state as it is now, to come back to. Valid until the next
    /// [`take_changes`](Self::take_changes).
    pub fn mark(&self) -> Mark {
        Mark {
            undo: self.undo.len(),
            changed: self.changed.len(),
            counts: self.counts,
            cursor: self.cursor,
            cursor_moved: self.cursor_moved,
            queue_undo: self.queue_undo.len(),
            queue_next: self.queue.next,
        }
    }

    /// Takes back every change since `mark` (a command whose data could
    /// not be stored): zones, counters and cursor are as they were.
    pub fn rollback(&mut self, mark: Mark) {
        while self.undo.len() > mark.undo {
            let (i, wp, cond) = self.undo.pop().expect("undo entry");
            self.put(i, wp, cond);
        }
        while self.queue_undo.len() > mark.queue_undo {
            let (i, key) = self.queue_undo.pop().expect("queue undo entry");
            self.queue.remove(i);
            if let Some(k) = key {
                self.queue.insert(i, k);
            }
        }
        self.queue.next = mark.queue_next;
        self.changed.truncate(mark.changed);
        self.counts = mark.counts;
        self.cursor = mark.cursor;
        self.cursor_moved = mark.cursor_moved;
        self.generation += 1;
    }

    /// `zones` (changed since the last `take_changes`) reordered so that
    /// the ones that gave resources back come first (see
    /// [`releases_resources`]): written in this order, every prefix of the
    /// records keeps the open and active counts within the limits.
    pub fn releases_first(&self, zones: &[usize]) -> Vec<usize> {
        debug_assert!(zones.is_sorted(), "zones not in ascending order");
        // Each zone's condition before its first change: its oldest undo
        // entry, found walking the undo log backwards. The log is mostly in
        // zone order, so the neighbour of the last position is tried before
        // a binary search.
        let mut before: Vec<Option<ZoneCond>> = vec![None; zones.len()];
        let mut hint = 0;
        for &(i, _, cond) in self.undo.iter().rev() {
            let p = if zones.get(hint) == Some(&i) {
                hint
            } else if hint > 0 && zones[hint - 1] == i {
                hint - 1
            } else {
                match zones.binary_search(&i) {
                    Ok(p) => p,
                    Err(_) => continue,
                }
            };
            before[p] = Some(cond);
            hint = p;
        }
        let mut out = Vec::with_capacity(zones.len());
        let mut acquire = Vec::new();
        for (&i, b) in zones.iter().zip(before) {
            let now = self.cond(i);
            if releases_resources(b.unwrap_or(now), now) {
                out.push(i);
            } else {
                acquire.push(i);
            }
        }
        out.extend(acquire);
        out
    }

    /// What [`take_changes`](Self::take_changes) would return, without
    /// taking it.
    pub fn peek_changes(&self) -> Dirty {
        let mut zones = self.changed.clone();
        zones.sort_unstable();
        zones.dedup();
        Dirty {
            zones,
            cursor_moved: self.cursor_moved,
        }
    }

    /// The zones changed (and whether the cursor moved) since the last call.
    pub fn take_changes(&mut self) -> Dirty {
        self.undo.clear();
        self.queue_undo.clear();
        let mut zones = std::mem::take(&mut self.changed);
        zones.sort_unstable();
        zones.dedup();
        Dirty {
            zones,
            cursor_moved: std::mem::take(&mut self.cursor_moved),
        }
    }

    pub fn geometry(&self) -> &ZoneGeometry {
        &self.geo
    }

    pub fn counts(&self) -> ZoneCounts {
        self.counts
    }

    /// Next zone index the implicit close considers.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The zone at `idx`. Panics when out of range.
    pub fn zone(&self, idx: usize) -> Zone {
        let (wp, cond) = self.get(idx);
        Zone {
            wp,
            cond,
            ..self.geo.initial_zone(idx)
        }
    }

    /// Zone `i`'s `(wp, cond)`. Panics when out of range.
    pub fn get(&self, i: usize) -> (u64, ZoneCond) {
        let (off, cond) = self.slots.get(i);
        (i as u64 * self.geo.zone_size + off, cond)
    }

    fn cond(&self, i: usize) -> ZoneCond {
        self.slots.get(i).1
    }

    /// Stores zone `i`'s `(wp, cond)`, which must fit the zone.
    fn put(&mut self, i: usize, wp: u64, cond: ZoneCond) {
        self.slots.set(i, wp - i as u64 * self.geo.zone_size, cond);
    }

    /// Every zone's `(wp, cond)`, in zone order: what a persistent image
    /// saves.
    pub fn saved_zones(&self) -> impl Iterator<Item = (u64, ZoneCond)> + '_ {
        (0..self.geo.nr_zones).map(|i| self.get(i))
    }

    /// The plain form to persist (a copy of every zone: 16 bytes a zone;
    /// [`saved_zones`](Self::saved_zones) makes none).
    pub fn to_saved(&self) -> SavedZones {
        SavedZones {
            zones: self.saved_zones().collect(),
            cursor: self.cursor,
        }
    }

    /// Rebuilds a state saved by [`to_saved`](Self::to_saved), recomputing
    /// the counters. Rejects a table that does not fit the geometry, a write
    /// pointer that does not fit its condition, or counts above the limits.
    pub fn from_saved(geo: ZoneGeometry, saved: &SavedZones) -> Result<ZoneState, String> {
        if saved.zones.len() != geo.nr_zones {
            return Err(format!(
                "zone table has {} zones, the geometry {}",
                saved.zones.len(),
                geo.nr_zones
            ));
        }
        let mut load = ZoneLoad::new(geo);
        load.set_cursor(saved.cursor);
        for (i, &(wp, cond)) in saved.zones.iter().enumerate() {
            load.set(i, wp, cond);
        }
        load.finish()
    }

    /// Zones from the one holding `offset`, at most `max`. Empty at or past
    /// the end of the device.
    pub fn report(&self, offset: u64, max: usize) -> Vec<Zone> {
        if offset >= self.geo.size {
            return Vec::new();
        }
        let first = self.geo.zone_index(offset);
        let invalid = self.geo.rules().conventional_wp_invalid;
        (first..self.geo.nr_zones)
            .take(max)
            .map(|i| {
                let z = self.zone(i);
                if invalid && z.is_conventional() {
                    Zone {
                        wp: Zone::INVALID_WP,
                        ..z
                    }
                } else {
                    z
                }
            })
            .collect()
    }

    /// Zone management over `[offset, offset + len)`, see [`MgmtOutcome`]
    /// for partial failure. [`zone_mgmt_outcome`](Self::zone_mgmt_outcome)
    /// also tells which zones were reset.
    pub fn zone_mgmt(&mut self, op: ZoneOp, offset: u64, len: u64) -> io::Result<()> {
        self.zone_mgmt_outcome(op, offset, len).result
    }

    /// Zone management over `[offset, offset + len)`. The offset must be a
    /// zone start and the length a non-zero multiple of the zone size or end
    /// at the device end, else EINVAL with nothing changed. A reset of the
    /// whole device resets every sequential zone that is not empty,
    /// read-only or offline, and never fails. Otherwise each zone in turn
    /// follows the transition table (a conventional zone gives EIO); the
    /// others are still processed, as Linux sends one request per zone.
    pub fn zone_mgmt_outcome(&mut self, op: ZoneOp, offset: u64, len: u64) -> MgmtOutcome {
        let mut out = MgmtOutcome {
            reset: Vec::new(),
            exposed: Vec::new(),
            result: Ok(()),
        };
        let g = self.geo;
        let end = offset.checked_add(len);
        let valid = matches!(end, Some(e) if e <= g.size && len > 0)
            && offset.is_multiple_of(g.zone_size)
            && (len.is_multiple_of(g.zone_size) || end == Some(g.size));
        if !valid {
            out.result = Err(errno(Errno::EINVAL));
            return out;
        }
        let mut tx = Txn::new(self);
        if op == ZoneOp::Reset && offset == 0 && len == g.size {
            for i in g.nr_conv..g.nr_zones {
                let (_, c) = tx.get(i);
                if !matches!(c, ZoneCond::Empty | ZoneCond::ReadOnly | ZoneCond::Offline) {
                    tx.reset(i).expect("reset of a non-empty zone");
                    let z = g.initial_zone(i);
                    push_range(&mut out.reset, z.start, z.len);
                }
            }
        } else {
            let first = g.zone_index(offset);
            let last = g.zone_index(offset + len - 1);
            for i in first..=last {
                let (was_wp, was) = tx.get(i);
                let r = match op {
                    ZoneOp::Open => tx.open(i),
                    ZoneOp::Close => tx.close(i),
                    ZoneOp::Finish => tx.finish(i),
                    ZoneOp::Reset => tx.reset(i),
                };
                let z = g.initial_zone(i);
                match r {
                    Ok(()) if op == ZoneOp::Reset && was != ZoneCond::Empty => {
                        push_range(&mut out.reset, z.start, z.len)
                    }
                    Ok(()) if op == ZoneOp::Finish && was != ZoneCond::Full => {
                        let end = z.start + z.len;
                        push_range(&mut out.exposed, was_wp, end - was_wp);
                    }
                    Ok(()) => {}
                    Err(e) => {
                        if out.result.is_ok() {
                            out.result = Err(e);
                        }
                    }
                }
            }
        }
        let changes = tx.done();
        self.commit(&changes);
        if matches!(op, ZoneOp::Reset | ZoneOp::Finish) {
            // Reset and finish set the write pointer, so the block layer
            // knows it again (also for a zone the device refused: it
            // re-reads a zone whose command failed only by a report).
            self.refresh(offset, len.div_ceil(g.zone_size) as usize);
        }
        out
    }

    /// A write request to the zone holding `offset` was refused: on a
    /// kernel that plugs failed zones ([`Kernel::V6_12`]) the zone fails
    /// every write until [`refresh`](Self::refresh)ed, or with `sticky`
    /// false also by a report ([`reported`](Self::reported)).
    fn mark_stale(&mut self, offset: u64, sticky: bool) {
        if self.geo.kernel.plugs_failed_zones() && offset < self.geo.size {
            let i = self.geo.zone_index(offset);
            let was = self.stale.get(&i).copied().unwrap_or(false);
            let unreported = !self.geo.device.rules().reports_refresh_plugs;
            self.stale.insert(i, was || sticky || unreported);
        }
    }

    /// The block layer sets the write pointers of `count` zones from the
    /// one holding `offset` (a reset or a finish of them): they take writes
    /// again.
    pub fn refresh(&mut self, offset: u64, count: usize) {
        self.stale_retain(offset, count, |_, _| false);
    }

    /// A zone report of `count` zones from the one holding `offset`: the
    /// block layer learns their write pointers, and they take writes again,
    /// except a zone left failing by a write refused at or past the
    /// capacity of a full zone, or any failing zone of a device whose
    /// reports do not reach its plugs ([`DeviceRules::reports_refresh_plugs`],
    /// NVMe): on Linux 6.12.117 those stay failing, through reports and
    /// from one process to the next, until a reset or finish (measured in
    /// the VM tier, with qemu-io alike; see docs/semantics.md).
    pub fn reported(&mut self, offset: u64, count: usize) {
        self.stale_retain(offset, count, |st, i| st.stale.get(&i) == Some(&true));
    }

    /// Keeps in the stale set, of the `count` zones from the one holding
    /// `offset`, those `keep` says.
    fn stale_retain(
        &mut self,
        offset: u64,
        count: usize,
        keep: impl Fn(&ZoneState, usize) -> bool,
    ) {
        if self.stale.is_empty() || offset >= self.geo.size {
            return;
        }
        let first = self.geo.zone_index(offset);
        let end = first.saturating_add(count);
        let gone: Vec<usize> = self
            .stale
            .range(first..end)
            .map(|(&i, _)| i)
            .filter(|&i| !keep(self, i))
            .collect();
        for i in gone {
            self.stale.remove(&i);
        }
    }

    /// Checks a write of `[offset, offset + len)`. A refused write changes
    /// nothing on the device, except the implicit close a device that
    /// closes before its active check made ([`DeviceRules`]), and marks the
    /// zone failing on Linux 6.12 (see [`reported`](Self::reported)).
    /// The write is split at zone boundaries; a sequential piece must start
    /// at its zone's write pointer (so a later piece needs its zone empty or
    /// explicitly open at the start) and stay within the capacity;
    /// conventional pieces go anywhere. Past the device end: EIO.
    /// All or nothing: this is the rule for ONE request. Linux splits a
    /// write into requests at zone boundaries (and at max_sectors) and the
    /// device judges each on its own, so a refused crossing write can leave
    /// the pieces that were accepted; the emulated driver does that split
    /// and calls this once per request (`emulated::EmulatedZoned::write`).
    pub fn check_write(&mut self, offset: u64, len: u64) -> io::Result<WritePlan> {
        let end = offset.checked_add(len).ok_or_else(eio)?;
        if end > self.geo.size {
            return Err(eio());
        }
        let mut tx = Txn::new(self);
        let mut pieces = Vec::new();
        let mut pos = offset;
        while pos < end {
            let i = self.geo.zone_index(pos);
            let z = self.geo.initial_zone(i);
            let n = (z.start + z.len).min(end) - pos;
            let (_, cond) = tx.get(i);
            let refused = match tx.block_layer_write(i, pos) {
                // Refused at or past the capacity of a full zone.
                Err(e) => Some((e, cond == ZoneCond::Full || pos >= z.start + z.cap)),
                Ok(()) => tx.write(i, pos, n).err().map(|e| (e, false)),
            };
            if let Some((e, sticky)) = refused {
                let closes = std::mem::take(&mut tx.closes);
                self.keep_closes(&closes);
                self.mark_stale(pos, sticky);
                return Err(e);
            }
            pieces.push((pos, n));
            pos += n;
        }
        Ok(WritePlan {
            pieces,
            changes: tx.done(),
        })
    }

    /// Applies a plan from [`check_write`](Self::check_write). The state must
    /// not have changed since the check (the caller holds its lock across
    /// both). The caller writes the data afterwards, and takes the command
    /// back ([`mark`](Self::mark) / [`rollback`](Self::rollback)) if the
    /// store fails.
    pub fn apply_write(&mut self, plan: &WritePlan) {
        self.commit(&plan.changes);
    }

    /// Checks a zone append of `len` bytes to the zone starting at
    /// `zone_start`: it lands at the write pointer. EIO when `zone_start` is
    /// not a zone start, for a conventional, full, read-only or offline zone,
    /// or when the data would pass the capacity (it never spills into the
    /// next zone); EINVAL for `len` 0 or above the append limit; open/active
    /// limits as for a write.
    pub fn check_append(&mut self, zone_start: u64, len: u64) -> io::Result<AppendPlan> {
        if len == 0 || (self.geo.zone_append_max != 0 && len > self.geo.zone_append_max) {
            return Err(errno(Errno::EINVAL));
        }
        if zone_start >= self.geo.size || !zone_start.is_multiple_of(self.geo.zone_size) {
            return Err(eio());
        }
        let i = self.geo.zone_index(zone_start);
        let z = self.zone(i);
        append_position(&z, zone_start, len)?;
        let mut tx = Txn::new(self);
        if let Err(e) = tx.write(i, z.wp, len) {
            let closes = std::mem::take(&mut tx.closes);
            self.keep_closes(&closes);
            return Err(e);
        }
        Ok(AppendPlan {
            pos: z.wp,
            write: WritePlan {
                pieces: vec![(z.wp, len)],
                changes: tx.done(),
            },
        })
    }

    /// Applies a plan from [`check_append`](Self::check_append); returns the
    /// position the data landed at.
    pub fn apply_append(&mut self, plan: &AppendPlan) -> u64 {
        self.apply_write(&plan.write);
        plan.pos
    }

    /// For a read of `[offset, offset + len)`: the `(offset, len)` sub-ranges
    /// at or after a sequential zone's write pointer, which read as 0xff.
    /// EIO when the range touches an offline zone or passes the device end.
    pub fn read_fill(&self, offset: u64, len: u64) -> io::Result<Vec<(u64, u64)>> {
        let end = offset.checked_add(len).ok_or_else(eio)?;
        if end > self.geo.size {
            return Err(eio());
        }
        let mut fill = Vec::new();
        let mut pos = offset;
        while pos < end {
            let z = self.zone(self.geo.zone_index(pos));
            let zend = (z.start + z.len).min(end);
            if z.cond == ZoneCond::Offline {
                return Err(eio());
            }
            if !z.is_conventional() {
                let from = pos.max(z.wp);
                if from < zend {
                    fill.push((from, zend - from));
                }
            }
            pos = zend;
        }
        Ok(fill)
    }

    /// Fault injection: makes sequential zone `idx` read-only or offline
    /// (its resources are released and its write pointer set to the zone
    /// end), or with `Empty` brings such a zone back, empty. EINVAL for a
    /// conventional zone, an index out of range or another condition.
    pub fn set_condition(&mut self, idx: usize, cond: ZoneCond) -> io::Result<()> {
        if idx < self.geo.nr_conv || idx >= self.geo.nr_zones {
            return Err(errno(Errno::EINVAL));
        }
        let z = self.zone(idx);
        let wp = match cond {
            ZoneCond::ReadOnly | ZoneCond::Offline => z.start + z.len,
            ZoneCond::Empty if matches!(z.cond, ZoneCond::ReadOnly | ZoneCond::Offline) => z.start,
            _ => return Err(errno(Errno::EINVAL)),
        };
        let mut tx = Txn::new(self);
        tx.set(idx, wp, cond);
        let changes = tx.done();
        self.commit(&changes);
        Ok(())
    }

    /// Does this device keep the [`ImpQueue`]?
    fn queued(&self) -> bool {
        self.geo.max_open != 0 && self.geo.rules().implicit_close != ImplicitClose::RoundRobin
    }

    /// Keeps the queue in step with zone `i` going from `old` to `new`.
    fn requeue(&mut self, i: usize, old: ZoneCond, new: ZoneCond) {
        let (was, is) = (old == ZoneCond::ImplicitOpen, new == ZoneCond::ImplicitOpen);
        if was == is || !self.queued() {
            return;
        }
        let before = if was {
            self.queue.remove(i)
        } else {
            let key = match self.geo.rules().implicit_close {
                ImplicitClose::Lowest => i as u64,
                _ => self.queue.next,
            };
            self.queue.insert(i, key);
            None
        };
        self.queue_undo.push((i, before));
    }

    /// Commits the implicit closes a refused command made (see
    /// [`DeviceRules::close_before_active_check`]).
    fn keep_closes(&mut self, zones: &[usize]) {
        if zones.is_empty() || !self.geo.rules().close_before_active_check {
            return;
        }
        let mut tx = Txn::new(self);
        for &i in zones {
            tx.close_open_zone(i);
        }
        let changes = tx.done();
        self.commit(&changes);
    }

    fn commit(&mut self, c: &Changes) {
        debug_assert_eq!(
            c.generation, self.generation,
            "plan applied to a changed state"
        );
        if c.zones.is_empty() && c.cursor == self.cursor {
            return;
        }
        for &(i, wp, cond) in &c.zones {
            let (old_wp, old_cond) = self.get(i);
            self.undo.push((i, old_wp, old_cond));
            self.put(i, wp, cond);
            self.requeue(i, old_cond, cond);
            self.changed.push(i);
        }
        self.cursor_moved |= c.cursor != self.cursor;
        self.counts = c.counts;
        self.cursor = c.cursor;
        self.generation += 1;
    }
}

/// A trial of changes over a borrowed state: per-zone transitions run here
/// and are either collected into [`Changes`] or dropped. Each zone has at
/// most one entry; past [`Txn::SMALL`] entries an index from zone to entry
/// makes every look-up O(1), so a command over every zone is linear.
struct Txn<'a> {
    base: &'a ZoneState,
    zones: Vec<(usize, u64, ZoneCond)>,
    /// Empty while `zones` is small (searched then); else, per zone of the
    /// device, 1 + its entry's position in `zones`, or 0 if it has none.
    index: Vec<u32>,
    counts: ZoneCounts,
    cursor: usize,
    /// Zones closed implicitly so far (kept when a device that closes
    /// before its active check then refuses the command).
    closes: Vec<usize>,
}

impl<'a> Txn<'a> {
    /// Entries searched linearly before the index is built.
    const SMALL: usize = 16;

    fn new(base: &'a ZoneState) -> Txn<'a> {
        Txn {
            base,
            zones: Vec::new(),
            index: Vec::new(),
            counts: base.counts,
            cursor: base.cursor,
            closes: Vec::new(),
        }
    }

    fn done(self) -> Changes {
        Changes {
            zones: self.zones,
            counts: self.counts,
            cursor: self.cursor,
            generation: self.base.generation,
        }
    }

    /// Position of zone `i`'s entry in `zones`.
    fn slot(&self, i: usize) -> Option<usize> {
        if self.index.is_empty() {
            self.zones.iter().position(|c| c.0 == i)
        } else {
            self.index[i].checked_sub(1).map(|s| s as usize)
        }
    }

    /// Current `(wp, cond)` of zone `i`.
    fn get(&self, i: usize) -> (u64, ZoneCond) {
        match self.slot(i) {
            Some(s) => (self.zones[s].1, self.zones[s].2),
            None => self.base.get(i),
        }
    }

    fn set(&mut self, i: usize, wp: u64, cond: ZoneCond) {
        let old = self.get(i).1;
        self.counts.change(old, cond);
        match self.slot(i) {
            Some(s) => self.zones[s] = (i, wp, cond),
            None => {
                self.zones.push((i, wp, cond));
                if !self.index.is_empty() {
                    // At most MAX_ZONES (2^24) entries: fits.
                    self.index[i] = self.zones.len() as u32;
                } else if self.zones.len() > Self::SMALL {
                    self.index = vec![0; self.base.geo.nr_zones];
                    for (s, c) in self.zones.iter().enumerate() {
                        self.index[c.0] = s as u32 + 1;
                    }
                }
            }
        }
    }

    /// Active resources: EOVERFLOW when the active limit is reached.
    fn check_active(&self) -> io::Result<()> {
        let max = self.base.geo.max_active;
        if max == 0 || self.counts.active() < max {
            Ok(())
        } else {
            Err(errno(Errno::EOVERFLOW))
        }
    }

    /// Open resources: when the open limit is reached, implicitly closes an
    /// implicitly open zone if there is one and the active limit is not
    /// reached (null_blk asks this even when the zone to open is closed);
    /// else ETOOMANYREFS.
    fn check_open(&mut self) -> io::Result<()> {
        let max = self.base.geo.max_open;
        if max == 0 || self.counts.open() < max {
            return Ok(());
        }
        if self.counts.imp_open > 0 && self.check_active().is_ok() {
            self.close_implicit();
            return Ok(());
        }
        Err(errno(Errno::ETOOMANYREFS))
    }

    /// Closes the implicitly open zone the device picks
    /// ([`DeviceRules::implicit_close`]).
    fn close_implicit(&mut self) {
        let i = match self.base.geo.rules().implicit_close {
            ImplicitClose::RoundRobin => self.round_robin_victim(),
            ImplicitClose::Oldest | ImplicitClose::Lowest => self.queue_victim(),
        };
        self.close_open_zone(i);
        self.closes.push(i);
    }

    /// The next implicitly open zone from the cursor (wrapping over the
    /// sequential zones); moves the cursor past it.
    fn round_robin_victim(&mut self) -> usize {
        let g = self.base.geo;
        let nr_seq = g.nr_zones - g.nr_conv;
        let mut i = self.cursor;
        for _ in 0..nr_seq {
            let next = if i + 1 >= g.nr_zones {
                g.nr_conv
            } else {
                i + 1
            };
            if self.get(i).1 == ZoneCond::ImplicitOpen {
                self.cursor = next;
                return i;
            }
            i = next;
        }
        unreachable!("implicit open count without an implicitly open zone");
    }

    /// The implicitly open zone first in the device's queue: of the queued
    /// zones still implicitly open here the first, else (or, for
    /// [`ImplicitClose::Lowest`], if lower) one this command opened.
    fn queue_victim(&self) -> usize {
        let q = &self.base.queue;
        let queued = q
            .by_key
            .values()
            .copied()
            .find(|&i| self.get(i).1 == ZoneCond::ImplicitOpen);
        let mut new = self
            .zones
            .iter()
            .filter(|e| e.2 == ZoneCond::ImplicitOpen && !q.key_of.contains_key(&e.0))
            .map(|e| e.0);
        let pick = match self.base.geo.rules().implicit_close {
            ImplicitClose::Lowest => queued.into_iter().chain(new).min(),
            _ => queued.or_else(|| new.next()),
        };
        pick.expect("implicit open count without an implicitly open zone")
    }

    fn close_open_zone(&mut self, i: usize) {
        let wp = self.get(i).0;
        let start = i as u64 * self.base.geo.zone_size;
        let cond = if wp == start && !self.base.geo.rules().close_keeps_closed {
            ZoneCond::Empty
        } else {
            ZoneCond::Closed
        };
        self.set(i, wp, cond);
    }

    /// Resources needed to open or finish a zone in condition `c`: active
    /// first, then open, as null_blk checks them; a device that closes
    /// before its active check (NVMe) closes an implicitly open zone
    /// whenever the open limit is reached, then checks.
    fn check_resources(&mut self, c: ZoneCond) -> io::Result<()> {
        if !matches!(c, ZoneCond::Empty | ZoneCond::Closed) {
            return Ok(());
        }
        let g = self.base.geo;
        if !g.rules().close_before_active_check {
            if c == ZoneCond::Empty {
                self.check_active()?;
            }
            return self.check_open();
        }
        let full = |t: &Self| g.max_open != 0 && t.counts.open() >= g.max_open;
        if full(self) && self.counts.imp_open > 0 {
            self.close_implicit();
        }
        if c == ZoneCond::Empty {
            self.check_active()?;
        }
        if full(self) {
            return Err(errno(Errno::ETOOMANYREFS));
        }
        Ok(())
    }

    /// What Linux 6.12's block layer refuses (EIO) before the device sees
    /// a write to zone `i` at `pos`: a zone whose write pointer it must
    /// refresh, and, as its zone write plug tracks the write pointer of a
    /// zone that is neither empty nor full, a write there not at that
    /// pointer, or one at or past the capacity (a plug made for an empty or
    /// full zone takes the write's own position as the write pointer, so
    /// the device judges other writes there). Nothing on 6.1.
    fn block_layer_write(&self, i: usize, pos: u64) -> io::Result<()> {
        let g = self.base.geo;
        if !g.kernel.plugs_failed_zones() || i < g.nr_conv {
            return Ok(());
        }
        if self.base.stale.contains_key(&i) {
            return Err(eio());
        }
        let z = g.initial_zone(i);
        let wp_off = self.get(i).0 - z.start;
        let partial = wp_off > 0 && wp_off < z.cap;
        if (partial && pos != z.start + wp_off) || pos - z.start >= z.cap {
            return Err(eio());
        }
        Ok(())
    }

    /// The zone `op` works on: EIO for a read-only or offline zone; for a
    /// conventional one the device's refusal, or EIO from Linux 6.12's
    /// block layer for a reset or finish.
    fn seq_zone(&self, i: usize, op: ZoneOp) -> io::Result<(Zone, u64, ZoneCond)> {
        let g = self.base.geo;
        let z = g.initial_zone(i);
        let (wp, c) = self.get(i);
        if z.is_conventional() {
            let by_block_layer =
                g.kernel.plugs_failed_zones() && matches!(op, ZoneOp::Reset | ZoneOp::Finish);
            return Err(if by_block_layer {
                eio()
            } else {
                errno(g.rules().refusal)
            });
        }
        if matches!(c, ZoneCond::ReadOnly | ZoneCond::Offline) {
            return Err(eio());
        }
        Ok((z, wp, c))
    }

    fn write(&mut self, i: usize, offset: u64, len: u64) -> io::Result<()> {
        if i < self.base.geo.nr_conv {
            return Ok(());
        }
        let z = self.base.geo.initial_zone(i);
        let (wp, c) = self.get(i);
        if matches!(c, ZoneCond::ReadOnly | ZoneCond::Offline) {
            return Err(eio());
        }
        let rules = self.base.geo.rules();
        if c == ZoneCond::Full || offset != wp || wp + len > z.start + z.cap {
            return Err(errno(rules.refusal));
        }
        self.check_resources(c)?;
        let new_wp = wp + len;
        if new_wp == z.start + z.cap {
            let wp = if rules.full_wp_at_zone_end {
                z.start + z.len
            } else {
                new_wp
            };
            self.set(i, wp, ZoneCond::Full);
            return Ok(());
        }
        let cond = if c == ZoneCond::ExplicitOpen {
            ZoneCond::ExplicitOpen
        } else {
            ZoneCond::ImplicitOpen
        };
        self.set(i, new_wp, cond);
        Ok(())
    }

    fn open(&mut self, i: usize) -> io::Result<()> {
        let (_, wp, c) = self.seq_zone(i, ZoneOp::Open)?;
        match c {
            ZoneCond::ExplicitOpen => return Ok(()),
            ZoneCond::Full if self.base.geo.rules().open_full_ok => return Ok(()),
            ZoneCond::Empty | ZoneCond::Closed => self.check_resources(c)?,
            ZoneCond::ImplicitOpen => {}
            _ => return Err(eio()),
        }
        self.set(i, wp, ZoneCond::ExplicitOpen);
        Ok(())
    }

    fn close(&mut self, i: usize) -> io::Result<()> {
        let (_, _, c) = self.seq_zone(i, ZoneOp::Close)?;
        match c {
            ZoneCond::Closed => Ok(()),
            ZoneCond::Empty | ZoneCond::Full if self.base.geo.rules().close_any_ok => Ok(()),
            ZoneCond::ImplicitOpen | ZoneCond::ExplicitOpen => {
                self.close_open_zone(i);
                Ok(())
            }
            _ => Err(eio()),
        }
    }

    fn finish(&mut self, i: usize) -> io::Result<()> {
        let (z, _, c) = self.seq_zone(i, ZoneOp::Finish)?;
        match c {
            ZoneCond::Full => return Ok(()),
            ZoneCond::Empty | ZoneCond::Closed => {
                if self.base.geo.rules().finish_needs_resources {
                    self.check_resources(c)?
                }
            }
            ZoneCond::ImplicitOpen | ZoneCond::ExplicitOpen => {}
            _ => return Err(eio()),
        }
        self.set(i, z.start + z.len, ZoneCond::Full);
        Ok(())
    }

    fn reset(&mut self, i: usize) -> io::Result<()> {
        let (z, _, c) = self.seq_zone(i, ZoneOp::Reset)?;
        if c != ZoneCond::Empty {
            self.set(i, z.start, ZoneCond::Empty);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mgmt_checks_name_what_host_device_prints() {
        const M: u64 = 1 << 20;
        let line = |r: Result<(), ZoneError>| {
            let e = r.unwrap_err();
            (e.error.raw_os_error(), e.diag)
        };
        assert!(check_mgmt(4 * M, 1, 64 * M, 4 * M, 8 * M).is_ok());
        assert!(check_mgmt(4 * M, 1, 64 * M, 0, 64 * M).is_ok());
        assert!(check_mgmt(4 * M, 1, 64 * M, 60 * M, 4 * M + 512).is_ok());
        assert_eq!(
            line(check_mgmt(4 * M, 1, 64 * M, 2 * M, 4 * M)),
            (
                Some(libc::EINVAL),
                Some("sector offset 4096 is not aligned to zone size 8192".into())
            )
        );
        assert_eq!(
            line(check_mgmt(4 * M, 1, 64 * M, 4 * M, 2 * M)),
            (
                Some(libc::EINVAL),
                Some("number of sectors 4096 is not aligned to zone size 8192".into())
            )
        );
        assert_eq!(
            line(check_mgmt(4 * M, 1, 64 * M, 0, 4 * M)).0,
            Some(libc::EIO)
        );
        let e = ZoneError::ioctl_failed(ZoneOp::Open, errno(Errno::ETOOMANYREFS));
        assert_eq!(e.diag.as_deref(), Some("ioctl BLKOPENZONE failed -109"));
    }

    #[test]
    fn append_positions_and_write_splits() {
        let z = Zone {
            start: 4096,
            len: 4096,
            cap: 2048,
            wp: 5120,
            ztype: ZoneType::SeqWriteRequired,
            cond: ZoneCond::ImplicitOpen,
        };
        assert_eq!(append_position(&z, 4096, 1024).unwrap(), 5120);
        assert!(append_position(&z, 4096, 1536).is_err());
        assert!(append_position(&z, 0, 512).is_err());
        let full = Zone {
            cond: ZoneCond::Full,
            ..z
        };
        assert!(append_position(&full, 4096, 0).is_err());
        let v: Vec<_> = split_write(100, 1000, 512, 2048, 300).collect();
        assert_eq!(
            v,
            [(100, 300), (400, 112), (512, 300), (812, 212), (1024, 76)]
        );
        assert_eq!(split_write(0, 0, 512, 2048, 300).count(), 0);
        let mut c = ChainResult::default();
        c.add(Err(errno(Errno::ETOOMANYREFS)));
        c.add(Ok(()));
        assert_eq!(
            c.finish().unwrap_err().raw_os_error(),
            Some(libc::ETOOMANYREFS)
        );
        let mut c = ChainResult::default();
        c.add(Err(errno(Errno::ETOOMANYREFS)));
        c.add(Err(errno(Errno::EOVERFLOW)));
        assert_eq!(
            c.finish().unwrap_err().raw_os_error(),
            Some(libc::EOVERFLOW)
        );
    }

    const ZS: u64 = 64 * 1024;
    const BS: u64 = 4096;

    fn cfg(nr_zones: u64, nr_conv: usize, max_open: u32, max_active: u32) -> ZoneConfig {
        ZoneConfig {
            size: nr_zones * ZS,
            zone_size: ZS,
            zone_capacity: None,
            nr_conv,
            max_open,
            max_active,
            zone_append_max: 0,
            kernel: Kernel::V6_1,
            device: Device::NullBlk,
        }
    }

    fn state(nr_zones: u64, nr_conv: usize, max_open: u32, max_active: u32) -> ZoneState {
        ZoneState::new(ZoneGeometry::new(&cfg(nr_zones, nr_conv, max_open, max_active)).unwrap())
    }

    fn family(device: Device, kernel: Kernel, nr_conv: usize, open: u32, active: u32) -> ZoneState {
        let geo = ZoneGeometry::new(&ZoneConfig {
            device,
            kernel,
            ..cfg(8, nr_conv, open, active)
        })
        .unwrap();
        ZoneState::new(geo)
    }

    fn try_write(st: &mut ZoneState, offset: u64) -> Option<i32> {
        match st.check_write(offset, BS) {
            Ok(plan) => {
                st.apply_write(&plan);
                None
            }
            Err(e) => e.raw_os_error(),
        }
    }

    fn conds_of(st: &ZoneState, zones: std::ops::Range<usize>) -> Vec<ZoneCond> {
        zones.map(|i| st.get(i).1).collect()
    }

    #[test]
    fn families_refuse_what_their_drivers_refuse() {
        use ZoneCond::*;
        let bad = |d: Device, nr_conv, active| {
            ZoneGeometry::new(&ZoneConfig {
                device: d,
                max_active: active,
                ..cfg(8, nr_conv, 0, 0)
            })
            .unwrap_err()
        };
        assert_eq!(
            bad(Device::NvmeZns, 1, 0),
            "device=nvme-zns has no conventional zones (zone_nr_conv=1)"
        );
        assert_eq!(
            bad(Device::ScsiZbc, 0, 2),
            "device=scsi-zbc has no active zone limit (zone_max_active=2)"
        );
        for d in Device::ALL {
            assert_eq!(Device::parse(d.name()), Some(d));
            assert_eq!(Device::from_code(d.code()), Some(d));
        }
        // SCSI: open of a full zone and close of an empty or full one are
        // no-ops; a write not at the write pointer is EREMOTEIO, a full zone
        // reports its end.
        let mut st = family(Device::ScsiZbc, Kernel::V6_1, 1, 0, 0);
        assert_eq!(st.report(0, 1)[0].wp, Zone::INVALID_WP);
        assert_eq!(st.report(0, 1)[0].wp_sectors(), u64::MAX);
        assert!(st.zone_mgmt(ZoneOp::Close, ZS, ZS).is_ok());
        assert!(st.zone_mgmt(ZoneOp::Finish, ZS, ZS).is_ok());
        assert!(st.zone_mgmt(ZoneOp::Open, ZS, ZS).is_ok());
        assert!(st.zone_mgmt(ZoneOp::Close, ZS, ZS).is_ok());
        assert_eq!(st.get(1), (2 * ZS, Full));
        assert_eq!(try_write(&mut st, 2 * ZS + BS), Some(libc::EREMOTEIO));
        let plan = st.check_write(2 * ZS, ZS).unwrap();
        st.apply_write(&plan);
        assert_eq!(st.get(2), (3 * ZS, Full));
        // A conventional zone's finish: the device's refusal on 6.1, the
        // block layer's EIO on 6.12.
        let code = |st: &mut ZoneState| st.zone_mgmt(ZoneOp::Finish, 0, 8 * ZS).unwrap_err();
        assert_eq!(code(&mut st).raw_os_error(), Some(libc::EREMOTEIO));
        let mut st = family(Device::ScsiZbc, Kernel::V6_12, 1, 0, 0);
        assert_eq!(code(&mut st).raw_os_error(), Some(libc::EIO));
        // null_blk: the same commands fail with EIO.
        let mut st = family(Device::NullBlk, Kernel::V6_1, 1, 0, 0);
        assert!(st.zone_mgmt(ZoneOp::Close, ZS, ZS).is_err());
        assert_eq!(try_write(&mut st, ZS + BS), Some(libc::EIO));
        // NVMe: a close leaves an explicitly opened empty zone closed, and
        // a finish takes no resources.
        let mut st = family(Device::NvmeZns, Kernel::V6_1, 0, 1, 1);
        st.zone_mgmt(ZoneOp::Open, 0, ZS).unwrap();
        st.zone_mgmt(ZoneOp::Close, 0, ZS).unwrap();
        assert_eq!(st.get(0), (0, Closed));
        assert!(st.zone_mgmt(ZoneOp::Finish, ZS, ZS).is_ok());
        assert_eq!(conds_of(&st, 0..2), [Closed, Full]);
    }

    #[test]
    fn families_close_their_own_implicitly_open_zone() {
        use ZoneCond::*;
        // Open zones 3, 1, 2 in that order (limit 3), then a fourth.
        let run = |d: Device| {
            let mut st = family(d, Kernel::V6_1, 0, 3, 0);
            for z in [3, 1, 2, 4] {
                assert_eq!(try_write(&mut st, z * ZS), None);
            }
            conds_of(&st, 1..5)
        };
        // null_blk: round robin from the first zone; NVMe: the oldest (3);
        // SCSI: the lowest (1).
        assert_eq!(
            run(Device::NullBlk),
            [Closed, ImplicitOpen, ImplicitOpen, ImplicitOpen]
        );
        assert_eq!(
            run(Device::NvmeZns),
            [ImplicitOpen, ImplicitOpen, Closed, ImplicitOpen]
        );
        assert_eq!(
            run(Device::ScsiZbc),
            [Closed, ImplicitOpen, ImplicitOpen, ImplicitOpen]
        );
        // The queue follows rollbacks: take the fourth write back, and the
        // oldest is zone 3 again.
        let mut st = family(Device::NvmeZns, Kernel::V6_1, 0, 2, 0);
        for z in [3, 1] {
            try_write(&mut st, z * ZS);
        }
        st.take_changes();
        let mark = st.mark();
        try_write(&mut st, 2 * ZS);
        assert_eq!(conds_of(&st, 1..4), [ImplicitOpen, ImplicitOpen, Closed]);
        st.rollback(mark);
        assert_eq!(conds_of(&st, 1..4), [ImplicitOpen, Empty, ImplicitOpen]);
        try_write(&mut st, 4 * ZS);
        assert_eq!(
            conds_of(&st, 1..5),
            [ImplicitOpen, Empty, Closed, ImplicitOpen]
        );
        // NVMe closes before it checks the active limit, and the close
        // stays when that check refuses: open 2, active 2.
        let mut st = family(Device::NvmeZns, Kernel::V6_1, 0, 2, 2);
        try_write(&mut st, ZS);
        try_write(&mut st, 2 * ZS);
        assert_eq!(try_write(&mut st, 3 * ZS), Some(libc::EOVERFLOW));
        assert_eq!(conds_of(&st, 1..4), [Closed, ImplicitOpen, Empty]);
        // null_blk leaves both open and refuses the same way.
        let mut st = family(Device::NullBlk, Kernel::V6_1, 0, 2, 2);
        try_write(&mut st, ZS);
        try_write(&mut st, 2 * ZS);
        assert_eq!(try_write(&mut st, 3 * ZS), Some(libc::EOVERFLOW));
        assert_eq!(conds_of(&st, 1..4), [ImplicitOpen, ImplicitOpen, Empty]);
    }

    #[test]
    fn linux_6_12_refuses_what_its_write_plugs_know_with_eio() {
        // SCSI: a write behind the write pointer of a partly written zone
        // is the block layer's EIO on 6.12, the device's EREMOTEIO on 6.1;
        // in an empty zone the device judges it on both.
        for (kernel, behind) in [(Kernel::V6_1, libc::EREMOTEIO), (Kernel::V6_12, libc::EIO)] {
            let mut st = family(Device::ScsiZbc, kernel, 0, 0, 0);
            try_write(&mut st, ZS);
            assert_eq!(try_write(&mut st, ZS), Some(behind));
            assert_eq!(try_write(&mut st, 2 * ZS + BS), Some(libc::EREMOTEIO));
        }
        // A write refused at the capacity of a full zone stays failing
        // through reports; one refused behind a write pointer does not.
        let geo = ZoneGeometry::new(&ZoneConfig {
            device: Device::ScsiZbc,
            kernel: Kernel::V6_12,
            zone_capacity: Some(ZS / 2),
            ..cfg(8, 0, 0, 0)
        })
        .unwrap();
        let mut st = ZoneState::new(geo);
        let plan = st.check_write(ZS, ZS / 2).unwrap();
        st.apply_write(&plan);
        assert_eq!(st.get(1), (2 * ZS, ZoneCond::Full));
        assert_eq!(try_write(&mut st, ZS + ZS / 2), Some(libc::EIO));
        st.reported(0, 8);
        assert_eq!(try_write(&mut st, ZS), Some(libc::EIO));
        st.refresh(ZS, 1);
        assert_eq!(try_write(&mut st, ZS), Some(libc::EREMOTEIO));
        try_write(&mut st, 3 * ZS);
        assert_eq!(try_write(&mut st, 3 * ZS), Some(libc::EIO));
        st.reported(3 * ZS, 1);
        assert_eq!(try_write(&mut st, 3 * ZS + BS), None);
    }

    #[test]
    fn a_refused_write_leaves_its_zone_failing_on_6_12_only() {
        for (kernel, plugs) in [(Kernel::V6_1, false), (Kernel::V6_12, true)] {
            let geo = ZoneGeometry::new(&ZoneConfig {
                kernel,
                ..cfg(4, 0, 0, 0)
            })
            .unwrap();
            let mut st = ZoneState::new(geo);
            let plan = st.check_write(ZS, BS).unwrap();
            st.apply_write(&plan);
            // Not at the write pointer: refused by the device.
            assert!(st.check_write(ZS + 2 * BS, BS).is_err());
            // At the write pointer: 6.1 takes it, 6.12 fails it.
            assert_eq!(st.check_write(ZS + BS, BS).is_err(), plugs);
            // Other zones are not affected.
            assert!(st.check_write(2 * ZS, BS).is_ok());
            // A report of another zone does not help; one of this zone does.
            st.reported(2 * ZS, 2);
            assert_eq!(st.check_write(ZS + BS, BS).is_err(), plugs);
            st.reported(0, 2);
            assert!(st.check_write(ZS + BS, BS).is_ok());
            // A reset refreshes too.
            assert!(st.check_write(ZS, BS).is_err());
            assert_eq!(st.check_write(ZS + BS, BS).is_err(), plugs);
            st.zone_mgmt_outcome(ZoneOp::Reset, ZS, ZS).result.unwrap();
            assert!(st.check_write(ZS, BS).is_ok());
        }
    }

    #[test]
    fn nvme_on_6_12_keeps_a_failed_zone_failing_through_reports() {
        // Behind the multipath head a report does not reach the plugs:
        // only a reset (or finish) clears the mark; null_blk's report does.
        for (device, after_report) in [(Device::NullBlk, None), (Device::NvmeZns, Some(libc::EIO))]
        {
            let mut st = family(device, Kernel::V6_12, 0, 0, 0);
            try_write(&mut st, ZS);
            assert_eq!(try_write(&mut st, ZS + 2 * BS), Some(libc::EIO));
            assert_eq!(try_write(&mut st, ZS + BS), Some(libc::EIO));
            st.reported(0, 4);
            assert_eq!(try_write(&mut st, ZS + BS), after_report);
            st.zone_mgmt_outcome(ZoneOp::Reset, ZS, ZS).result.unwrap();
            assert_eq!(try_write(&mut st, ZS), None);
        }
    }

    fn err_of<T: std::fmt::Debug>(r: io::Result<T>) -> Errno {
        Errno::from_raw(r.unwrap_err().raw_os_error().unwrap())
    }

    fn write(st: &mut ZoneState, off: u64, len: u64) -> io::Result<()> {
        let plan = st.check_write(off, len)?;
        st.apply_write(&plan);
        Ok(())
    }

    fn append(st: &mut ZoneState, zone_start: u64, len: u64) -> io::Result<u64> {
        let plan = st.check_append(zone_start, len)?;
        Ok(st.apply_append(&plan))
    }

    fn all_zones(st: &ZoneState) -> Vec<Zone> {
        st.report(0, usize::MAX)
    }

    fn conds(st: &ZoneState) -> Vec<ZoneCond> {
        all_zones(st).iter().map(|z| z.cond).collect()
    }

    /// Recomputes everything derived and checks the limits and bounds.
    fn check_invariants(st: &ZoneState) {
        let g = st.geo;
        let mut c = ZoneCounts::default();
        for (i, z) in all_zones(st).iter().enumerate() {
            assert_eq!(z.start, i as u64 * g.zone_size);
            if i < g.nr_conv {
                assert_eq!((z.cond, z.wp), (ZoneCond::NotWp, z.start + z.len));
                continue;
            }
            c.change(ZoneCond::Empty, z.cond);
            match z.cond {
                ZoneCond::Empty => assert_eq!(z.wp, z.start),
                ZoneCond::ImplicitOpen | ZoneCond::Closed => {
                    assert!(z.wp > z.start && z.wp < z.start + z.cap, "zone {i} {z:?}")
                }
                ZoneCond::ExplicitOpen => assert!(z.wp < z.start + z.cap),
                ZoneCond::Full => assert!(z.wp == z.start + z.cap || z.wp == z.start + z.len),
                ZoneCond::ReadOnly | ZoneCond::Offline => assert_eq!(z.wp, z.start + z.len),
                ZoneCond::NotWp => panic!("sequential zone {i} not-wp"),
            }
        }
        assert_eq!(c, st.counts);
        if g.max_open != 0 {
            assert!(c.open() <= g.max_open);
        }
        if g.max_active != 0 {
            assert!(c.active() <= g.max_active);
        }
        assert!(st.cursor >= g.nr_conv && st.cursor < g.nr_zones);
    }

    /// Initial conditions of the reference table, built with real operations
    /// on zone 1 of a device whose zone 0 is conventional.
    #[derive(Clone, Copy, Debug)]
    enum Init {
        Conv,
        Empty,
        ImpOpen,
        ExpOpen,
        ExpOpenWritten,
        Closed,
        Full,
        ReadOnly,
        Offline,
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        WriteAtWp,
        WriteNotAtWp,
        WritePastCap,
        Open,
        Close,
        Finish,
        Reset,
        Read,
        Append,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Want {
        Cond(ZoneCond),
        Err(Errno),
    }

    /// Returns the state (capacity below the zone size, so that a write past
    /// the capacity stays in the zone) and the zone under test.
    fn setup(init: Init) -> (ZoneState, usize) {
        let geo = ZoneGeometry::new(&ZoneConfig {
            zone_capacity: Some(ZS - 4 * BS),
            ..cfg(4, 1, 0, 0)
        });
        let mut st = ZoneState::new(geo.unwrap());
        let z = 1;
        let s = ZS;
        match init {
            Init::Conv => return (st, 0),
            Init::Empty => {}
            Init::ImpOpen => write(&mut st, s, BS).unwrap(),
            Init::ExpOpen => st.zone_mgmt(ZoneOp::Open, s, ZS).unwrap(),
            Init::ExpOpenWritten => {
                st.zone_mgmt(ZoneOp::Open, s, ZS).unwrap();
                write(&mut st, s, BS).unwrap();
            }
            Init::Closed => {
                write(&mut st, s, BS).unwrap();
                st.zone_mgmt(ZoneOp::Close, s, ZS).unwrap();
            }
            Init::Full => st.zone_mgmt(ZoneOp::Finish, s, ZS).unwrap(),
            Init::ReadOnly => st.set_condition(z, ZoneCond::ReadOnly).unwrap(),
            Init::Offline => st.set_condition(z, ZoneCond::Offline).unwrap(),
        }
        (st, z)
    }

    fn run(st: &mut ZoneState, z: usize, op: Op) -> io::Result<()> {
        let zone = st.zone(z);
        // Conventional zones have their wp at the end: write in the middle.
        // A full zone's wp is its end: write its last block.
        let wp = if zone.is_conventional() {
            zone.start + BS
        } else {
            zone.wp.min(zone.start + zone.len - BS)
        };
        match op {
            Op::WriteAtWp => write(st, wp, BS),
            Op::WriteNotAtWp => {
                let off = if wp == zone.start {
                    wp + BS
                } else {
                    zone.start
                };
                write(st, off, BS)
            }
            .and_then(|_| {
                if zone.is_conventional() {
                    Err(eio())
                } else {
                    Ok(())
                }
            }),
            Op::WritePastCap => write(st, wp, (zone.start + zone.cap).saturating_sub(wp) + BS),
            Op::Open => st.zone_mgmt(ZoneOp::Open, zone.start, ZS),
            Op::Close => st.zone_mgmt(ZoneOp::Close, zone.start, ZS),
            Op::Finish => st.zone_mgmt(ZoneOp::Finish, zone.start, ZS),
            Op::Reset => st.zone_mgmt(ZoneOp::Reset, zone.start, ZS),
            Op::Read => st.read_fill(zone.start, ZS).map(|_| ()),
            Op::Append => append(st, zone.start, BS).map(|_| ()),
        }
    }

    #[test]
    fn transition_table() {
        use Init as I;
        use Op as O;
        use Want::{Cond as C, Err as E};
        use ZoneCond as Z;
        let eio = E(Errno::EIO);
        #[rustfmt::skip]
        let rows: &[(Init, Op, Want)] = &[
            // write at the write pointer
            (I::Empty,          O::WriteAtWp, C(Z::ImplicitOpen)),
            (I::ImpOpen,        O::WriteAtWp, C(Z::ImplicitOpen)),
            (I::ExpOpen,        O::WriteAtWp, C(Z::ExplicitOpen)),
            (I::ExpOpenWritten, O::WriteAtWp, C(Z::ExplicitOpen)),
            (I::Closed,         O::WriteAtWp, C(Z::ImplicitOpen)),
            (I::Full,           O::WriteAtWp, eio),
            (I::ReadOnly,       O::WriteAtWp, eio),
            (I::Offline,        O::WriteAtWp, eio),
            (I::Conv,           O::WriteAtWp, C(Z::NotWp)),
            // write not at the write pointer (the conventional row checks
            // that it is accepted: `run` turns its success into EIO)
            (I::Empty,          O::WriteNotAtWp, eio),
            (I::ImpOpen,        O::WriteNotAtWp, eio),
            (I::ExpOpen,        O::WriteNotAtWp, eio),
            (I::Closed,         O::WriteNotAtWp, eio),
            (I::Full,           O::WriteNotAtWp, eio),
            (I::ReadOnly,       O::WriteNotAtWp, eio),
            (I::Offline,        O::WriteNotAtWp, eio),
            (I::Conv,           O::WriteNotAtWp, eio),
            // write past the capacity
            (I::Empty,          O::WritePastCap, eio),
            (I::ImpOpen,        O::WritePastCap, eio),
            (I::ExpOpen,        O::WritePastCap, eio),
            (I::Closed,         O::WritePastCap, eio),
            (I::Full,           O::WritePastCap, eio),
            (I::ReadOnly,       O::WritePastCap, eio),
            (I::Offline,        O::WritePastCap, eio),
            // open
            (I::Empty,          O::Open, C(Z::ExplicitOpen)),
            (I::ImpOpen,        O::Open, C(Z::ExplicitOpen)),
            (I::ExpOpen,        O::Open, C(Z::ExplicitOpen)),
            (I::Closed,         O::Open, C(Z::ExplicitOpen)),
            (I::Full,           O::Open, eio),
            (I::ReadOnly,       O::Open, eio),
            (I::Offline,        O::Open, eio),
            (I::Conv,           O::Open, eio),
            // close
            (I::Empty,          O::Close, eio),
            (I::ImpOpen,        O::Close, C(Z::Closed)),
            (I::ExpOpen,        O::Close, C(Z::Empty)),
            (I::ExpOpenWritten, O::Close, C(Z::Closed)),
            (I::Closed,         O::Close, C(Z::Closed)),
            (I::Full,           O::Close, eio),
            (I::ReadOnly,       O::Close, eio),
            (I::Offline,        O::Close, eio),
            (I::Conv,           O::Close, eio),
            // finish
            (I::Empty,          O::Finish, C(Z::Full)),
            (I::ImpOpen,        O::Finish, C(Z::Full)),
            (I::ExpOpen,        O::Finish, C(Z::Full)),
            (I::Closed,         O::Finish, C(Z::Full)),
            (I::Full,           O::Finish, C(Z::Full)),
            (I::ReadOnly,       O::Finish, eio),
            (I::Offline,        O::Finish, eio),
            (I::Conv,           O::Finish, eio),
            // reset
            (I::Empty,          O::Reset, C(Z::Empty)),
            (I::ImpOpen,        O::Reset, C(Z::Empty)),
            (I::ExpOpen,        O::Reset, C(Z::Empty)),
            (I::Closed,         O::Reset, C(Z::Empty)),
            (I::Full,           O::Reset, C(Z::Empty)),
            (I::ReadOnly,       O::Reset, eio),
            (I::Offline,        O::Reset, eio),
            (I::Conv,           O::Reset, eio),
            // read
            (I::Empty,          O::Read, C(Z::Empty)),
            (I::Full,           O::Read, C(Z::Full)),
            (I::ReadOnly,       O::Read, C(Z::ReadOnly)),
            (I::Offline,        O::Read, eio),
            (I::Conv,           O::Read, C(Z::NotWp)),
            // zone append (lands at the write pointer)
            (I::Empty,          O::Append, C(Z::ImplicitOpen)),
            (I::ImpOpen,        O::Append, C(Z::ImplicitOpen)),
            (I::ExpOpen,        O::Append, C(Z::ExplicitOpen)),
            (I::ExpOpenWritten, O::Append, C(Z::ExplicitOpen)),
            (I::Closed,         O::Append, C(Z::ImplicitOpen)),
            (I::Full,           O::Append, eio),
            (I::ReadOnly,       O::Append, eio),
            (I::Offline,        O::Append, eio),
            (I::Conv,           O::Append, eio),
        ];
        for &(init, op, want) in rows {
            let (mut st, z) = setup(init);
            check_invariants(&st);
            let before = st.clone();
            let got = match run(&mut st, z, op) {
                Ok(()) => Want::Cond(st.zone(z).cond),
                Err(e) => Want::Err(Errno::from_raw(e.raw_os_error().unwrap())),
            };
            assert_eq!(got, want, "{init:?} {op:?}");
            check_invariants(&st);
            if matches!(got, Want::Err(_)) && !matches!((init, op), (Init::Conv, Op::WriteNotAtWp))
            {
                assert_eq!(st, before, "{init:?} {op:?} changed the state on error");
            }
            let zone = st.zone(z);
            match (got, op) {
                (Want::Cond(ZoneCond::Full), Op::Finish) => {
                    assert_eq!(zone.wp, zone.start + zone.len)
                }
                (Want::Cond(ZoneCond::Empty), _) => assert_eq!(zone.wp, zone.start),
                _ => {}
            }
        }
    }

    #[test]
    fn geometry_validation_and_clamping() {
        let g = |c: ZoneConfig| ZoneGeometry::new(&c);
        let base = cfg(8, 2, 0, 0);
        assert!(g(ZoneConfig { size: 0, ..base }).is_err());
        assert!(g(ZoneConfig { size: 1000, ..base }).is_err());
        assert!(
            g(ZoneConfig {
                zone_size: 3 * 512,
                ..base
            })
            .is_err()
        );
        assert!(
            g(ZoneConfig {
                zone_size: 256,
                ..base
            })
            .is_err()
        );
        assert!(
            g(ZoneConfig {
                zone_capacity: Some(0),
                ..base
            })
            .is_err()
        );
        assert!(
            g(ZoneConfig {
                zone_capacity: Some(ZS + 512),
                ..base
            })
            .is_err()
        );
        assert!(
            g(ZoneConfig {
                zone_capacity: Some(1000),
                ..base
            })
            .is_err()
        );
        assert!(g(ZoneConfig { nr_conv: 8, ..base }).is_err());
        assert!(
            g(ZoneConfig {
                zone_append_max: 100,
                ..base
            })
            .is_err()
        );
        let msg = g(ZoneConfig { nr_conv: 8, ..base }).unwrap_err();
        assert!(!msg.contains('\n'));

        // 6 sequential zones.
        let lim = |o, a| {
            let geo = g(ZoneConfig {
                max_open: o,
                max_active: a,
                ..base
            })
            .unwrap();
            (geo.max_open(), geo.max_active())
        };
        assert_eq!(lim(0, 0), (0, 0));
        assert_eq!(lim(3, 4), (3, 4));
        assert_eq!(lim(6, 0), (0, 0));
        assert_eq!(lim(5, 0), (5, 0));
        assert_eq!(lim(0, 6), (0, 0));
        assert_eq!(lim(5, 3), (3, 3));
        // null_blk's order: lowered to the active limit before the >= check.
        assert_eq!(lim(10, 3), (3, 3));
        assert_eq!(lim(0, 3), (0, 3));
        assert_eq!(lim(10, 10), (0, 0));

        // A smaller last zone, with capacity clamped to it.
        let geo = g(ZoneConfig {
            size: 3 * ZS + 8192,
            zone_capacity: Some(ZS / 2),
            nr_conv: 1,
            ..base
        })
        .unwrap();
        assert_eq!(
            (geo.nr_zones(), geo.nr_conv(), geo.zone_capacity()),
            (4, 1, ZS / 2)
        );
        let st = ZoneState::new(geo);
        let last = st.zone(3);
        assert_eq!((last.start, last.len, last.cap), (3 * ZS, 8192, 8192));
        let conv = st.zone(0);
        assert_eq!(
            (conv.cap, conv.wp, conv.ztype),
            (ZS, ZS, ZoneType::Conventional)
        );
        assert_eq!(ZoneType::SeqWriteRequired.as_u8(), 2);
    }

    #[test]
    fn cond_numbers_round_trip() {
        for v in 0..=255u8 {
            if let Some(c) = ZoneCond::from_u8(v) {
                assert_eq!(c.as_u8(), v);
            }
        }
        assert_eq!(ZoneCond::from_u8(14), Some(ZoneCond::Full));
        assert_eq!(ZoneCond::from_u8(5), None);
    }

    #[test]
    fn report_ranges() {
        let st = state(4, 1, 0, 0);
        assert_eq!(st.report(0, 100).len(), 4);
        let r = st.report(ZS + 5, 2);
        assert_eq!(r.iter().map(|z| z.start).collect::<Vec<_>>(), [ZS, 2 * ZS]);
        assert!(st.report(4 * ZS, 10).is_empty());
        assert!(st.report(u64::MAX, 10).is_empty());
        assert!(st.report(0, 0).is_empty());
    }

    #[test]
    fn implicit_close_round_robin() {
        // 1 conventional + 5 sequential zones, open limit 2.
        let mut st = state(6, 1, 2, 0);
        assert_eq!(st.cursor(), 1);
        write(&mut st, ZS, BS).unwrap();
        write(&mut st, 2 * ZS, BS).unwrap();
        // Third write closes zone 1 (first from the cursor).
        write(&mut st, 3 * ZS, BS).unwrap();
        assert_eq!(st.zone(1).cond, ZoneCond::Closed);
        assert_eq!(st.cursor(), 2);
        // Next closes zone 2, not zone 3.
        write(&mut st, 4 * ZS, BS).unwrap();
        assert_eq!(st.zone(2).cond, ZoneCond::Closed);
        assert_eq!(st.cursor(), 3);
        check_invariants(&st);
        // Writing the closed zone 1 reopens it and closes zone 3.
        write(&mut st, ZS + BS, BS).unwrap();
        assert_eq!(st.zone(1).cond, ZoneCond::ImplicitOpen);
        assert_eq!(st.zone(3).cond, ZoneCond::Closed);
        assert_eq!(st.cursor(), 4);
        write(&mut st, 5 * ZS, BS).unwrap();
        assert_eq!(st.zone(4).cond, ZoneCond::Closed);
        assert_eq!(st.cursor(), 5);
        // Open zones: 1 and 5 (implicit). Closing zone 5, the last, moves
        // the cursor back to the first sequential zone.
        st.zone_mgmt(ZoneOp::Open, 2 * ZS, ZS).unwrap();
        assert_eq!(st.zone(5).cond, ZoneCond::Closed);
        assert_eq!(st.cursor(), 1);
        check_invariants(&st);
        st.zone_mgmt(ZoneOp::Open, 3 * ZS, ZS).unwrap();
        assert_eq!(st.zone(1).cond, ZoneCond::Closed);
        assert_eq!(st.cursor(), 2);
        // Every open zone explicit: ETOOMANYREFS for writes, opens, finishes.
        let before = st.clone();
        assert_eq!(err_of(write(&mut st, ZS + 2 * BS, BS)), Errno::ETOOMANYREFS);
        assert_eq!(
            err_of(st.zone_mgmt(ZoneOp::Open, 4 * ZS, ZS)),
            Errno::ETOOMANYREFS
        );
        assert_eq!(
            err_of(st.zone_mgmt(ZoneOp::Finish, 4 * ZS, ZS)),
            Errno::ETOOMANYREFS
        );
        assert_eq!(st, before);
        // An implicitly open zone that was never written closes to empty.
        // The scan wraps: the only implicitly open zone is before the cursor.
        let mut st = state(4, 0, 1, 0);
        write(&mut st, 0, BS).unwrap();
        write(&mut st, ZS, BS).unwrap();
        assert_eq!((st.zone(0).cond, st.cursor()), (ZoneCond::Closed, 1));
        write(&mut st, BS, BS).unwrap();
        assert_eq!((st.zone(1).cond, st.cursor()), (ZoneCond::Closed, 2));
        write(&mut st, 2 * ZS, BS).unwrap();
        assert_eq!((st.zone(0).cond, st.cursor()), (ZoneCond::Closed, 1));
        check_invariants(&st);
    }

    #[test]
    fn active_limit_checked_before_open_limit() {
        // 5 sequential zones, open 1, active 2.
        let mut st = state(5, 0, 1, 2);
        st.zone_mgmt(ZoneOp::Open, 0, ZS).unwrap();
        write(&mut st, ZS, BS).unwrap_err(); // ETOOMANYREFS: open full, no implicit zone
        st.zone_mgmt(ZoneOp::Close, 0, ZS).unwrap(); // unwritten: back to empty
        write(&mut st, 0, BS).unwrap();
        st.zone_mgmt(ZoneOp::Close, 0, ZS).unwrap();
        write(&mut st, ZS, BS).unwrap();
        // Active 2 (closed 0, implicit 1), open 1: an empty zone needs both;
        // the active limit is checked first.
        let before = st.clone();
        assert_eq!(err_of(write(&mut st, 2 * ZS, BS)), Errno::EOVERFLOW);
        assert_eq!(
            err_of(st.zone_mgmt(ZoneOp::Open, 2 * ZS, ZS)),
            Errno::EOVERFLOW
        );
        assert_eq!(
            err_of(st.zone_mgmt(ZoneOp::Finish, 2 * ZS, ZS)),
            Errno::EOVERFLOW
        );
        // The closed zone only needs open resources, but null_blk refuses to
        // implicitly close while the active limit is reached: ETOOMANYREFS.
        assert_eq!(err_of(write(&mut st, BS, BS)), Errno::ETOOMANYREFS);
        assert_eq!(st, before);
        // Explicit opens of the implicitly open zone need nothing.
        st.zone_mgmt(ZoneOp::Open, ZS, ZS).unwrap();
        assert_eq!(
            st.counts(),
            ZoneCounts {
                imp_open: 0,
                exp_open: 1,
                closed: 1
            }
        );
        // Finishing frees resources.
        st.zone_mgmt(ZoneOp::Finish, ZS, ZS).unwrap();
        write(&mut st, 2 * ZS, BS).unwrap();
        check_invariants(&st);
        // No open limit, active limit only.
        let mut st = state(5, 0, 0, 2);
        write(&mut st, 0, BS).unwrap();
        write(&mut st, ZS, BS).unwrap();
        assert_eq!(err_of(write(&mut st, 2 * ZS, BS)), Errno::EOVERFLOW);
    }

    #[test]
    fn capacity_below_zone_size() {
        let cap = ZS / 2;
        let geo = ZoneGeometry::new(&ZoneConfig {
            zone_capacity: Some(cap),
            ..cfg(4, 0, 0, 0)
        })
        .unwrap();
        let mut st = ZoneState::new(geo);
        assert_eq!(err_of(write(&mut st, 0, cap + BS)), Errno::EIO);
        write(&mut st, 0, cap - BS).unwrap();
        write(&mut st, cap - BS, BS).unwrap();
        assert_eq!((st.zone(0).cond, st.zone(0).wp), (ZoneCond::Full, cap));
        assert_eq!(st.counts(), ZoneCounts::default());
        assert_eq!(err_of(write(&mut st, cap, BS)), Errno::EIO);
        write(&mut st, ZS, BS).unwrap();
        st.zone_mgmt(ZoneOp::Finish, ZS, ZS).unwrap();
        assert_eq!((st.zone(1).cond, st.zone(1).wp), (ZoneCond::Full, 2 * ZS));
        // Reads past the capacity of a zone written to capacity read 0xff.
        assert_eq!(st.read_fill(0, ZS).unwrap(), [(cap, ZS - cap)]);
        assert_eq!(st.read_fill(ZS, ZS).unwrap(), []);
        // A write cannot cross from the capacity into the next zone.
        assert_eq!(
            err_of(write(&mut st, 2 * ZS + cap - BS, 2 * BS)),
            Errno::EIO
        );
        check_invariants(&st);
    }

    #[test]
    fn cross_zone_writes() {
        let mut st = state(4, 1, 0, 0);
        // Conventional into empty sequential: ok.
        write(&mut st, ZS - BS, 2 * BS).unwrap();
        assert_eq!(st.zone(1).wp, ZS + BS);
        // From zone 1's wp into the empty zone 2: split at the boundary,
        // zone 1 becomes full, zone 2 implicitly open.
        let plan = st.check_write(ZS + BS, ZS).unwrap();
        assert_eq!(plan.pieces(), [(ZS + BS, ZS - BS), (2 * ZS, BS)]);
        st.apply_write(&plan);
        assert_eq!(conds(&st)[1..3], [ZoneCond::Full, ZoneCond::ImplicitOpen]);
        assert_eq!(st.zone(2).wp, 2 * ZS + BS);
        // Zone 3 written, then a write crossing from zone 2 into zone 3 is
        // refused although zone 2's piece is fine; nothing changes.
        write(&mut st, 3 * ZS, BS).unwrap();
        let before = st.clone();
        assert_eq!(err_of(write(&mut st, 3 * ZS - BS, 2 * BS)), Errno::EIO);
        assert_eq!(err_of(st.check_write(2 * ZS + BS, ZS)), Errno::EIO);
        assert_eq!(st, before);
        // Past the device end.
        assert_eq!(err_of(st.check_write(4 * ZS - BS, 2 * BS)), Errno::EIO);
        assert_eq!(err_of(st.check_write(u64::MAX, 2)), Errno::EIO);
        // Crossing under an open limit: first zone's resources are released
        // when it fills, so the next zone can open.
        let mut st = state(4, 0, 1, 1);
        write(&mut st, 0, BS).unwrap();
        write(&mut st, BS, ZS).unwrap();
        assert_eq!(conds(&st)[..2], [ZoneCond::Full, ZoneCond::ImplicitOpen]);
        check_invariants(&st);
        // A zero-length write touches nothing.
        assert!(st.check_write(5, 0).unwrap().pieces().is_empty());
    }

    #[test]
    fn misaligned_management_ranges() {
        let mut st = ZoneState::new(
            ZoneGeometry::new(&ZoneConfig {
                size: 3 * ZS + 8192,
                ..cfg(4, 0, 0, 0)
            })
            .unwrap(),
        );
        let before = st.clone();
        for &(off, len) in &[
            (0, 0),
            (BS, ZS),
            (0, ZS - BS),
            (0, ZS + BS),
            (3 * ZS, ZS),
            (4 * ZS, ZS),
            (u64::MAX - ZS + 1, ZS),
        ] {
            for op in [ZoneOp::Open, ZoneOp::Close, ZoneOp::Finish, ZoneOp::Reset] {
                assert_eq!(
                    err_of(st.zone_mgmt(op, off, len)),
                    Errno::EINVAL,
                    "{op:?} {off} {len}"
                );
            }
        }
        assert_eq!(st, before);
        // The smaller last zone: a range ending at the device end.
        st.zone_mgmt(ZoneOp::Finish, 3 * ZS, 8192).unwrap();
        assert_eq!(st.zone(3).wp, 3 * ZS + 8192);
        st.zone_mgmt(ZoneOp::Open, ZS, 2 * ZS).unwrap();
        assert_eq!(
            conds(&st),
            [
                ZoneCond::Empty,
                ZoneCond::ExplicitOpen,
                ZoneCond::ExplicitOpen,
                ZoneCond::Full
            ]
        );
        st.zone_mgmt(ZoneOp::Reset, 2 * ZS, ZS + 8192).unwrap();
        assert_eq!(conds(&st)[2..], [ZoneCond::Empty, ZoneCond::Empty]);
    }

    #[test]
    fn multi_zone_range_continues_past_errors() {
        // Open limit 2 and three zones to open: the third fails, the first
        // two stay open (Linux sends one request per zone).
        let mut st = state(5, 1, 2, 0);
        st.zone_mgmt(ZoneOp::Open, ZS, ZS).unwrap();
        st.zone_mgmt(ZoneOp::Open, 2 * ZS, ZS).unwrap();
        st.zone_mgmt(ZoneOp::Close, ZS, 2 * ZS).unwrap();
        write(&mut st, 2 * ZS, BS).unwrap();
        // zone 2 implicitly open; open zones 1..=3.
        assert_eq!(
            err_of(st.zone_mgmt(ZoneOp::Open, ZS, 3 * ZS)),
            Errno::ETOOMANYREFS
        );
        assert_eq!(
            conds(&st)[1..],
            [
                ZoneCond::ExplicitOpen,
                ZoneCond::ExplicitOpen,
                ZoneCond::Empty,
                ZoneCond::Empty
            ]
        );
        check_invariants(&st);
        // A conventional zone in the range gives EIO; the other zones are
        // still processed.
        let out = st.zone_mgmt_outcome(ZoneOp::Reset, 0, 3 * ZS);
        assert_eq!(err_of(out.result), Errno::EIO);
        assert_eq!(out.reset, [(ZS, 2 * ZS)], "adjacent zones joined");
        assert_eq!(conds(&st)[1..3], [ZoneCond::Empty, ZoneCond::Empty]);
        // Close over a range with an empty zone in the middle.
        write(&mut st, ZS, BS).unwrap();
        write(&mut st, 3 * ZS, BS).unwrap();
        assert_eq!(err_of(st.zone_mgmt(ZoneOp::Close, ZS, 3 * ZS)), Errno::EIO);
        assert_eq!(
            conds(&st)[1..4],
            [ZoneCond::Closed, ZoneCond::Empty, ZoneCond::Closed]
        );
        check_invariants(&st);
    }

    #[test]
    fn reset_all_skips_conventional_read_only_offline() {
        let mut st = state(6, 2, 0, 0);
        write(&mut st, 2 * ZS, BS).unwrap();
        st.zone_mgmt(ZoneOp::Finish, 3 * ZS, ZS).unwrap();
        st.set_condition(4, ZoneCond::ReadOnly).unwrap();
        st.set_condition(5, ZoneCond::Offline).unwrap();
        let out = st.zone_mgmt_outcome(ZoneOp::Reset, 0, 6 * ZS);
        out.result.unwrap();
        assert_eq!(out.reset, [(2 * ZS, 2 * ZS)], "adjacent zones joined");
        assert_eq!(
            conds(&st),
            [
                ZoneCond::NotWp,
                ZoneCond::NotWp,
                ZoneCond::Empty,
                ZoneCond::Empty,
                ZoneCond::ReadOnly,
                ZoneCond::Offline
            ]
        );
        // Not the whole device: the conventional zone is an error.
        assert_eq!(err_of(st.zone_mgmt(ZoneOp::Reset, 0, 5 * ZS)), Errno::EIO);
        // Fault injection: bad arguments, and back to empty.
        assert_eq!(
            err_of(st.set_condition(0, ZoneCond::ReadOnly)),
            Errno::EINVAL
        );
        assert_eq!(err_of(st.set_condition(2, ZoneCond::Full)), Errno::EINVAL);
        assert_eq!(err_of(st.set_condition(2, ZoneCond::Empty)), Errno::EINVAL);
        assert_eq!(
            err_of(st.set_condition(9, ZoneCond::Offline)),
            Errno::EINVAL
        );
        st.set_condition(5, ZoneCond::Empty).unwrap();
        assert_eq!((st.zone(5).cond, st.zone(5).wp), (ZoneCond::Empty, 5 * ZS));
        // Making an open zone read-only releases its resources.
        write(&mut st, 2 * ZS, BS).unwrap();
        st.set_condition(2, ZoneCond::ReadOnly).unwrap();
        assert_eq!(st.counts(), ZoneCounts::default());
        check_invariants(&st);
    }

    #[test]
    fn append_positions() {
        let geo = ZoneGeometry::new(&ZoneConfig {
            zone_append_max: 2 * BS,
            ..cfg(3, 1, 0, 0)
        })
        .unwrap();
        let mut st = ZoneState::new(geo);
        assert_eq!(append(&mut st, ZS, BS).unwrap(), ZS);
        assert_eq!(append(&mut st, ZS, 2 * BS).unwrap(), ZS + BS);
        assert_eq!(st.zone(1).wp, ZS + 3 * BS);
        assert_eq!(err_of(append(&mut st, ZS, 3 * BS)), Errno::EINVAL);
        assert_eq!(err_of(append(&mut st, ZS, 0)), Errno::EINVAL);
        assert_eq!(err_of(append(&mut st, 0, BS)), Errno::EIO);
        assert_eq!(err_of(append(&mut st, ZS + BS, BS)), Errno::EIO);
        assert_eq!(err_of(append(&mut st, 3 * ZS, BS)), Errno::EIO);
        // Fill zone 1 to the last block, then an append that would pass the
        // capacity fails and never lands in zone 2.
        while st.zone(1).wp < 2 * ZS - BS {
            append(&mut st, ZS, BS).unwrap();
        }
        let before = st.clone();
        assert_eq!(err_of(append(&mut st, ZS, 2 * BS)), Errno::EIO);
        assert_eq!(st, before);
        assert_eq!(append(&mut st, ZS, BS).unwrap(), 2 * ZS - BS);
        assert_eq!(st.zone(1).cond, ZoneCond::Full);
        assert_eq!(err_of(append(&mut st, ZS, BS)), Errno::EIO);
        assert_eq!(st.zone(2).cond, ZoneCond::Empty);
        let plan = st.check_append(2 * ZS, BS).unwrap();
        assert_eq!(
            (plan.pos, plan.write.pieces()),
            (2 * ZS, &[(2 * ZS, BS)][..])
        );
        check_invariants(&st);
    }

    #[test]
    fn read_fill_ranges() {
        let mut st = state(4, 1, 0, 0);
        write(&mut st, ZS, BS).unwrap();
        // Conventional zone: nothing; zone 1 from its wp; zone 2 entirely.
        assert_eq!(
            st.read_fill(ZS - BS, ZS + 2 * BS).unwrap(),
            [(ZS + BS, ZS - BS), (2 * ZS, BS)]
        );
        assert_eq!(st.read_fill(ZS, BS).unwrap(), []);
        assert_eq!(st.read_fill(ZS + 2 * BS, BS).unwrap(), [(ZS + 2 * BS, BS)]);
        // After a reset everything reads as 0xff again.
        st.zone_mgmt(ZoneOp::Reset, ZS, ZS).unwrap();
        assert_eq!(st.read_fill(ZS, BS).unwrap(), [(ZS, BS)]);
        assert_eq!(st.read_fill(0, 0).unwrap(), []);
        st.set_condition(3, ZoneCond::Offline).unwrap();
        assert_eq!(err_of(st.read_fill(3 * ZS, BS)), Errno::EIO);
        assert_eq!(err_of(st.read_fill(4 * ZS, BS)), Errno::EIO);
    }

    #[test]
    fn save_restore_round_trip() {
        let mut st = state(8, 1, 2, 4);
        write(&mut st, ZS, BS).unwrap();
        write(&mut st, 2 * ZS, BS).unwrap();
        write(&mut st, 3 * ZS, BS).unwrap(); // closes zone 1, cursor 2
        st.zone_mgmt(ZoneOp::Finish, 4 * ZS, ZS).unwrap(); // closes zone 2
        st.set_condition(7, ZoneCond::Offline).unwrap();
        let saved = st.to_saved();
        assert_eq!(saved.cursor, 3);
        assert_eq!(
            st.counts(),
            ZoneCounts {
                imp_open: 1,
                exp_open: 0,
                closed: 2
            }
        );
        let back = ZoneState::from_saved(st.geo, &saved).unwrap();
        assert_eq!(all_zones(&back), all_zones(&st));
        assert_eq!(back.counts(), st.counts());
        assert_eq!(back.cursor(), st.cursor());
        assert_eq!(back.to_saved(), saved);
        // The restored state goes on as the original does.
        let mut a = st.clone();
        let mut b = back;
        write(&mut a, 5 * ZS, BS).unwrap();
        write(&mut b, 5 * ZS, BS).unwrap();
        assert_eq!(a.to_saved(), b.to_saved());
        assert_eq!(a.counts(), b.counts());
    }

    #[test]
    fn restore_rejects_inconsistent_state() {
        let st = state(4, 1, 1, 0);
        let good = st.to_saved();
        let bad = |f: &dyn Fn(&mut SavedZones)| {
            let mut s = good.clone();
            f(&mut s);
            ZoneState::from_saved(st.geo, &s).unwrap_err()
        };
        let e = bad(&|s| s.zones[1] = (ZS + BS, ZoneCond::Empty));
        assert!(e.contains("zone 1"), "{e}");
        bad(&|s| s.zones[1] = (ZS, ZoneCond::ImplicitOpen));
        bad(&|s| s.zones[1] = (ZS, ZoneCond::Closed));
        bad(&|s| s.zones[1] = (2 * ZS, ZoneCond::ExplicitOpen));
        bad(&|s| s.zones[1] = (ZS + BS, ZoneCond::Full));
        bad(&|s| s.zones[1] = (3 * ZS, ZoneCond::ImplicitOpen));
        bad(&|s| s.zones[1] = (ZS, ZoneCond::NotWp));
        bad(&|s| s.zones[1] = (ZS, ZoneCond::ReadOnly));
        bad(&|s| s.zones[0] = (0, ZoneCond::NotWp));
        bad(&|s| s.zones[0] = (ZS, ZoneCond::Empty));
        bad(&|s| s.zones.pop().map(|_| ()).unwrap());
        bad(&|s| s.cursor = 0);
        bad(&|s| s.cursor = 4);
        // Two open zones over an open limit of 1.
        let e = bad(&|s| {
            s.zones[1] = (ZS + BS, ZoneCond::ImplicitOpen);
            s.zones[2] = (2 * ZS, ZoneCond::ExplicitOpen);
        });
        assert!(e.contains("limit"), "{e}");
        // Accepted edge cases: explicit open at start, full at length.
        let mut s = good.clone();
        s.zones[1] = (ZS, ZoneCond::ExplicitOpen);
        s.zones[2] = (3 * ZS, ZoneCond::Full);
        s.zones[3] = (4 * ZS, ZoneCond::ReadOnly);
        let r = ZoneState::from_saved(st.geo, &s).unwrap();
        assert_eq!(
            r.counts(),
            ZoneCounts {
                imp_open: 0,
                exp_open: 1,
                closed: 0
            }
        );
    }

    /// The Txn past its index threshold: zones touched again, out of
    /// order, keep one entry each with their last value, and the counters
    /// follow every change.
    #[test]
    fn txn_repeated_touches_keep_one_entry_per_zone() {
        let st = state(64, 0, 0, 0);
        let mut tx = Txn::new(&st);
        let n = 3 * Txn::SMALL;
        for i in 0..n {
            tx.set(i, i as u64 * ZS + BS, ZoneCond::ImplicitOpen);
        }
        assert!(!tx.index.is_empty(), "index built past SMALL entries");
        for i in (0..n).rev() {
            tx.set(i, i as u64 * ZS + BS, ZoneCond::Closed);
        }
        for i in (0..n).step_by(2) {
            tx.set(i, i as u64 * ZS + 2 * BS, ZoneCond::ExplicitOpen);
        }
        for i in 0..64 {
            let want = match i {
                i if i >= n => (i as u64 * ZS, ZoneCond::Empty),
                i if i % 2 == 0 => (i as u64 * ZS + 2 * BS, ZoneCond::ExplicitOpen),
                i => (i as u64 * ZS + BS, ZoneCond::Closed),
            };
            assert_eq!(tx.get(i), want, "zone {i}");
        }
        let c = tx.done();
        let mut seen: Vec<usize> = c.zones.iter().map(|z| z.0).collect();
        assert_eq!(seen.len(), n, "one entry per zone");
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), n);
        assert_eq!(
            c.counts,
            ZoneCounts {
                imp_open: 0,
                exp_open: n as u32 / 2,
                closed: n as u32 / 2
            }
        );
    }

    /// A range command is the per-zone commands in zone order (as Linux
    /// sends them): over many zones (the Txn's index in use) with open and
    /// active limits, whose implicit closes touch zones the range reaches
    /// later, both end in the same state.
    #[test]
    fn range_mgmt_matches_per_zone_mgmt() {
        const N: u64 = 48;
        let mut rng = Rng::new(0x51_7cc1_b727_220a);
        for (max_open, max_active) in [(0, 0), (3, 0), (3, 5), (4, 40)] {
            let mut a = state(N, 2, max_open, max_active);
            for _ in 0..300 {
                let z = 2 + rng.below(N - 2);
                let k = 1 + rng.below(N - z);
                let op = [ZoneOp::Open, ZoneOp::Close, ZoneOp::Finish, ZoneOp::Reset]
                    [rng.below(4) as usize];
                // Some writes first, to have implicitly open zones around.
                for _ in 0..rng.below(4) {
                    let w = 2 + rng.below(N - 2);
                    let wp = a.zone(w as usize).wp;
                    let _ = write(&mut a, wp.min(w * ZS + ZS - BS), BS);
                }
                let mut b = a.clone();
                let ra = a.zone_mgmt(op, z * ZS, k * ZS);
                let mut rb = Ok(());
                for i in z..z + k {
                    let r = b.zone_mgmt(op, i * ZS, ZS);
                    if rb.is_ok() {
                        rb = r;
                    }
                }
                assert_eq!(ra.is_ok(), rb.is_ok(), "{op:?} {z}+{k}");
                if let (Err(x), Err(y)) = (&ra, &rb) {
                    assert_eq!(x.raw_os_error(), y.raw_os_error());
                }
                assert_eq!(a.to_saved(), b.to_saved(), "{op:?} {z}+{k}");
                assert_eq!(a.counts(), b.counts());
                check_invariants(&a);
                a.take_changes();
            }
        }
    }

    /// `releases_first` judges each zone by its condition before its first
    /// change since `take_changes`, however many changes followed.
    #[test]
    fn releases_first_uses_the_first_change() {
        let mut st = state(40, 0, 0, 0);
        for i in 0..20u64 {
            write(&mut st, i * ZS, BS).unwrap(); // implicitly open
            if i % 2 == 1 {
                st.zone_mgmt(ZoneOp::Close, i * ZS, ZS).unwrap();
            }
        }
        st.take_changes();
        // Even zones: implicitly open -> closed -> explicitly open, a
        // release from their first condition (not from the last, closed);
        // odd zones: closed -> explicitly open and zones 20..: empty ->
        // explicitly open, both acquire.
        st.zone_mgmt(ZoneOp::Close, 0, 20 * ZS).unwrap();
        st.zone_mgmt(ZoneOp::Open, 0, 40 * ZS).unwrap();
        let dirty = st.peek_changes();
        assert_eq!(dirty.zones, (0..40).collect::<Vec<_>>());
        let order = st.releases_first(&dirty.zones);
        let want: Vec<usize> = (0..20)
            .step_by(2)
            .chain((1..20).step_by(2))
            .chain(20..40)
            .collect();
        assert_eq!(order, want);
    }

    /// A load judges the records last set: a misfit a later record
    /// replaces (or a power cycle mends) is no error, the first misfit
    /// left is, as `from_saved` names it.
    #[test]
    fn load_judges_the_last_records() {
        let st = state(4, 1, 0, 0);
        let mut load = ZoneLoad::new(st.geo);
        load.set_cursor(2);
        load.set(1, 7 * ZS, ZoneCond::Closed);
        load.set(2, 2 * ZS, ZoneCond::ImplicitOpen);
        assert_eq!(load.get(1), (7 * ZS, ZoneCond::Closed));
        load.set(1, ZS + BS, ZoneCond::ImplicitOpen);
        assert_eq!(load.power_cycle(), [1, 2]);
        let r = load.finish().unwrap();
        assert_eq!(r.get(1), (ZS + BS, ZoneCond::Closed));
        assert_eq!(r.get(2), (2 * ZS, ZoneCond::Empty));
        assert_eq!((r.counts().closed, r.cursor()), (1, 2));
        let mut load = ZoneLoad::new(st.geo);
        load.set(3, 3 * ZS + BS, ZoneCond::Empty);
        load.set(2, 9, ZoneCond::Full);
        let mut saved = st.to_saved();
        saved.zones[3] = (3 * ZS + BS, ZoneCond::Empty);
        saved.zones[2] = (9, ZoneCond::Full);
        let want = ZoneState::from_saved(st.geo, &saved).unwrap_err();
        assert_eq!(load.finish().unwrap_err(), want);
        assert!(want.starts_with("zone 2 (start 131072)"), "{want}");
    }

    /// Every form of the per-zone slots keeps write pointers (of any byte
    /// length) and conditions up to the zone end, and saves and restores
    /// them.
    #[test]
    fn slot_forms_keep_every_write_pointer() {
        for (zone_size, form) in [(1u64 << 27, 0), (1 << 28, 1), (1 << 31, 1), (1 << 32, 2)] {
            let geo = ZoneGeometry::new(&ZoneConfig {
                size: 3 * zone_size + 4096,
                zone_size,
                zone_capacity: None,
                nr_conv: 1,
                max_open: 0,
                max_active: 0,
                zone_append_max: 0,
                kernel: Kernel::V6_1,
                device: Device::NullBlk,
            })
            .unwrap();
            let mut st = ZoneState::new(geo);
            let got = match st.slots {
                Slots::Packed(_) => 0,
                Slots::Narrow(..) => 1,
                Slots::Wide(..) => 2,
            };
            assert_eq!(got, form, "zone size {zone_size}");
            assert_eq!(st.zone(0).wp, zone_size);
            write(&mut st, zone_size, 3).unwrap();
            write(&mut st, zone_size + 3, zone_size - 3 - 512).unwrap();
            assert_eq!(st.zone(1).wp, 2 * zone_size - 512);
            assert_eq!(st.zone(1).cond, ZoneCond::ImplicitOpen);
            write(&mut st, 2 * zone_size - 512, 512).unwrap();
            assert_eq!(st.zone(1).cond, ZoneCond::Full);
            assert_eq!(st.zone(1).wp, 2 * zone_size);
            st.zone_mgmt(ZoneOp::Finish, 2 * zone_size, zone_size)
                .unwrap();
            assert_eq!(st.zone(2).wp, 3 * zone_size);
            write(&mut st, 3 * zone_size, 4095).unwrap();
            assert_eq!(st.zone(3).wp, 3 * zone_size + 4095);
            assert_eq!(st.zone(3).len, 4096);
            st.set_condition(3, ZoneCond::Offline).unwrap();
            assert_eq!(st.zone(3).wp, 3 * zone_size + 4096);
            let back = ZoneState::from_saved(geo, &st.to_saved()).unwrap();
            assert_eq!(all_zones(&back), all_zones(&st));
            check_invariants(&st);
            st.zone_mgmt(ZoneOp::Reset, 0, geo.size()).unwrap();
            assert_eq!(st.zone(1).wp, zone_size);
            check_invariants(&st);
        }
    }

    use crate::rng::Rng;

    #[test]
    fn randomized_invariants() {
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut seen = std::collections::HashSet::new();
        for (max_open, max_active) in [(0, 0), (2, 0), (0, 3), (2, 3), (3, 3), (1, 2)] {
            let geo = ZoneGeometry::new(&ZoneConfig {
                size: 7 * ZS + 8192,
                zone_capacity: Some(ZS - 4 * BS),
                ..cfg(8, 1, max_open, max_active)
            })
            .unwrap();
            let mut st = ZoneState::new(geo);
            for _ in 0..3000 {
                let z = rng.below(geo.nr_zones() as u64) as usize;
                let zone = st.zone(z);
                let before = st.clone();
                let mut single = true;
                let r = match rng.below(10) {
                    0..=2 => {
                        let off = if rng.below(4) == 0 {
                            zone.start + rng.below(zone.len / BS) * BS
                        } else {
                            zone.wp.min(zone.start + zone.len - BS)
                        };
                        let len = (1 + rng.below(6)) * BS;
                        write(&mut st, off, len.min(geo.size() - off))
                    }
                    3 => append(&mut st, zone.start, (1 + rng.below(4)) * BS).map(|_| ()),
                    4 => st.zone_mgmt(ZoneOp::Open, zone.start, zone.len),
                    5 => st.zone_mgmt(ZoneOp::Close, zone.start, zone.len),
                    6 => st.zone_mgmt(ZoneOp::Finish, zone.start, zone.len),
                    7 => st.zone_mgmt(ZoneOp::Reset, zone.start, zone.len),
                    8 => st.read_fill(zone.start, zone.len).map(|_| ()),
                    _ => match rng.below(20) {
                        0 => st.zone_mgmt(ZoneOp::Reset, 0, geo.size()),
                        1 => st.set_condition(z, ZoneCond::ReadOnly),
                        2 => st.set_condition(z, ZoneCond::Offline),
                        3..=9 => st.set_condition(z, ZoneCond::Empty),
                        _ => {
                            single = false;
                            let n = 1 + rng.below(3);
                            let start = zone.start.min(geo.size() - 1);
                            let len = (n * ZS).min(geo.size() - start);
                            st.zone_mgmt(ZoneOp::Open, start, len)
                        }
                    },
                };
                check_invariants(&st);
                // Single-zone operations (and writes of any length) change
                // nothing when they fail.
                if single && r.is_err() {
                    assert_eq!(st, before);
                }
                seen.insert(r.err().and_then(|e| e.raw_os_error()));
                let saved = st.to_saved();
                let back = ZoneState::from_saved(geo, &saved).unwrap();
                assert_eq!((back.counts(), back.cursor()), (st.counts(), st.cursor()));
            }
        }
        for e in [
            Errno::EIO,
            Errno::EINVAL,
            Errno::ETOOMANYREFS,
            Errno::EOVERFLOW,
        ] {
            assert!(seen.contains(&Some(e as i32)), "{e} never seen");
        }
        assert!(seen.contains(&None));
    }
}
