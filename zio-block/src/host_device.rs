//! `host_device`: the protocol driver for block devices (/dev/nullb0,
//! /dev/nvme0n1, ...), zoned or not.
//!
//! Reads and writes go through the I/O core of `file`. Every writable open
//! is O_EXCL, zoned or not, so a mounted device or one another program
//! holds exclusively is refused (EBUSY) rather than written under it;
//! read-only opens are shared. For a zoned device this module reads the
//! model and limits from sysfs, opens it O_DIRECT (unaligned requests
//! bounced at the logical block size), reports and manages zones with the
//! Linux zone ioctls, and emulates zone append as a write at the write
//! pointer under a per-zone lock, with the write pointer read from the
//! device for every append. A write command reaches the device as one
//! `pwritev` (when aligned to the logical block size; an unaligned one is
//! bounced buffer by buffer), which the kernel cuts and judges. The zone rules it applies
//! itself (management alignment and conventional zones, where an append
//! lands) are asked of `zone_rules`; a failed management command carries
//! the diagnostic line QEMU's host_device driver prints. Errors keep the
//! kernel's errno. The ioctl calls are the only `unsafe` code in zio.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::{Arc, Mutex, OnceLock};

use nix::errno::Errno;

use super::driver::{OnProgress, Prealloc};
use super::file::{FileNode, Kind, take_locking};
use super::zone::{KernelSeries, Zone, ZoneCond, ZoneInfo, ZoneModel, ZoneOp, ZoneType};
use super::zone_rules::{self, Device, ZoneError};
use super::{BlockDriver, NodeInfo, OpenFlags, OptionMap, Role, WriteFlags, errno};

/// `struct blk_zone_report` (linux/blkzoned.h): the header before the zones.
#[repr(C)]
pub struct BlkZoneReport {
    sector: u64,
    nr_zones: u32,
    flags: u32,
}

/// `struct blk_zone_range`.
#[repr(C)]
pub struct BlkZoneRange {
    sector: u64,
    nr_sectors: u64,
}

nix::ioctl_readwrite!(blk_report_zone, 0x12, 130, BlkZoneReport);
nix::ioctl_write_ptr!(blk_reset_zone, 0x12, 131, BlkZoneRange);
nix::ioctl_write_ptr!(blk_open_zone, 0x12, 134, BlkZoneRange);
nix::ioctl_write_ptr!(blk_close_zone, 0x12, 135, BlkZoneRange);
nix::ioctl_write_ptr!(blk_finish_zone, 0x12, 136, BlkZoneRange);

/// Size of `struct blk_zone` and of the report header.
const ZONE_DESC: usize = 64;
const REPORT_HDR: usize = 16;
/// BLK_ZONE_REP_CAPACITY: the capacity field is valid.
const REP_CAPACITY: u32 = 1;
/// Zones asked for per BLKREPORTZONE call.
const REPORT_BATCH: usize = 4096;

/// What zoned devices add to the node.
struct Zoned {
    info: ZoneInfo,
    /// Serialises appends per zone.
    append_locks: Vec<Mutex<()>>,
}

pub struct HostDevice {
    io: FileNode,
    /// `Some` for a zoned device: its sysfs queue directory. The model,
    /// limits and append locks are read on first use, so a command that
    /// only reports zones costs no more than its ioctl.
    queue: Option<Queue>,
    lbs: u64,
    zoned: OnceLock<Result<Zoned, i32>>,
}

/// `driver=host_device,filename=/dev/...`.
pub fn open(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    open_named(opts, flags, "host_device")
}

/// `driver=host_cdrom`: QEMU's CD-ROM driver, here host_device under that
/// name (zio does no CD-ROM media handling).
pub fn open_cdrom(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    open_named(opts, flags, "host_cdrom")
}

