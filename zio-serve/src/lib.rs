//! zio-serve, `zio serve`: a zio block graph as a Linux block device of
//! the kernel, through ublk (`ublk_drv`, the userspace block driver).
//!
//! It owns the ublk side only: checking that the kernel can take the
//! device (`/dev/ublk-control`, the driver's features, the geometry,
//! [`params`]), adding and starting the device with the libublk crate,
//! answering its requests through the [`BlockBackend`] the caller opened
//! ([`target`]; the bytes cross /dev/ublkcN in [`copy`], the only unsafe
//! code here), and stopping it on SIGINT or SIGTERM. Before it adds a
//! device it deletes the dead ones killed `zio serve`s left ([`stale`]); a
//! device added `--recoverable` outlives its server and is served again by
//! `--recover N` ([`recover`]). A zoned graph becomes
//! a host-managed zoned disk (`UBLK_F_ZONED`) with the graph's zone size and
//! limits; any other graph a plain disk. The zone rules stay the block
//! layer's: every request is forwarded, and its errno is the answer.

#![deny(unsafe_code)]

// Reads and writes of the request data on /dev/ublkcN (user copy): the
// file descriptor belongs to libublk, so borrowing it is unsafe.
mod cli;
#[allow(unsafe_code)]
mod copy;
pub mod params;
mod recover;
mod stale;
mod target;

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libublk::ctrl::{UblkCtrl, UblkCtrlBuilder};
use libublk::io::{BufDescList, UblkDev, UblkQueue};
use libublk::{UblkError, UblkFlags, sys};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use zio_block::{BlockBackend, strerror};

pub use cli::{ServeArgs, main};
pub use params::Geometry;

/// The ublk control device; missing when `ublk_drv` is not loaded.
pub const CONTROL: &str = "/dev/ublk-control";

/// How the device is set up besides the graph.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Hardware queues (one thread each).
    pub queues: u16,
    /// Requests in flight per queue.
    pub depth: u16,
    /// Add the device with user recovery (`UBLK_F_USER_RECOVERY`): if
    /// this server dies, the kernel keeps the device and queues its I/O
    /// for a `recover` server.
    pub recoverable: bool,
    /// Serve device N, whose recoverable server died, instead of adding
    /// one (its queues and depth are the device's).
    pub recover: Option<u32>,
}

