//! Devices a killed `zio serve` left behind. Without user recovery (a
//! device added without `--recoverable`) such a device can never serve
//! again: the kernel fails its I/O and takes its block device away, but its
//! character device `/dev/ublkcN`, its number and libublk's record of it
//! (`/run/ublksrvd/NNNN.json`) stay until someone deletes it. `zio serve`
//! deletes those that are zio's (the record says target `zio`), cannot be
//! recovered, and that no server holds, before it adds its own device
//! (recoverable ones wait for `zio serve --recover N`, [`crate::recover`]). A server keeps its
//! `/dev/ublkcN` open, and the kernel lets one process at a time open it,
//! so a character device that opens is one nobody serves; libublk writes
//! the record only once its server has started, so a device still being
//! set up by another `zio serve` has none yet.

use std::path::Path;

use libublk::ctrl::UblkCtrl;
use libublk::sys;

/// The target name zio's devices carry in libublk's record.
pub const TARGET: &str = "zio";

/// Deletes every dead zio device; returns one line for each deleted (for
/// stderr) or that could not be.
pub fn reclaim() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(UblkCtrl::run_dir()) else {
        return Vec::new();
    };
    let mut ids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let id = name.to_str()?.strip_suffix(".json")?.parse().ok()?;
            is_zio_record(&e.path()).then_some(id)
        })
        .collect();
    ids.sort_unstable();
    ids.into_iter().filter_map(reclaim_one).collect()
}

/// Whether ublk device `id` is one of zio's (its libublk record says so).
pub fn is_zio_device(id: u32) -> bool {
    is_zio_record(Path::new(&record_path(id)))
}

/// libublk's record of device `id`.
fn record_path(id: u32) -> String {
    format!("{}/{id:04}.json", UblkCtrl::run_dir())
}

/// Whether the kernel has ublk device `id` (its character device).
pub fn exists(id: u32) -> bool {
    Path::new(&format!("/sys/class/ublk-char/ublkc{id}")).exists()
}

/// Whether the libublk record at `path` is one of zio's devices.
fn is_zio_record(path: &Path) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["target"]["tgt_type"] == TARGET)
}

/// Deletes device `id` if its server is gone; what was done, if anything.
fn reclaim_one(id: u32) -> Option<String> {
    let cdev = format!("/dev/ublkc{id}");
    // The record outlived its device (deleted by other means): drop it.
    if !exists(id) {
        let _ = std::fs::remove_file(record_path(id));
        return None;
    }
    let ctrl = UblkCtrl::new_simple(i32::try_from(id).ok()?).ok()?;
    let info = ctrl.dev_info();
    if info.flags & u64::from(sys::UBLK_F_USER_RECOVERY) != 0 || served(&cdev) {
        return None;
    }
    let by = match info.ublksrv_pid {
        pid if pid > 0 => format!("left by a zio serve that died (pid {pid})"),
        _ => "left by a zio serve that died".to_string(),
    };
    Some(match ctrl.del_dev() {
        Ok(_) => format!("deleted {cdev}, {by}"),
        Err(e) => format!(
            "{cdev}, {by}, could not be deleted: {}",
            crate::ublk_error(&e)
        ),
    })
}

/// Whether a server holds `cdev`: it does not open (EBUSY), or cannot be
/// told (any other error, taken as held so that nothing is deleted).
pub fn served(cdev: &str) -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(cdev)
        .is_err()
}