fn open_named(
    opts: &mut OptionMap,
    flags: &OpenFlags,
    driver: &'static str,
) -> Result<Arc<dyn BlockDriver>, String> {
    let path = opts
        .take("filename")
        .ok_or_else(|| format!("The '{driver}' driver needs the option 'filename'"))?;
    let lock = take_locking(opts)?;
    let meta = std::fs::metadata(&path)
        .map_err(|e| format!("Could not open '{path}': {}", super::strerror(&e)))?;
    // A character device (QEMU takes those too) has no zones.
    let queue = Queue::of(meta.rdev());
    let zoned = meta.file_type().is_block_device()
        && queue.read("zoned").is_some_and(|m| m == "host-managed");
    let mut flags = *flags;
    // A zoned device must be written O_DIRECT: through the page cache the
    // writes reach it late and out of order.
    flags.nocache |= zoned;
    // Every writable open of a block device is O_EXCL: one that is mounted
    // (or opened O_EXCL by another program, another zio included) is
    // refused with EBUSY instead of being written under its owner.
    let mut io = FileNode::open_path(&path, &flags, driver, Kind::Device, lock)?;
    let lbs = queue.num("logical_block_size").unwrap_or(512);
    io.set_alignment(lbs);
    let node = HostDevice {
        io,
        queue: zoned.then_some(queue),
        lbs,
        zoned: OnceLock::new(),
    };
    if zoned {
        // QEMU's file-posix reads every zone's write pointer when it opens
        // a zoned device; on Linux 6.12 that report also clears the block
        // layer's "refresh the write pointer" state of every zone, so a
        // zone a write failed in earlier takes writes again, as under
        // qemu-io. A failure here is the first command's to report.
        node.report_all();
    }
    Ok(Arc::new(node))
}

/// A device's sysfs queue directory.
struct Queue(std::path::PathBuf);

impl Queue {
    fn of(rdev: u64) -> Queue {
        let (maj, min) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
        Queue(format!("/sys/dev/block/{maj}:{min}/queue").into())
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn num(&self, name: &str) -> Option<u64> {
        self.read(name)?.parse().ok()
    }

    /// The device family, by the kernel's name of the disk (its uevent's
    /// DEVNAME): nullbN is null_blk, nvmeXnY an NVMe namespace, sdX a SCSI
    /// disk.
    fn family(&self) -> &'static str {
        let uevent = self.0.parent().map(|d| d.join("uevent"));
        let name = uevent
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|u| {
                u.lines()
                    .find_map(|l| l.strip_prefix("DEVNAME=").map(str::to_string))
            })
            .unwrap_or_default();
        let family = [
            ("nullb", Device::NullBlk),
            ("nvme", Device::NvmeZns),
            ("sd", Device::ScsiZbc),
        ]
        .into_iter()
        .find(|(prefix, _)| name.starts_with(prefix));
        family.map_or("other", |(_, d)| d.name())
    }
}

/// Decodes one `struct blk_zone` from its eight 64-bit words (the report
/// buffer is read in place, in native byte order).
fn decode_zone(w: &[u64], has_capacity: bool) -> Zone {
    let (start, len) = (w[0] << 9, w[1] << 9);
    // Bytes 24 and 25 of the struct: type and condition.
    let tail = w[3].to_ne_bytes();
    let ztype = ZoneType::from_u8(tail[0]).unwrap_or(ZoneType::SeqWriteRequired);
    let cond = ZoneCond::from_u8(tail[1]).unwrap_or(ZoneCond::Offline);
    let cap = if has_capacity { w[4] << 9 } else { len };
    // The write pointer of a conventional, read-only or offline zone means
    // nothing (ZBC and ZNS call it invalid; null_blk reports all ones for
    // the last two). An all-ones one of a conventional zone (a SCSI disk's)
    // is passed on, as qemu-io prints it; otherwise the zone's end, as
    // zio's own devices report it.
    let wp = if ztype == ZoneType::Conventional && w[2] == u64::MAX {
        Zone::INVALID_WP
    } else if ztype == ZoneType::Conventional
        || matches!(cond, ZoneCond::ReadOnly | ZoneCond::Offline)
    {
        start + len
    } else {
        w[2] << 9
    };
    Zone {
        start,
        len,
        cap,
        wp,
        ztype,
        cond,
    }
}

