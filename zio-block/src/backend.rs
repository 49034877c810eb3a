//! `BlockBackend`: the one API the shell's commands use.
//!
//! It owns the root node of a graph and checks every request once (range,
//! read-only). A write command is ONE request to the root node, as qemu-io
//! sends it; a pattern write is built as a vectored request over one
//! bounded, aligned pattern buffer repeated (so `write 0 1G` never holds
//! 1 GiB in memory), and its progress comes back from the driver doing
//! it. Where a zoned device cuts a request and how it chains the errors is
//! the device's business (the kernel's, or the emulation's), not the
//! backend's. Large reads are still read in bounded chunks.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;

use super::aligned::AlignedBuf;
use super::breakpoints::Breakpoints;
use super::driver::OnProgress;
use super::zone::{Zone, ZoneInfo, ZoneOp};
use super::zone_rules::ZoneError;
use super::{BlockDriver, NodeInfo, Prealloc, WriteFlags, errno, strerror};

/// The largest single request, as QEMU's BDRV_REQUEST_MAX_BYTES.
pub const BDRV_REQUEST_MAX_BYTES: u64 = 2_147_483_136;

/// Read streaming chunk: big enough for throughput, small enough to stay
/// in cache.
const CHUNK: usize = 1 << 20;

/// The pattern buffer a pattern write repeats in its iovec: 2 MiB, so the
/// largest request (BDRV_REQUEST_MAX_BYTES) takes at most 1024 entries,
/// Linux's IOV_MAX, and one `pwritev` carries it.
pub const PATTERN_BUF: usize = 2 << 20;

/// What commands talk to: a root node plus the checks QEMU's BlockBackend
/// does before a request reaches any driver. Clones share the graph (an
/// aio request runs on its own clone, in its own thread); the graph is
/// flushed and closed when the last clone goes.
#[derive(Clone)]
pub struct BlockBackend {
    root: Arc<dyn BlockDriver>,
    read_only: bool,
    name: Arc<str>,
    _closer: Arc<Closer>,
}

/// Flushes a writable graph when the last backend sharing it goes.
struct Closer {
    root: Arc<dyn BlockDriver>,
    read_only: bool,
}

