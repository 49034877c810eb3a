//! `file`: the protocol driver for regular files (and the I/O core that
//! `host_device` reuses for block devices).
//!
//! Buffered by default; with `nocache` the file is opened O_DIRECT and any
//! request that is not aligned to DIRECT_ALIGN is bounced through an aligned
//! buffer (read-modify-write for writes), as QEMU does. A vectored write is
//! one `pwritev` (repeated only for what a short write left, or beyond
//! IOV_MAX entries); unaligned for O_DIRECT, its buffers are bounced in turn.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, fallocate};

use super::aligned::{AlignedBuf, DIRECT_ALIGN, is_aligned};
use super::driver::{OnProgress, Prealloc, write_zeroes_by_writing};
use super::{BlockDriver, NodeInfo, OpenFlags, OptionMap, Role, WriteFlags, errno, strerror};

/// Largest bounce window for unaligned O_DIRECT requests.
const BOUNCE_MAX: u64 = 1 << 20;

/// Linux's IOV_MAX: the most iovec entries one `pwritev` takes.
const IOV_MAX: usize = 1024;

pub struct FileNode {
    file: File,
    direct: bool,
    /// Offset and length granularity of O_DIRECT requests.
    align: u64,
    driver: &'static str,
}

/// `driver=file,filename=PATH[,locking=on|off|auto]`.
pub fn open(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let path = opts
        .take("filename")
        .ok_or_else(|| "The 'file' driver needs the option 'filename'".to_string())?;
    let lock = take_locking(opts)?;
    let node = FileNode::open_path(&path, flags, "file", Kind::Regular, lock)?;
    Ok(Arc::new(node))
}

/// What a driver opens: QEMU's file driver takes regular files only, its
/// host_device (and host_cdrom) character and block devices only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular,
    Device,
}

/// The `locking` option of file and host_device, as QEMU's: `on` or `auto`
/// (the default) take zio's image lock, `off` takes none.
pub fn take_locking(opts: &mut OptionMap) -> Result<bool, String> {
    match opts.take("locking").as_deref() {
        None | Some("on" | "auto") => Ok(true),
        Some("off") => Ok(false),
        Some(v) => Err(format!("invalid parameter value: {v}")),
    }
}

/// QEMU's permission bits (`BLK_PERM_*`, bit i), by the names its lock
/// errors use. An open holding bit i takes a shared OFD lock on byte
/// `PERM_BASE + i`; one that does not share it, on `SHARED_BASE + i`
/// (block/file-posix.c, `raw_apply_lock_bytes`).
const PERM_NAMES: [&str; 4] = ["consistent read", "write", "write unchanged", "resize"];
const PERM_BASE: i64 = 100;
const SHARED_BASE: i64 = 200;
const PERM_READ: u8 = 1;
const PERM_WRITE: u8 = 2;

/// Why the image lock was not taken.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another process holds what this open excludes: QEMU's message
    /// (`Failed to get "write" lock`).
    Conflict(String),
    Other(Errno),
}

/// Locks an open image as QEMU's file-posix does, so zio and QEMU see each
/// other's opens: an open reads (and writes, for a writer) and does not
/// share writing, so it is refused while another process writes (or forbids
/// writing, as a running VM's disk does), and it refuses a later writer
/// (qemu-io itself shares everything and holds the write bit only). `-U`
/// skips the lock for read-only inspection. The locks belong to the open
/// file and go away with it, even on kill -9. The error is QEMU's, with its
/// hint naming the image.
fn lock_image(file: &File, write: bool, path: &str) -> Result<(), String> {
    match take_image_lock(file, write) {
        Ok(()) => Ok(()),
        Err(LockError::Conflict(msg)) => Err(format!(
            "{msg}\nIs another process using the image [{path}]?"
        )),
        Err(LockError::Other(e)) => Err(format!("Failed to lock the image: {}", e.desc())),
    }
}