impl HostDevice {
    /// BLKREPORTZONE: up to `max` zones from the one holding `offset`.
    fn report_zones(&self, offset: u64, max: usize) -> io::Result<Vec<Zone>> {
        let mut zones = Vec::new();
        let mut sector = offset >> 9;
        let size = self.io.length()?;
        while zones.len() < max && (sector << 9) < size {
            let want = (max - zones.len()).min(REPORT_BATCH);
            // u64 words keep the buffer aligned for the header's fields.
            let mut buf = vec![0u64; (REPORT_HDR + want * ZONE_DESC) / 8];
            let hdr = buf.as_mut_ptr().cast::<BlkZoneReport>();
            // SAFETY: `buf` is 8-byte aligned and large enough for the
            // header and `want` zone descriptors, which is what the kernel
            // may write, as the header's nr_zones tells it.
            let got = unsafe {
                (*hdr).sector = sector;
                (*hdr).nr_zones = want as u32;
                (*hdr).flags = 0;
                blk_report_zone(self.io.file().as_raw_fd(), hdr).map_err(errno)?;
                ((*hdr).nr_zones as usize, (*hdr).flags)
            };
            let (n, flags) = got;
            if n == 0 {
                break;
            }
            const WORDS: usize = ZONE_DESC / 8;
            for k in 0..n.min(want) {
                let at = REPORT_HDR / 8 + k * WORDS;
                zones.push(decode_zone(&buf[at..at + WORDS], flags & REP_CAPACITY != 0));
            }
            let last = zones.last().map(|z| z.start + z.len).unwrap_or(size);
            sector = last >> 9;
        }
        Ok(zones)
    }

    /// The model and limits, from sysfs and the first zones: the
    /// conventional zones (which come first, as on null_blk and SMR
    /// drives) and the capacity of the first sequential zone. Opening
    /// does not read every zone.
    fn probe_zones(&self, q: &Queue, lbs: u64) -> io::Result<ZoneInfo> {
        const PROBE: usize = 64;
        let zone_size = q.num("chunk_sectors").unwrap_or(0) << 9;
        let size = self.io.length()?;
        let mut nr_conv = 0;
        let mut capacity = None;
        let mut offset = 0;
        while capacity.is_none() && offset < size {
            let zones = self.report_zones(offset, PROBE)?;
            let Some(last) = zones.last() else { break };
            offset = last.start + last.len;
            for z in &zones {
                if z.ztype == ZoneType::Conventional {
                    nr_conv += 1;
                } else {
                    capacity = Some(z.cap);
                    break;
                }
            }
        }
        Ok(ZoneInfo {
            model: ZoneModel::HostManaged,
            zone_size,
            zone_capacity: capacity.unwrap_or(zone_size),
            nr_zones: q
                .num("nr_zones")
                .unwrap_or_else(|| size.div_ceil(zone_size.max(1))),
            nr_conv,
            max_open: q.num("max_open_zones").unwrap_or(0),
            max_active: q.num("max_active_zones").unwrap_or(0),
            max_append: q.num("zone_append_max_bytes").unwrap_or(0),
            write_granularity: q.num("zone_write_granularity").unwrap_or(lbs),
            kernel: KernelSeries::running().unwrap_or(KernelSeries { major: 0, minor: 0 }),
            device: q.family(),
        })
    }

    /// The zoned part, probed on first use; ENOTSUP for a regular device.
    /// Reports every zone, in batches, for the side effect on the block
    /// layer (see `open`); errors are ignored.
    fn report_all(&self) {
        let Ok(len) = self.io.length() else { return };
        let mut at = 0;
        while at < len {
            match self.zone_report(at, 65536) {
                Ok(zones) => match zones.last() {
                    Some(z) => at = z.start + z.len,
                    None => break,
                },
                Err(_) => break,
            }
        }
    }

