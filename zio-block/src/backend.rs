//! `BlockBackend`: the one API the shell's commands use.
//!
//! It owns the root node of a graph, checks every request once (range,
//! read-only) and streams large requests through a bounded, aligned buffer so
//! `write 0 1G` never holds 1 GiB in memory.

use std::io;
use std::sync::Arc;

use nix::errno::Errno;

use super::aligned::AlignedBuf;
use super::driver::ChainResult;
use super::zone::{Zone, ZoneInfo, ZoneOp};
use super::{BlockDriver, NodeInfo, WriteFlags, errno};

/// The largest single request, as QEMU's BDRV_REQUEST_MAX_BYTES.
pub const BDRV_REQUEST_MAX_BYTES: u64 = 2_147_483_136;

/// Streaming chunk: big enough for throughput, small enough to stay in cache.
const CHUNK: usize = 1 << 20;

/// What commands talk to: a root node plus the checks QEMU's BlockBackend
/// does before a request reaches any driver.
pub struct BlockBackend {
    root: Arc<dyn BlockDriver>,
    read_only: bool,
    name: String,
}

impl Drop for BlockBackend {
    /// Closing a writable backend flushes it, as QEMU's bdrv_close does
    /// (qemu-io's exit ends in an fdatasync of a written raw image).
    fn drop(&mut self) {
        if !self.read_only {
            let _ = self.root.flush();
        }
    }
}

impl BlockBackend {
    pub fn new(root: Arc<dyn BlockDriver>, read_only: bool, name: impl Into<String>) -> Self {
        BlockBackend {
            root,
            read_only,
            name: name.into(),
        }
    }

