//! `raw`: the passthrough format driver, optionally a window
//! (`offset=`, `size=`) onto its child. Offsets are translated; everything
//! else is forwarded, zone operations included (a write as one vectored
//! request). Over a zoned child the window must start on a zone boundary
//! (and end on one, or at the end).

use std::io;
use std::sync::Arc;

use super::create::create_image;
use super::driver::{OnProgress, Prealloc};
use super::open::open_child;
use super::zone::{Zone, ZoneInfo, ZoneOp};
use super::zone_rules::{self, ZoneError};
use super::{BlockDriver, NodeInfo, OpenFlags, OptionMap, Role, WriteFlags, strerror};

pub struct RawNode {
    child: Arc<dyn BlockDriver>,
    offset: u64,
    /// Fixed window size; `None` follows the child's length.
    size: Option<u64>,
}

/// `driver=raw[,offset=N][,size=N],file.*=...`.
pub fn open(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let offset = opts.take_size("offset")?.unwrap_or(0);
    let size = opts.take_size("size")?;
    let child = open_child(opts, "file", flags)?;
    let child_len = child.length().map_err(|e| e.to_string())?;
    if let Some(size) = size {
        if size % 512 != 0 {
            return Err("Specified size is not multiple of 512".into());
        }
        if offset.checked_add(size).is_none_or(|end| end > child_len) {
            return Err(format!(
                "The sum of offset ({offset}) and size ({size}) has to be smaller or equal to the  actual size of the containing file ({child_len})"
            ));
        }
    } else if offset > child_len {
        return Err(format!(
            "Offset ({offset}) cannot be greater than size of the containing file ({child_len})"
        ));
    }
    if let Some(zi) = child.zone_info() {
        let end = size.map_or(child_len, |s| offset + s);
        if !offset.is_multiple_of(zi.zone_size)
            || (end != child_len && !end.is_multiple_of(zi.zone_size))
        {
            return Err(format!(
                "A window (offset {offset}, end {end}) over a zoned device must start and end on zone boundaries (zone size {})",
                zi.zone_size
            ));
        }
    }
    Ok(Arc::new(RawNode {
        child,
        offset,
        size,
    }))
}

/// A plain raw node over `child` (what probing an image gives; a probed
/// image takes no raw options).
pub(crate) fn open_over(
    child: Arc<dyn BlockDriver>,
    _opts: &mut OptionMap,
    _flags: &OpenFlags,
) -> Result<Arc<dyn BlockDriver>, String> {
    Ok(Arc::new(RawNode {
        child,
        offset: 0,
        size: None,
    }))
}

/// The create hook: an empty (sparse) raw image of `size` bytes.
pub(crate) fn create(path: &str, size: u64, opts: &mut OptionMap) -> Result<String, String> {
    opts.finish("format", "raw")?;
    create_image(path, |f| f.set_len(size).map_err(|e| strerror(&e)))?;
    Ok(format!(" size={size}"))
}

impl BlockDriver for RawNode {
    fn driver_name(&self) -> &'static str {
        "raw"
    }

    fn role(&self) -> Role {
        Role::Format
    }

    fn child(&self) -> Option<&Arc<dyn BlockDriver>> {
        Some(&self.child)
    }

    fn length(&self) -> io::Result<u64> {
        match self.size {
            Some(s) => Ok(s),
            None => Ok(self.child.length()?.saturating_sub(self.offset)),
        }
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.child.read(self.offset + offset, buf)
    }

    /// The child's answer, as QEMU's raw passes block status down.
    fn allocation(&self, offset: u64, len: u64) -> io::Result<(bool, u64)> {
        self.child.allocation(self.offset + offset, len)
    }

    fn write(&self, offset: u64, buf: &[u8], flags: WriteFlags) -> io::Result<()> {
        self.child.write(self.offset + offset, buf, flags)
    }

    fn writev(
        &self,
        offset: u64,
        bufs: &[&[u8]],
        flags: WriteFlags,
        progress: OnProgress<'_>,
    ) -> io::Result<()> {
        self.child
            .writev(self.offset + offset, bufs, flags, progress)
    }

    fn write_zeroes(&self, offset: u64, len: u64, flags: WriteFlags) -> io::Result<()> {
        self.child.write_zeroes(self.offset + offset, len, flags)
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.child.discard(self.offset + offset, len)
    }

    fn flush(&self) -> io::Result<()> {
        self.child.flush()
    }

    fn truncate(&self, len: u64, prealloc: Prealloc) -> Result<(), String> {
        if self.size.is_some() {
            return Err("Cannot resize fixed-size raw disks".into());
        }
        let child_len = self.offset.checked_add(len).ok_or("Invalid length")?;
        self.child.truncate(child_len, prealloc)
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            format_names: vec!["raw".into()],
            // A child without block info (null-co, nbd) gives raw none.
            no_block_info: self.child.info().no_block_info,
            ..NodeInfo::default()
        }
    }

    fn zone_info(&self) -> Option<ZoneInfo> {
        let mut zi = self.child.zone_info()?;
        let len = self.length().ok()?;
        let first = self.offset / zi.zone_size;
        zi.nr_zones = len.div_ceil(zi.zone_size);
        zi.nr_conv = zi.nr_conv.saturating_sub(first).min(zi.nr_zones);
        Some(zi)
    }

    fn zone_report(&self, offset: u64, max: usize) -> io::Result<Vec<Zone>> {
        let end = self.length()?;
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut zones = self.child.zone_report(self.offset + offset, max)?;
        zones.retain(|z| z.start < self.offset + end);
        for z in &mut zones {
            z.start -= self.offset;
            z.wp -= self.offset;
        }
        Ok(zones)
    }

    /// The window is a zoned device of its own to the shell: the range is
    /// judged by [`zone_rules::check_mgmt`] on the window's geometry (its
    /// diagnostic lines name window sectors), then forwarded.
    fn zone_mgmt(&self, op: ZoneOp, offset: u64, len: u64) -> Result<(), ZoneError> {
        if let Some(zi) = self.zone_info() {
            zone_rules::check_mgmt(zi.zone_size, zi.nr_conv, self.length()?, offset, len)?;
        }
        self.child.zone_mgmt(op, self.offset + offset, len)
    }

    fn zone_append(&self, zone_start: u64, data: &[u8]) -> io::Result<u64> {
        Ok(self.child.zone_append(self.offset + zone_start, data)? - self.offset)
    }
}