    /// After a failed write to a zoned device, re-reads the zone at the
    /// write's offset as QEMU's file-posix does (`update_zones_wp`): on
    /// Linux 6.12 that report is what makes the block layer take writes to
    /// the zone again, so zio's next write fares as qemu-io's would.
    fn after_write(&self, offset: u64, r: io::Result<()>) -> io::Result<()> {
        if r.is_err() && self.queue.is_some() {
            let _ = self.zone_report(offset, 1);
        }
        r
    }

    fn zoned(&self) -> io::Result<&Zoned> {
        let Some(queue) = &self.queue else {
            return Err(errno(Errno::ENOTSUP));
        };
        let z = self.zoned.get_or_init(|| {
            let info = self
                .probe_zones(queue, self.lbs)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
            Ok(Zoned {
                append_locks: (0..info.nr_zones).map(|_| Mutex::new(())).collect(),
                info,
            })
        });
        z.as_ref()
            .map_err(|&code| io::Error::from_raw_os_error(code))
    }
}

impl BlockDriver for HostDevice {
    fn driver_name(&self) -> &'static str {
        self.io.driver_name()
    }

    fn role(&self) -> Role {
        Role::Protocol
    }

    fn length(&self) -> io::Result<u64> {
        self.io.length()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.io.read(offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8], flags: WriteFlags) -> io::Result<()> {
        self.after_write(offset, self.io.write(offset, buf, flags))
    }

    fn writev(
        &self,
        offset: u64,
        bufs: &[&[u8]],
        flags: WriteFlags,
        progress: OnProgress<'_>,
    ) -> io::Result<()> {
        self.after_write(offset, self.io.writev(offset, bufs, flags, progress))
    }

    fn write_zeroes(&self, offset: u64, len: u64, flags: WriteFlags) -> io::Result<()> {
        if self.queue.is_some() {
            // Zeroes on a zoned device are data written at the write pointer.
            return super::driver::write_zeroes_by_writing(self, offset, len, flags);
        }
        self.io.write_zeroes(offset, len, flags)
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.queue.is_some() {
            return Ok(());
        }
        self.io.discard(offset, len)
    }

    fn flush(&self) -> io::Result<()> {
        self.io.flush()
    }

    fn truncate(&self, len: u64, prealloc: Prealloc) -> Result<(), String> {
        self.io.truncate(len, prealloc)
    }

    fn info(&self) -> NodeInfo {
        self.io.info()
    }

    fn zone_info(&self) -> Option<ZoneInfo> {
        self.zoned().ok().map(|z| z.info)
    }

    fn zone_report(&self, offset: u64, max: usize) -> io::Result<Vec<Zone>> {
        self.zoned()?;
        self.report_zones(offset, max)
    }

    /// As QEMU's host_device (`raw_co_zone_mgmt`): the range checks of
    /// [`zone_rules::check_mgmt`] with their lines, then the ioctl, whose
    /// failure prints `ioctl BLKxxxZONE failed -ERRNO`.
    fn zone_mgmt(&self, op: ZoneOp, offset: u64, len: u64) -> Result<(), ZoneError> {
        let info = self.zoned()?.info;
        let size = self.io.length()?;
        zone_rules::check_mgmt(info.zone_size, info.nr_conv, size, offset, len)?;
        let range = BlkZoneRange {
            sector: offset >> 9,
            nr_sectors: len >> 9,
        };
        let fd = self.io.file().as_raw_fd();
        // SAFETY: the kernel only reads the range struct passed by pointer.
        let r = unsafe {
            match op {
                ZoneOp::Open => blk_open_zone(fd, &range),
                ZoneOp::Close => blk_close_zone(fd, &range),
                ZoneOp::Finish => blk_finish_zone(fd, &range),
                ZoneOp::Reset => blk_reset_zone(fd, &range),
            }
        };
        r.map(|_| ())
            .map_err(|e| ZoneError::ioctl_failed(op, errno(e)))
    }

    /// Zone append for user space: a write at the write pointer, read from
    /// the device under the zone's lock for every append, so a failure
    /// never leaves a stale position behind. Where it lands (and whether it
    /// may: not past the capacity, not to a full zone, EIO as the kernel's
    /// zone append would) is [`zone_rules::append_position`]'s answer for
    /// the zone as the device reports it.
    fn zone_append(&self, zone_start: u64, data: &[u8]) -> io::Result<u64> {
        let z = self.zoned()?;
        let zs = z.info.zone_size;
        if zs == 0 || !zone_start.is_multiple_of(zs) {
            return Err(errno(Errno::EIO));
        }
        let idx = (zone_start / zs) as usize;
        let lock = z.append_locks.get(idx).ok_or_else(|| errno(Errno::EIO))?;
        let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
        let zone = *self
            .report_zones(zone_start, 1)?
            .first()
            .ok_or_else(|| errno(Errno::EIO))?;
        let lbs = z.info.write_granularity.max(512);
        let padded = (data.len() as u64).div_ceil(lbs) * lbs;
        let pos = zone_rules::append_position(&zone, zone_start, padded)?;
        self.io.write(pos, data, WriteFlags::default())?;
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_request_codes_match_linux() {
        assert_eq!(std::mem::size_of::<BlkZoneReport>(), REPORT_HDR);
        assert_eq!(std::mem::size_of::<BlkZoneRange>(), 16);
        assert_eq!(
            nix::request_code_readwrite!(0x12, 130, REPORT_HDR),
            0xC010_1282
        );
        assert_eq!(nix::request_code_write!(0x12, 131, 16), 0x4010_1283);
        assert_eq!(nix::request_code_write!(0x12, 134, 16), 0x4010_1286);
        assert_eq!(nix::request_code_write!(0x12, 135, 16), 0x4010_1287);
        assert_eq!(nix::request_code_write!(0x12, 136, 16), 0x4010_1288);
    }

    /// A `struct blk_zone` as the kernel lays it out, as words.
    fn words(bytes: &[u8; ZONE_DESC]) -> Vec<u64> {
        bytes
            .chunks(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn zone_descriptors_decode() {
        let mut d = [0u8; ZONE_DESC];
        d[0..8].copy_from_slice(&0x80000u64.to_ne_bytes());
        d[8..16].copy_from_slice(&0x80000u64.to_ne_bytes());
        d[16..24].copy_from_slice(&0x80018u64.to_ne_bytes());
        d[24] = 2;
        d[25] = 2;
        d[32..40].copy_from_slice(&0x60000u64.to_ne_bytes());
        let z = decode_zone(&words(&d), true);
        assert_eq!(
            (z.start, z.len, z.cap, z.wp),
            (0x80000 << 9, 0x80000 << 9, 0x60000 << 9, 0x80018 << 9)
        );
        assert_eq!(
            (z.ztype, z.cond),
            (ZoneType::SeqWriteRequired, ZoneCond::ImplicitOpen)
        );
        assert_eq!(decode_zone(&words(&d), false).cap, 0x80000 << 9);
        d[24] = 1;
        d[25] = 0;
        let c = decode_zone(&words(&d), true);
        assert_eq!((c.wp, c.cond), (0x100000 << 9, ZoneCond::NotWp));
        // null_blk's read-only and offline zones: wp (sector_t)-1.
        d[16..24].copy_from_slice(&u64::MAX.to_ne_bytes());
        d[24] = 2;
        for (cond, want) in [(13, ZoneCond::ReadOnly), (15, ZoneCond::Offline)] {
            d[25] = cond;
            let f = decode_zone(&words(&d), true);
            assert_eq!((f.wp, f.cond), (0x100000 << 9, want));
        }
    }
}