/// Takes the lock bytes of an open that reads, writes when `write`, and
/// shares everything but writing, then checks them as QEMU's
/// `raw_check_lock_bytes` does: each bit it holds must not be unshared by
/// another open file, and no other may hold the bit it does not share. On
/// file systems without OFD locks it succeeds without a lock, as QEMU goes
/// on unlocked.
pub(crate) fn take_image_lock(file: &File, write: bool) -> Result<(), LockError> {
    use nix::fcntl::{FcntlArg, fcntl};
    let perm = if write {
        PERM_READ | PERM_WRITE
    } else {
        PERM_READ
    };
    let unshared = PERM_WRITE;
    let flock = |kind: i32, at: i64| libc::flock {
        l_type: kind as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: at,
        l_len: 1,
        l_pid: 0,
    };
    let bits = || (0..PERM_NAMES.len()).map(|i| (i, 1u8 << i));
    for (i, bit) in bits() {
        for (held, base) in [(perm, PERM_BASE), (unshared, SHARED_BASE)] {
            if held & bit == 0 {
                continue;
            }
            match fcntl(
                file,
                FcntlArg::F_OFD_SETLK(&flock(libc::F_RDLCK, base + i as i64)),
            ) {
                Ok(_) => {}
                Err(Errno::EINVAL | Errno::ENOLCK | Errno::EOPNOTSUPP) => return Ok(()),
                Err(Errno::EAGAIN | Errno::EACCES) => {
                    return Err(LockError::Conflict(format!(
                        "Failed to get \"{}\" lock",
                        PERM_NAMES[i]
                    )));
                }
                Err(e) => return Err(LockError::Other(e)),
            }
        }
    }
    // Locked by another open file description (ours do not count).
    let taken = |at: i64| -> Result<bool, LockError> {
        let mut probe = flock(libc::F_WRLCK, at);
        fcntl(file, FcntlArg::F_OFD_GETLK(&mut probe)).map_err(LockError::Other)?;
        Ok(probe.l_type != libc::F_UNLCK as i16)
    };
    for (i, bit) in bits() {
        if perm & bit != 0 && taken(SHARED_BASE + i as i64)? {
            return Err(LockError::Conflict(format!(
                "Failed to get \"{}\" lock",
                PERM_NAMES[i]
            )));
        }
    }
    for (i, bit) in bits() {
        if unshared & bit != 0 && taken(PERM_BASE + i as i64)? {
            return Err(LockError::Conflict(format!(
                "Failed to get shared \"{}\" lock",
                PERM_NAMES[i]
            )));
        }
    }
    Ok(())
}

