//! The zone API that travels through the node graph: the value types the
//! block layer's public face owns (the device model and its limits, zone
//! descriptors, types and conditions, operations, and a failed operation's
//! error). The rules that act on them are `zone_rules`. Everything is in
//! bytes; the shell prints 512-byte sectors as qemu-io does.

use std::io;

use nix::errno::Errno;

use super::errno;

/// Zone type, numbered as Linux `BLK_ZONE_TYPE_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneType {
    Conventional = 1,
    SeqWriteRequired = 2,
    /// Reported by some real devices; the emulated ones never make it.
    SeqWritePreferred = 3,
}

impl ZoneType {
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(v: u8) -> Option<ZoneType> {
        match v {
            1 => Some(ZoneType::Conventional),
            2 => Some(ZoneType::SeqWriteRequired),
            3 => Some(ZoneType::SeqWritePreferred),
            _ => None,
        }
    }
}

/// Zone condition, numbered as Linux `BLK_ZONE_COND_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneCond {
    NotWp = 0,
    Empty = 1,
    ImplicitOpen = 2,
    ExplicitOpen = 3,
    Closed = 4,
    ReadOnly = 13,
    Full = 14,
    Offline = 15,
}

impl ZoneCond {
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The condition with this number, or `None` for an unknown one.
    pub fn from_u8(v: u8) -> Option<ZoneCond> {
        Some(match v {
            0 => ZoneCond::NotWp,
            1 => ZoneCond::Empty,
            2 => ZoneCond::ImplicitOpen,
            3 => ZoneCond::ExplicitOpen,
            4 => ZoneCond::Closed,
            13 => ZoneCond::ReadOnly,
            14 => ZoneCond::Full,
            15 => ZoneCond::Offline,
            _ => return None,
        })
    }

    /// Implicitly or explicitly open.
    pub fn is_open(self) -> bool {
        matches!(self, ZoneCond::ImplicitOpen | ZoneCond::ExplicitOpen)
    }

    /// Open or closed: holds an active resource.
    pub fn is_active(self) -> bool {
        self.is_open() || self == ZoneCond::Closed
    }
}

/// A zone descriptor as a zone report returns it (bytes). Conventional zones
/// report `cap = len`, condition `NotWp` and `wp = start + len`, or
/// [`Zone::INVALID_WP`] where the device reports an invalid one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zone {
    pub start: u64,
    pub len: u64,
    pub cap: u64,
    pub wp: u64,
    pub ztype: ZoneType,
    pub cond: ZoneCond,
}

impl Zone {
    /// The write pointer of a zone whose device reports an invalid one (a
    /// SCSI disk's conventional zones: all ones, which qemu-io prints as
    /// `wptr 0xffffffffffffffff`).
    pub const INVALID_WP: u64 = u64::MAX;

    /// The write pointer in 512-byte sectors, as reports print it.
    pub fn wp_sectors(&self) -> u64 {
        if self.wp == Zone::INVALID_WP {
            u64::MAX
        } else {
            self.wp >> 9
        }
    }
}

/// Zone management operations over a range of zones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneOp {
    Open,
    Close,
    Finish,
    Reset,
}

/// A failed zone management command: its error, and the diagnostic line
/// the driver printed on the way (QEMU's host_device driver reports the
/// reason with `error_report` before it fails: a misaligned range, a
/// conventional zone, a failed ioctl). The shell prints the line, then
/// `zone <op> failed: <strerror>`.
#[derive(Debug)]
pub struct ZoneError {
    pub error: io::Error,
    pub diag: Option<String>,
}

impl ZoneError {
    /// An error the driver fails without a diagnostic line.
    pub fn plain(error: io::Error) -> Self {
        ZoneError { error, diag: None }
    }

    /// An errno with the driver's diagnostic line.
    pub fn diag(e: Errno, line: String) -> Self {
        ZoneError {
            error: errno(e),
            diag: Some(line),
        }
    }

    /// The device refused the management command: QEMU's host_device
    /// prints `ioctl BLKxxxZONE failed -ERRNO` when its ioctl fails.
    pub fn ioctl_failed(op: ZoneOp, error: io::Error) -> Self {
        let code = error.raw_os_error().unwrap_or(libc::EIO);
        ZoneError {
            diag: Some(format!("ioctl {} failed -{code}", op.ioctl_name())),
            error,
        }
    }
}

impl From<io::Error> for ZoneError {
    fn from(error: io::Error) -> Self {
        ZoneError::plain(error)
    }
}

/// Linux's zoned model of a block device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneModel {
    HostManaged,
}

impl ZoneModel {
    /// As sysfs `queue/zoned` spells it.
    pub fn name(self) -> &'static str {
        match self {
            ZoneModel::HostManaged => "host-managed",
        }
    }
}

/// A zoned device's geometry and limits (Linux's queue limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneInfo {
    pub model: ZoneModel,
    pub zone_size: u64,
    pub zone_capacity: u64,
    pub nr_zones: u64,
    pub nr_conv: u64,
    /// 0: no limit.
    pub max_open: u64,
    /// 0: no limit.
    pub max_active: u64,
    /// Largest zone append in bytes; 0: no limit beyond the zone.
    pub max_append: u64,
    pub write_granularity: u64,
    /// The kernel series whose block layer the device answers through:
    /// the running kernel's for a real device, the `kernel=` profile's for
    /// an emulated one.
    pub kernel: KernelSeries,
    /// The device family: `null_blk`, `nvme-zns` or `scsi-zbc` (the
    /// `device=` profile of an emulated device; for a real one its kernel
    /// driver's, `other` for the rest).
    pub device: &'static str,
}

/// A Linux kernel series, `major.minor` (`6.1`, `6.12`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSeries {
    pub major: u16,
    pub minor: u16,
}

impl KernelSeries {
    /// The series of a release string such as `6.12.117+deb12-amd64`.
    pub fn of_release(release: &str) -> Option<KernelSeries> {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(KernelSeries { major, minor })
    }

    /// The running kernel's (from /proc/sys/kernel/osrelease).
    pub fn running() -> Option<KernelSeries> {
        let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        KernelSeries::of_release(r.trim())
    }
}

impl std::fmt::Display for KernelSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl ZoneOp {
    /// The word qemu-io uses in its messages (`zone open failed: ...`).
    pub fn name(self) -> &'static str {
        match self {
            ZoneOp::Open => "open",
            ZoneOp::Close => "close",
            ZoneOp::Finish => "finish",
            ZoneOp::Reset => "reset",
        }
    }

    /// The Linux ioctl that carries it.
    pub fn ioctl_name(self) -> &'static str {
        match self {
            ZoneOp::Open => "BLKOPENZONE",
            ZoneOp::Close => "BLKCLOSEZONE",
            ZoneOp::Finish => "BLKFINISHZONE",
            ZoneOp::Reset => "BLKRESETZONE",
        }
    }
}
