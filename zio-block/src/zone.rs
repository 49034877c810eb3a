//! The zone API that travels through the node graph: the device model, its
//! limits, zone descriptors and operations. Everything is in bytes; the
//! shell prints 512-byte sectors as qemu-io does.

pub use super::zone_rules::{Zone, ZoneCond, ZoneOp, ZoneType};

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
