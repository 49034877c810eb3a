//! `zio serve --recover N`: a new server for device N, added by a
//! `zio serve --recoverable` that died. The kernel quiesced the device when
//! its server went away (the block device stays, new I/O waits, the I/O
//! the dead server held failed); this checks that N is such a device of
//! zio's and that the image has the geometry the kernel knows it by, then
//! asks the kernel to take a new server for it (START_USER_RECOVERY).

use libublk::ctrl::{UblkCtrl, UblkCtrlBuilder};
use libublk::sys;
use libublk::{UblkError, UblkFlags};

use crate::params::{self, Geometry};
use crate::{stale, ublk_error};

/// The control of device `id`, ready for `run_target` to serve it again;
/// an error says why it cannot be.
pub fn take_over(id: u32, geo: &Geometry) -> Result<UblkCtrl, String> {
    let cdev = format!("/dev/ublkc{id}");
    let sid = i32::try_from(id).map_err(|_| format!("--recover {id}: no such ublk device"))?;
    if !stale::exists(id) {
        return Err(format!(
            "--recover {id}: no ublk device {id} ({cdev} is missing)"
        ));
    }
    if !stale::is_zio_device(id) {
        return Err(format!(
            "--recover {id}: {cdev} is not a zio serve device (no zio record in {})",
            UblkCtrl::run_dir()
        ));
    }
    let probe = UblkCtrl::new_simple(sid)
        .map_err(|e| format!("--recover {id}: cannot read {cdev}: {}", ublk_error(&e)))?;
    let info = probe.dev_info();
    if info.flags & u64::from(sys::UBLK_F_USER_RECOVERY) == 0 {
        return Err(format!(
            "--recover {id}: {cdev} was not added with --recoverable"
        ));
    }
    if stale::served(&cdev) {
        return Err(format!("--recover {id}: {cdev} has a live server"));
    }
    let mut have = sys::ublk_params::default();
    probe.get_params(&mut have).map_err(|e| {
        format!(
            "--recover {id}: cannot read {cdev}'s parameters: {}",
            ublk_error(&e)
        )
    })?;
    let want = geo.ublk_params(info.max_io_buf_bytes);
    if let Some(diff) = params::mismatch(&have, &want) {
        return Err(format!(
            "--recover {id}: the image does not match {cdev}: {diff}"
        ));
    }
    // The kernel answers EBUSY until it has quiesced the device after its
    // server's death; libublk retries for up to 30 s.
    probe
        .start_user_recover()
        .and_then(|r| {
            if r < 0 {
                Err(UblkError::OtherError(r))
            } else {
                Ok(r)
            }
        })
        .map_err(|e| {
            format!(
                "--recover {id}: the kernel refused to recover {cdev}: {}",
                ublk_error(&e)
            )
        })?;
    UblkCtrlBuilder::default()
        .name(stale::TARGET)
        .id(sid)
        .nr_queues(info.nr_hw_queues)
        .depth(info.queue_depth)
        .io_buf_bytes(info.max_io_buf_bytes)
        .dev_flags(UblkFlags::UBLK_DEV_F_RECOVER_DEV)
        .build()
        .map_err(|e| {
            format!(
                "--recover {id}: cannot take {cdev} over: {}",
                ublk_error(&e)
            )
        })
}