    /// The name the image was opened by (a path, or a description).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn root(&self) -> &Arc<dyn BlockDriver> {
        &self.root
    }

    pub fn length(&self) -> io::Result<u64> {
        self.root.length()
    }

    pub fn info(&self) -> NodeInfo {
        self.root.info()
    }

    /// Fails with EIO unless `[offset, offset + len)` lies inside the device,
    /// as QEMU's blk_check_byte_request does.
    pub fn check_request(&self, offset: u64, len: u64) -> io::Result<()> {
        let size = self.length()?;
        if offset > size || size - offset < len {
            return Err(errno(Errno::EIO));
        }
        Ok(())
    }

    fn check_write(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.read_only {
            return Err(errno(Errno::EROFS));
        }
        self.check_request(offset, len)
    }

    pub fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check_request(offset, buf.len() as u64)?;
        self.root.read(offset, buf)
    }

    /// Reads `len` bytes in bounded chunks, handing each to `each` with its
    /// device offset. Nothing is read unless the whole range is valid.
    pub fn read_each(
        &self,
        offset: u64,
        len: u64,
        mut each: impl FnMut(u64, &[u8]),
    ) -> io::Result<()> {
        self.check_request(offset, len)?;
        let mut buf = AlignedBuf::new(CHUNK.min(len as usize));
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            let chunk = &mut buf.as_mut_slice()[..n];
            self.root.read(offset + done, chunk)?;
            each(offset + done, chunk);
            done += n as u64;
        }
        Ok(())
    }

    pub fn write(&self, offset: u64, buf: &[u8], flags: WriteFlags) -> io::Result<()> {
        self.check_write(offset, buf.len() as u64)?;
        self.root.write(offset, buf, flags)
    }

    /// Writes `len` bytes of `byte` in bounded chunks.
    pub fn write_pattern(
        &self,
        offset: u64,
        len: u64,
        byte: u8,
        flags: WriteFlags,
    ) -> io::Result<()> {
        self.check_write(offset, len)?;
        let mut buf = AlignedBuf::new(CHUNK.min(len as usize));
        buf.as_mut_slice().fill(byte);
        // A zoned device takes one write as a chain of requests and judges
        // each on its own (a failed one does not stop the rest), so a
        // streamed write goes on after a failed chunk there, and reports
        // the last chunk's error if it failed, else the first one's, as
        // the kernel does. Anything else stops at the first error.
        let zoned = self.zone_info().is_some();
        let mut result = ChainResult::default();
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            let r = self.root.write(offset + done, &buf.as_slice()[..n], flags);
            done += n as u64;
            match r {
                Err(e) if !zoned => return Err(e),
                r => result.add(r),
            }
        }
        result.finish()
    }

    pub fn write_zeroes(&self, offset: u64, len: u64, flags: WriteFlags) -> io::Result<()> {
        self.check_write(offset, len)?;
        self.root.write_zeroes(offset, len, flags)
    }

    pub fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check_write(offset, len)?;
        self.root.discard(offset, len)
    }

    pub fn flush(&self) -> io::Result<()> {
        self.root.flush()
    }

    /// The zoned model and limits of the graph; `None` when not zoned.
    pub fn zone_info(&self) -> Option<ZoneInfo> {
        self.root.zone_info()
    }

    /// Up to `max` zones from the one holding `offset`; none at or past the
    /// end. ENOTSUP on a device that is not zoned.
    pub fn zone_report(&self, offset: u64, max: usize) -> io::Result<Vec<Zone>> {
        self.root.zone_report(offset, max)
    }

    /// Opens, closes, finishes or resets the zones of `[offset, offset +
    /// len)`. Checks in the order QEMU's host_device driver does, with its
    /// diagnostics: the range (EIO), zone alignment (EINVAL), a
    /// conventional first zone (EIO, unless the range is the whole device),
    /// then the device's own answer.
    pub fn zone_mgmt(&self, op: ZoneOp, offset: u64, len: u64) -> Result<(), ZoneError> {
        self.check_write(offset, len).map_err(ZoneError::plain)?;
        let Some(info) = self.zone_info() else {
            return Err(ZoneError::plain(errno(Errno::ENOTSUP)));
        };
        let size = self.length().map_err(ZoneError::plain)?;
        let zs = info.zone_size;
        if !offset.is_multiple_of(zs) {
            return Err(ZoneError::diag(
                Errno::EINVAL,
                format!(
                    "sector offset {} is not aligned to zone size {}",
                    offset / 512,
                    zs / 512
                ),
            ));
        }
        if offset + len < size && !len.is_multiple_of(zs) {
            return Err(ZoneError::diag(
                Errno::EINVAL,
                format!(
                    "number of sectors {} is not aligned to zone size {}",
                    len / 512,
                    zs / 512
                ),
            ));
        }
        if len != size && offset / zs < info.nr_conv {
            return Err(ZoneError::diag(
                Errno::EIO,
                "zone mgmt operations are not allowed for conventional zones".into(),
            ));
        }
        self.root.zone_mgmt(op, offset, len).map_err(|e| {
            let code = e.raw_os_error().unwrap_or(libc::EIO);
            ZoneError {
                diag: Some(format!("ioctl {} failed -{code}", op.ioctl_name())),
                error: e,
            }
        })
    }

    /// Appends `data` at the write pointer of the zone starting at
    /// `zone_start`; returns the byte position it landed at.
    pub fn zone_append(&self, zone_start: u64, data: &[u8]) -> io::Result<u64> {
        self.check_write(zone_start, data.len() as u64)?;
        self.root.zone_append(zone_start, data)
    }
}

/// A failed zone management request: the error, and the diagnostic line
/// the driver reports first (as QEMU's host_device driver does).
#[derive(Debug)]
pub struct ZoneError {
    pub error: io::Error,
    pub diag: Option<String>,
}

impl ZoneError {
    fn plain(error: io::Error) -> Self {
        ZoneError { error, diag: None }
    }

    fn diag(e: Errno, diag: String) -> Self {
        ZoneError {
            error: errno(e),
            diag: Some(diag),
        }
    }
}