impl FileNode {
    /// Opens `path` for `driver`, refusing what the driver does not take
    /// ([`Kind`]) with QEMU's line, after the open as QEMU checks it (so a
    /// directory opened for writing is `Is a directory`). A block device
    /// opened for writing is opened O_EXCL. `lock`: take the image lock
    /// (unless `-U`).
    pub fn open_path(
        path: &str,
        flags: &OpenFlags,
        driver: &'static str,
        kind: Kind,
        lock: bool,
    ) -> Result<FileNode, String> {
        let block = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device());
        let exclusive = block && !flags.read_only;
        let fail = |e: &io::Error| {
            let busy = if exclusive && e.raw_os_error() == Some(libc::EBUSY) {
                " (in use: mounted or opened exclusively by another program)"
            } else {
                ""
            };
            format!("Could not open '{path}': {}{busy}", strerror(e))
        };
        let mut oo = OpenOptions::new();
        oo.read(true).write(!flags.read_only);
        let mut custom = 0;
        if flags.nocache {
            custom |= libc::O_DIRECT;
        }
        if exclusive {
            custom |= libc::O_EXCL;
        }
        oo.custom_flags(custom);
        let file = oo.open(path).map_err(|e| fail(&e))?;
        let ft = file.metadata().map_err(|e| fail(&e))?.file_type();
        match kind {
            Kind::Regular if !ft.is_file() => {
                return Err(format!(
                    "'{driver}' driver requires '{path}' to be a regular file"
                ));
            }
            Kind::Device if !ft.is_block_device() && !ft.is_char_device() => {
                return Err(format!(
                    "'{driver}' driver requires '{path}' to be either a character or block device"
                ));
            }
            _ => {}
        }
        if lock && !flags.force_share {
            lock_image(&file, !flags.read_only, path)?;
        }
        Ok(FileNode {
            file,
            direct: flags.nocache,
            align: DIRECT_ALIGN as u64,
            driver,
        })
    }

    /// Sets the O_DIRECT granularity (a device's logical block size).
    pub fn set_alignment(&mut self, align: u64) {
        self.align = align.max(1);
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    fn size(&self) -> io::Result<u64> {
        let end = nix::unistd::lseek(&self.file, 0, nix::unistd::Whence::SeekEnd).map_err(errno)?;
        Ok(end as u64)
    }

    /// Reads what the file has; bytes past its end read as zero.
    fn read_raw(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => {
                    buf[done..].fill(0);
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The aligned window around `[offset, offset + len)`, at most BOUNCE_MAX.
    fn window(&self, offset: u64, len: u64) -> (u64, u64) {
        let a = self.align;
        let start = offset / a * a;
        let end = (offset + len).div_ceil(a) * a;
        (start, (end - start).min(BOUNCE_MAX))
    }

    fn read_bounced(&self, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let (start, wlen) = self.window(offset, buf.len() as u64);
            let mut bounce = AlignedBuf::new(wlen as usize);
            self.read_raw(start, bounce.as_mut_slice())?;
            let skip = (offset - start) as usize;
            let n = (wlen as usize - skip).min(buf.len());
            buf[..n].copy_from_slice(&bounce.as_slice()[skip..skip + n]);
            buf = &mut buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// `bufs` written at `offset` by `pwritev`: one call, unless a short
    /// write leaves the rest for another (or there are more than IOV_MAX
    /// entries). `progress` hears of each call's bytes.
    fn pwritev_all(&self, offset: u64, bufs: &[&[u8]], progress: OnProgress<'_>) -> io::Result<()> {
        let mut iov: Vec<IoSlice<'_>> = bufs
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| IoSlice::new(b))
            .collect();
        let mut left = &mut iov[..];
        let mut at = offset;
        while !left.is_empty() {
            let n = left.len().min(IOV_MAX);
            let pos = i64::try_from(at).map_err(|_| errno(Errno::EINVAL))?;
            match nix::sys::uio::pwritev(&self.file, &left[..n], pos) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => {
                    at += k as u64;
                    progress(k as u64);
                    IoSlice::advance_slices(&mut left, k);
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(errno(e)),
            }
        }
        Ok(())
    }

    fn write_bounced(&self, mut offset: u64, mut buf: &[u8]) -> io::Result<()> {
        // The file ends where it ended, or, if later, at the end of the
        // write's last sector: QEMU pads an O_DIRECT write to whole 512-byte
        // sectors and keeps the padding.
        let end = (offset + buf.len() as u64).next_multiple_of(512);
        let size = self.size()?.max(end);
        while !buf.is_empty() {
            let (start, wlen) = self.window(offset, buf.len() as u64);
            let mut bounce = AlignedBuf::new(wlen as usize);
            let skip = (offset - start) as usize;
            let n = (wlen as usize - skip).min(buf.len());
            if skip != 0 || n != wlen as usize {
                self.read_raw(start, bounce.as_mut_slice())?;
            }
            bounce.as_mut_slice()[skip..skip + n].copy_from_slice(&buf[..n]);
            self.file.write_all_at(bounce.as_slice(), start)?;
            buf = &buf[n..];
            offset += n as u64;
        }
        // A padded write at an unaligned end must not grow the file further.
        if self.size()? > size {
            self.file.set_len(size)?;
        }
        Ok(())
    }
}

impl BlockDriver for FileNode {
    fn driver_name(&self) -> &'static str {
        self.driver
    }

    fn role(&self) -> Role {
        Role::Protocol
    }

    /// As QEMU's file-posix: a regular file is set to `len` (grown sparse,
    /// or allocated by fallocate or by writing zeros); a block or character
    /// device cannot grow, and shrinking it changes nothing.
    fn truncate(&self, len: u64, prealloc: Prealloc) -> Result<(), String> {
        let meta = self.file.metadata().map_err(|e| e.to_string())?;
        let old = self.size().map_err(|e| strerror(&e))?;
        if !meta.file_type().is_file() {
            if len > old {
                return Err("Cannot grow device files".into());
            }
            return Ok(());
        }
        let failed = |e: io::Error| format!("Could not resize file: {}", strerror(&e));
        match prealloc {
            Prealloc::Metadata => return Err("Unsupported preallocation mode: metadata".into()),
            Prealloc::Off => {}
            Prealloc::Falloc if len > old => {
                let (at, n) = (old as i64, (len - old) as i64);
                fallocate(&self.file, FallocateFlags::empty(), at, n).map_err(|e| {
                    format!("Could not preallocate new data: {}", strerror(&errno(e)))
                })?;
            }
            Prealloc::Full if len > old => {
                self.file.set_len(len).map_err(failed)?;
                let zeros = vec![0u8; (1 << 20).min(len - old) as usize];
                let mut at = old;
                while at < len {
                    let n = (len - at).min(zeros.len() as u64) as usize;
                    self.file.write_all_at(&zeros[..n], at).map_err(failed)?;
                    at += n as u64;
                }
            }
            Prealloc::Falloc | Prealloc::Full => {}
        }
        self.file.set_len(len).map_err(failed)
    }

    fn length(&self) -> io::Result<u64> {
        self.size()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if self.direct && !is_aligned(offset, buf, self.align) {
            return self.read_bounced(offset, buf);
        }
        self.read_raw(offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8], flags: WriteFlags) -> io::Result<()> {
        if self.direct && !is_aligned(offset, buf, self.align) {
            self.write_bounced(offset, buf)?;
        } else {
            self.file.write_all_at(buf, offset)?;
        }
        if flags.fua {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn writev(
        &self,
        offset: u64,
        bufs: &[&[u8]],
        flags: WriteFlags,
        progress: OnProgress<'_>,
    ) -> io::Result<()> {
        let mut at = offset;
        let aligned = bufs.iter().all(|b| {
            let ok = is_aligned(at, b, self.align);
            at += b.len() as u64;
            ok
        });
        if self.direct && !aligned {
            let mut at = offset;
            for b in bufs {
                self.write_bounced(at, b)?;
                at += b.len() as u64;
                progress(b.len() as u64);
            }
        } else {
            self.pwritev_all(offset, bufs, progress)?;
        }
        if flags.fua {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64, flags: WriteFlags) -> io::Result<()> {
        let mode = if flags.may_unmap {
            FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE
        } else {
            FallocateFlags::FALLOC_FL_ZERO_RANGE | FallocateFlags::FALLOC_FL_KEEP_SIZE
        };
        if fallocate(&self.file, mode, offset as i64, len as i64).is_err() {
            write_zeroes_by_writing(self, offset, len, flags)?;
        }
        if flags.fua {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        match fallocate(&self.file, mode, offset as i64, len as i64) {
            // Discard is advisory: a file system that can't punch holes
            // simply keeps the data.
            Ok(()) | Err(Errno::EOPNOTSUPP) => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            format_names: vec![self.driver.to_string(), self.driver.to_string()],
            ..NodeInfo::default()
        }
    }
}
