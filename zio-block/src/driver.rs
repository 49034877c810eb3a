//! The node interface every driver implements.
//!
//! Shaped like QEMU's `BlockDriver` table: every operation has a default, so a
//! driver implements what it supports and the rest answers "not supported".
//! All methods take `&self`; drivers keep their own interior locking so one
//! node can serve requests from several threads.

use std::io;
use std::sync::Arc;

use nix::errno::Errno;

use super::breakpoints::Breakpoints;
use super::errno;
use super::zone::{Zone, ZoneInfo, ZoneOp};
use super::zone_rules::ZoneError;

/// Told how many more bytes of a request are done, as a driver gets them
/// done (so a long request can move a progress bar while it runs).
pub type OnProgress<'a> = &'a dyn Fn(u64);

/// What a node does in the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Owns the bytes: a file, a device, memory.
    Protocol,
    /// Translates requests to its child (`raw`, later `zoned`).
    Format,
    /// Forwards requests to its child with a policy (`throttle`).
    Filter,
}

/// Per-request write modifiers (qemu-io's `-f`, `-u`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteFlags {
    /// Force unit access: the data is durable when the write returns.
    pub fua: bool,
    /// With write-zeroes: the range may be deallocated.
    pub may_unmap: bool,
    /// With write-zeroes: fail with ENOTSUP rather than write zero buffers.
    pub no_fallback: bool,
}

/// What `info` prints about a node, as qemu-io's `info` does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `format name:` lines (a protocol driver prints its name twice in
    /// qemu-io: once as format, once as protocol).
    pub format_names: Vec<String>,
    pub cluster_size: u64,
    pub vm_state_offset: u64,
    /// The driver has no such information at all (QEMU's null-co has no
    /// `bdrv_get_info`): qemu-io prints the format names only.
    pub no_block_info: bool,
}

/// How `truncate` provides a grown range (QEMU's `PreallocMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prealloc {
    /// Sparse: nothing allocated.
    Off,
    /// Metadata only (no zio driver supports it, as QEMU's file-posix).
    Metadata,
    /// Allocated with fallocate.
    Falloc,
    /// Allocated by writing zeros.
    Full,
}

impl Prealloc {
    /// As qemu-io's `truncate -m` names it.
    pub fn parse(s: &str) -> Option<Prealloc> {
        match s {
            "off" => Some(Prealloc::Off),
            "metadata" => Some(Prealloc::Metadata),
            "falloc" => Some(Prealloc::Falloc),
            "full" => Some(Prealloc::Full),
            _ => None,
        }
    }
}

/// A node of the block graph.
pub trait BlockDriver: Send + Sync {
    /// The driver's name as written in `driver=`.
    fn driver_name(&self) -> &'static str;

    fn role(&self) -> Role;

    /// The child this node forwards to (formats and filters).
    fn child(&self) -> Option<&Arc<dyn BlockDriver>> {
        None
    }

    /// Size in bytes.
    fn length(&self) -> io::Result<u64>;

    fn read(&self, _offset: u64, _buf: &mut [u8]) -> io::Result<()> {
        Err(errno(Errno::ENOTSUP))
    }

    fn write(&self, _offset: u64, _buf: &[u8], _flags: WriteFlags) -> io::Result<()> {
        Err(errno(Errno::ENOTSUP))
    }

    /// Writes the concatenation of `bufs` at `offset` as ONE request (a
    /// vectored write: the same slice may appear many times), calling
    /// `progress` with the bytes done as it goes. Drivers that pass
    /// requests on (formats, filters) forward it whole; devices issue it
    /// as one request (`pwritev`), so a zoned device cuts and judges it as
    /// the kernel would. The default, for in-memory protocol drivers
    /// without zones, stores the slices in turn.
    fn writev(
        &self,
        offset: u64,
        bufs: &[&[u8]],
        flags: WriteFlags,
        progress: OnProgress<'_>,
    ) -> io::Result<()> {
        let mut at = offset;
        for b in bufs {
            self.write(at, b, flags)?;
            at += b.len() as u64;
            progress(b.len() as u64);
        }
        Ok(())
    }

    /// Writes `len` zero bytes. The default writes a zeroed buffer in chunks;
    /// drivers with a cheaper way override it.
    fn write_zeroes(&self, offset: u64, len: u64, flags: WriteFlags) -> io::Result<()> {
        write_zeroes_by_writing(self, offset, len, flags)
    }

    /// Tells the node the range is no longer needed; its content becomes
    /// unspecified. The default keeps the data, which is always allowed.
    fn discard(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    /// Sets the node's length to `len` bytes (`truncate`); the error is
    /// QEMU's message for it. The default is QEMU's answer for a driver
    /// that cannot resize.
    fn truncate(&self, _len: u64, _prealloc: Prealloc) -> Result<(), String> {
        Err("Image format driver does not support resize".into())
    }

    /// The zoned model and limits; `None` for a regular device. Formats and
    /// filters pass their child's up (translated where they must).
    fn zone_info(&self) -> Option<ZoneInfo> {
        None
    }

    /// Up to `max` zones from the one holding `offset`.
    fn zone_report(&self, _offset: u64, _max: usize) -> io::Result<Vec<Zone>> {
        Err(errno(Errno::ENOTSUP))
    }

    /// Open, close, finish or reset the zones of `[offset, offset + len)`.
    /// A zoned device checks the range with
    /// [`zone_rules::check_mgmt`](super::zone_rules::check_mgmt) and
    /// fails with the diagnostic line its Linux driver in QEMU prints.
    fn zone_mgmt(&self, _op: ZoneOp, _offset: u64, _len: u64) -> Result<(), ZoneError> {
        Err(ZoneError::plain(errno(Errno::ENOTSUP)))
    }

    /// Writes `data` at the write pointer of the zone starting at
    /// `zone_start`; returns the position it landed at.
    fn zone_append(&self, _zone_start: u64, _data: &[u8]) -> io::Result<u64> {
        Err(errno(Errno::ENOTSUP))
    }

    /// Whether `[offset, offset + len)` starts allocated, and for how many
    /// bytes from `offset` that answer holds (more than 0 when `len` is),
    /// as QEMU's `bdrv_is_allocated` answers qemu-io's `map`. The default:
    /// all allocated (zio's drivers store every byte), except that a
    /// filter asks its child.
    fn allocation(&self, offset: u64, len: u64) -> io::Result<(bool, u64)> {
        match self.child() {
            Some(c) if self.role() == Role::Filter => c.allocation(offset, len),
            _ => Ok((true, len)),
        }
    }

    /// The node's breakpoints (blkdebug's); `None` for every other
    /// driver. The backend asks the nodes from the root down.
    fn breakpoints(&self) -> Option<&Breakpoints> {
        None
    }

    /// Lines for `info`. The default suits formats and filters.
    fn info(&self) -> NodeInfo {
        NodeInfo {
            format_names: vec![self.driver_name().to_string()],
            ..NodeInfo::default()
        }
    }
}

/// Write-zeroes done the slow way: a zeroed buffer written in chunks.
pub(crate) fn write_zeroes_by_writing<D: BlockDriver + ?Sized>(
    node: &D,
    offset: u64,
    len: u64,
    flags: WriteFlags,
) -> io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    if flags.no_fallback {
        return Err(errno(Errno::ENOTSUP));
    }
    let zeroes = vec![0u8; CHUNK.min(len) as usize];
    let mut done = 0;
    while done < len {
        let n = CHUNK.min(len - done);
        node.write(offset + done, &zeroes[..n as usize], flags)?;
        done += n;
    }
    Ok(())
}