impl Drop for Closer {
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
        let name: String = name.into();
        BlockBackend {
            _closer: Arc::new(Closer {
                root: root.clone(),
                read_only,
            }),
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

    /// The device's length in bytes, rounded up to a whole 512-byte sector
    /// as QEMU's block layer counts it (`total_sectors`): a 320-byte file
    /// is 512 bytes long, and the bytes past its end read as zeros (a write
    /// there extends the file).
    pub fn length(&self) -> io::Result<u64> {
        let n = self.root.length()?;
        Ok(n.checked_next_multiple_of(512).unwrap_or(n))
    }

    /// Sets the device's length (qemu-io's `truncate`); the error is QEMU's
    /// message.
    pub fn truncate(&self, len: u64, prealloc: Prealloc) -> Result<(), String> {
        if self.read_only {
            return Err("Block node is read-only".into());
        }
        let old = self.root.length().map_err(|e| strerror(&e))?;
        if prealloc != Prealloc::Off && len < old {
            return Err("Cannot use preallocation for shrinking files".into());
        }
        self.root.truncate(len, prealloc)
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

    /// Writes `len` bytes of `byte` as one request (see
    /// [`write_pattern_vectored`](Self::write_pattern_vectored)).
    pub fn write_pattern(
        &self,
        offset: u64,
        len: u64,
        byte: u8,
        flags: WriteFlags,
        progress: OnProgress<'_>,
    ) -> io::Result<()> {
        self.write_pattern_vectored(offset, &[len], byte, flags, progress)
    }

    /// Writes buffers of `lens` bytes, each filled with `byte`, one after
    /// the other from `offset`, as ONE vectored request to the root node
    /// (qemu-io's writev), built from one [`PATTERN_BUF`]-sized aligned
    /// buffer repeated. `progress` hears of the bytes done as the driver
    /// does them.
    pub fn write_pattern_vectored(
        &self,
        offset: u64,
        lens: &[u64],
        byte: u8,
        flags: WriteFlags,
        progress: OnProgress<'_>,
    ) -> io::Result<()> {
        let total = lens.iter().try_fold(0u64, |a, &n| a.checked_add(n));
        let total = total.ok_or_else(|| errno(Errno::EINVAL))?;
        self.check_write(offset, total)?;
        let biggest = lens.iter().copied().max().unwrap_or(0);
        // Aligned to its own size: where transparent huge pages are on, the
        // kernel can then map the buffer as one page, and builds its bios
        // from a few large segments, as from qemu-io's one big buffer.
        let n = biggest.min(PATTERN_BUF as u64) as usize;
        let mut buf = AlignedBuf::with_alignment(n, n);
        buf.as_mut_slice().fill(byte);
        let pattern = buf.as_slice();
        let mut iov: Vec<&[u8]> = Vec::new();
        for &n in lens {
            let mut left = n;
            while left > 0 {
                let k = left.min(PATTERN_BUF as u64);
                iov.push(&pattern[..k as usize]);
                left -= k;
            }
        }
        self.root.writev(offset, &iov, flags, progress)
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

    /// Whether the range starts allocated and for how many bytes that
    /// holds (see [`BlockDriver::allocation`]); the range must be inside.
    pub fn allocation(&self, offset: u64, len: u64) -> io::Result<(bool, u64)> {
        self.check_request(offset, len)?;
        let (allocated, n) = self.root.allocation(offset, len)?;
        Ok((allocated, n.min(len)))
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
    /// len)`. The backend checks the range (EIO) and read-only; the rest
    /// (zone alignment, conventional zones, the device's answer, and the
    /// diagnostic line of each) is the zoned driver's, see
    /// [`zone_rules::check_mgmt`](super::zone_rules::check_mgmt).
    pub fn zone_mgmt(&self, op: ZoneOp, offset: u64, len: u64) -> Result<(), ZoneError> {
        self.check_write(offset, len)?;
        self.root.zone_mgmt(op, offset, len)
    }

    /// The first node from the root down with breakpoints (a blkdebug
    /// node), as QEMU's `bdrv_find_debug_node`.
    fn breakpoints(&self) -> Option<&Breakpoints> {
        let mut node = &self.root;
        loop {
            if let Some(bp) = node.breakpoints() {
                return Some(bp);
            }
            node = node.child()?;
        }
    }

    fn no_breakpoints() -> io::Error {
        errno(Errno::ENOTSUP)
    }

    /// Arms a one-shot breakpoint at blkdebug event `event` (QEMU's names)
    /// that suspends the next request reaching it as `tag`. ENOENT for an
    /// unknown event, ENOTSUP without a blkdebug node.
    pub fn debug_breakpoint(&self, event: &str, tag: &str) -> io::Result<()> {
        self.breakpoints()
            .ok_or_else(Self::no_breakpoints)?
            .set(event, tag)
    }

    /// Disarms the breakpoints of `tag` and resumes every request suspended
    /// as `tag`: how many were resumed, and ENOENT unless a breakpoint was
    /// disarmed (QEMU's answer); ENOTSUP without a blkdebug node.
    pub fn debug_remove_breakpoint(&self, tag: &str) -> (usize, io::Result<()>) {
        match self.breakpoints() {
            Some(bp) => bp.remove(tag),
            None => (0, Err(Self::no_breakpoints())),
        }
    }

    /// Resumes the request most recently suspended as `tag`; ENOENT if none,
    /// ENOTSUP without a blkdebug node.
    pub fn debug_resume(&self, tag: &str) -> io::Result<()> {
        self.breakpoints()
            .ok_or_else(Self::no_breakpoints)?
            .resume(tag)
    }

    /// Resumes every suspended request; the tags resumed.
    pub fn debug_resume_all(&self) -> Vec<String> {
        self.breakpoints()
            .map(|bp| bp.resume_all())
            .unwrap_or_default()
    }

    /// Disarms every breakpoint.
    pub fn debug_disarm_all(&self) {
        if let Some(bp) = self.breakpoints() {
            bp.disarm_all();
        }
    }

    /// The image has a blkdebug node (breakpoints may stop its requests).
    pub fn has_debug_node(&self) -> bool {
        self.breakpoints().is_some()
    }

    /// A request is suspended as `tag`.
    pub fn debug_is_suspended(&self, tag: &str) -> bool {
        self.breakpoints().is_some_and(|bp| bp.is_suspended(tag))
    }

    /// Requests stopped in the graph: suspended at a breakpoint, or waiting
    /// for an overlapping request.
    pub fn debug_parked(&self) -> usize {
        self.breakpoints().map_or(0, |bp| bp.parked())
    }

    /// When the last request this thread made ended at a blkdebug node,
    /// before the requests waiting for it went on (so a report can be
    /// ordered before theirs); cleared.
    pub fn debug_take_request_end() -> Option<Instant> {
        super::breakpoints::take_request_end()
    }

    /// The tags requests were suspended as since the last call, with when.
    pub fn debug_take_suspensions(&self) -> Vec<(Instant, String)> {
        self.breakpoints()
            .map(|bp| bp.take_suspensions())
            .unwrap_or_default()
    }

    /// Appends `data` at the write pointer of the zone starting at
    /// `zone_start`; returns the byte position it landed at.
    pub fn zone_append(&self, zone_start: u64, data: &[u8]) -> io::Result<u64> {
        self.check_write(zone_start, data.len() as u64)?;
        self.root.zone_append(zone_start, data)
    }
}
