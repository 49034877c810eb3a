//! The request data on /dev/ublkcN: with `UBLK_F_USER_COPY` a request's
//! bytes are read and written on the device's character device at a
//! position naming the queue and tag. libublk owns that file descriptor;
//! borrowing it is this module's only unsafe code.

use std::io;
use std::os::fd::BorrowedFd;

use libublk::io::{UblkIOCtx, UblkQueue};
use nix::sys::uio::{pread, pwrite};

/// The open /dev/ublkcN of the queue's device.
fn cdev<'a>(q: &'a UblkQueue) -> BorrowedFd<'a> {
    // SAFETY: `tgt.fds[0]` is the /dev/ublkcN file libublk opened for the
    // UblkDev that `q` borrows; it stays open as long as that device
    // lives, so at least as long as `q`.
    unsafe { BorrowedFd::borrow_raw(q.dev.tgt.fds[0]) }
}

/// Copies `buf` into the data of request `tag` (a read's data, a zone
/// report).
pub fn to_request(q: &UblkQueue, tag: u16, buf: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let pos = UblkIOCtx::ublk_user_copy_pos(q.get_qid(), tag, done as u32);
        match pwrite(cdev(q), &buf[done..], pos as i64) {
            Ok(0) => return Err(io::Error::from_raw_os_error(libc::EIO)),
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(zio_block::errno(e)),
        }
    }
    Ok(())
}

/// Copies the data of request `tag` (a write's, an append's) into `buf`.
pub fn from_request(q: &UblkQueue, tag: u16, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let pos = UblkIOCtx::ublk_user_copy_pos(q.get_qid(), tag, done as u32);
        match pread(cdev(q), &mut buf[done..], pos as i64) {
            Ok(0) => return Err(io::Error::from_raw_os_error(libc::EIO)),
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(zio_block::errno(e)),
        }
    }
    Ok(())
}