/// Serves `blk` as a ublk device until SIGINT or SIGTERM: prints its path
/// (`/dev/ublkbN`) through `announce` once it is live, then stops it and
/// flushes the graph. Dead devices of earlier, killed `zio serve`s that
/// cannot be recovered are deleted first, each with a line to `note`. The error is one line without the
/// program name.
pub fn serve(
    blk: BlockBackend,
    opts: ServeOptions,
    announce: impl FnOnce(&str) + Send + Sync + 'static,
    note: impl Fn(&str),
) -> Result<(), String> {
    let geo = Geometry::of(&blk)?;
    if opts.queues == 0 || u32::from(opts.queues) > sys::UBLK_MAX_NR_QUEUES {
        return Err(format!(
            "--queues {}: ublk takes 1 to {} queues",
            opts.queues,
            sys::UBLK_MAX_NR_QUEUES
        ));
    }
    if opts.depth == 0 || u32::from(opts.depth) > sys::UBLK_MAX_QUEUE_DEPTH {
        return Err(format!(
            "--depth {}: ublk takes a depth of 1 to {}",
            opts.depth,
            sys::UBLK_MAX_QUEUE_DEPTH
        ));
    }
    geo.check_limits()?;
    check_control()?;
    let features = UblkCtrl::get_features().ok_or_else(|| {
        "the kernel's ublk_drv is too old: it does not report its features (Linux 6.5+ needed)"
            .to_string()
    })?;
    let mut flags = u64::from(sys::UBLK_F_USER_COPY);
    if features & flags == 0 {
        return Err(
            "the kernel's ublk_drv has no user copy (UBLK_F_USER_COPY, Linux 6.5+)".to_string(),
        );
    }
    if opts.recoverable || opts.recover.is_some() {
        if features & u64::from(sys::UBLK_F_USER_RECOVERY) == 0 {
            return Err("the kernel's ublk_drv has no user recovery (UBLK_F_USER_RECOVERY)".into());
        }
        flags |= u64::from(sys::UBLK_F_USER_RECOVERY);
    }
    if geo.zoned.is_some() {
        if features & u64::from(sys::UBLK_F_ZONED) == 0 {
            return Err(
                "the kernel's ublk_drv has no zoned devices (UBLK_F_ZONED, Linux 6.6+ built with CONFIG_BLK_DEV_ZONED)"
                    .to_string(),
            );
        }
        flags |= u64::from(sys::UBLK_F_ZONED);
    }

    for line in stale::reclaim() {
        note(&line);
    }

    // SIGINT and SIGTERM are taken through a signalfd: blocked here, before
    // the queue threads start, so that every thread inherits the mask.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&stop), None)
        .map_err(|e| format!("cannot block SIGINT/SIGTERM: {e}"))?;
    let sigfd = SignalFd::with_flags(&stop, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("cannot take SIGINT/SIGTERM: {e}"))?;

    let ctrl = match opts.recover {
        None => UblkCtrlBuilder::default()
            .name(stale::TARGET)
            .id(-1)
            .nr_queues(opts.queues)
            .depth(opts.depth)
            .io_buf_bytes(params::IO_BUF_BYTES)
            .ctrl_flags(flags)
            .dev_flags(UblkFlags::UBLK_DEV_F_ADD_DEV)
            .build()
            .map_err(|e| format!("cannot add a ublk device: {}", ublk_error(&e)))?,
        Some(id) => recover::take_over(id, &geo)?,
    };

    let blk = Arc::new(blk);
    // The kernel may give fewer queues than asked (at most one per CPU).
    let queues = ctrl.dev_info().nr_hw_queues;
    let running = Arc::new(AtomicUsize::new(usize::from(queues)));
    let tgt_geo = geo.clone();
    let q_blk = blk.clone();
    let q_geo = geo.clone();
    let q_running = running.clone();
    let queue = move |qid: u16, dev: &UblkDev| {
        let mut handler = target::Handler::new(q_blk, q_geo);
        if let Ok(q) = UblkQueue::new(qid, dev)
            .and_then(|q| q.submit_fetch_commands_unified(BufDescList::Slices(None)))
        {
            q.wait_and_handle_io(|q, tag, _| handler.handle(q, tag));
        }
        q_running.fetch_sub(1, Ordering::SeqCst);
    };
    let live = move |ctrl: &UblkCtrl| {
        announce(&ctrl.get_bdev_path());
        wait_for_stop(&sigfd, &running);
        // Stops the device: the queues end, run_target returns.
        let _ = ctrl.kill_dev();
    };
    let ran = ctrl.run_target(
        move |dev: &mut UblkDev| {
            dev.tgt.params = tgt_geo.ublk_params(dev.dev_info.max_io_buf_bytes);
            dev.tgt.dev_size = tgt_geo.length;
            Ok(())
        },
        queue,
        live,
    );
    // Dropping the control deletes a device it added, whether it ran or
    // not; a recovered one is deleted here.
    if opts.recover.is_some() {
        let _ = ctrl.del_dev();
    }
    drop(ctrl);
    ran.map_err(|e| format!("ublk refused the device ({geo}): {}", ublk_error(&e)))?;
    blk.flush()
        .map_err(|e| format!("flush failed: {}", strerror(&e)))?;
    Ok(())
}

/// Opens the control device once to tell "not loaded" from "not allowed".
fn check_control() -> Result<(), String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(CONTROL)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{CONTROL} is missing: the ublk_drv module is not loaded (modprobe ublk_drv; Linux 6.6+ for zoned devices)"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
            "{CONTROL}: permission denied (adding a ublk device needs root)"
        )),
        Err(e) => Err(format!("{CONTROL}: {}", strerror(&e))),
    }
}

/// Blocks until SIGINT or SIGTERM arrives, or every queue has ended (the
/// device was removed from outside).
fn wait_for_stop(sigfd: &SignalFd, running: &AtomicUsize) {
    while running.load(Ordering::SeqCst) > 0 {
        let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        let tick = PollTimeout::try_from(Duration::from_millis(500)).unwrap_or(PollTimeout::MAX);
        if let Ok(n) = poll(&mut fds, tick)
            && n > 0
        {
            let _ = sigfd.read_signal();
            return;
        }
    }
}

/// libublk's errors as strerror text where they carry an errno.
pub(crate) fn ublk_error(e: &UblkError) -> String {
    let errno = match e {
        UblkError::IOError(io) => return strerror(io),
        UblkError::UringIOError(n) | UblkError::OtherError(n) => n.abs(),
        other => return other.to_string(),
    };
    strerror(&std::io::Error::from_raw_os_error(errno))
}

/// Writes the device path line to stdout; a closed stdout only loses it.
pub fn print_path(path: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{path}").and_then(|()| out.flush());
}
