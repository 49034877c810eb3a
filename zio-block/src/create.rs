//! `create`: replacing an image file safely, for `zio create` of every
//! format. This module owns the generic part: where the image goes (a
//! symlink is followed, the link stays), what may be replaced (a regular
//! file; never a directory or a device), the image lock on an existing
//! target (refused while another zio, or QEMU, has it open), the temporary
//! file in the same directory, and putting the finished image in place
//! (fsync, rename over the target, fsync of the directory). The format
//! only fills the empty temporary file.
//!
//! So the target is either the old image or the complete new one at every
//! moment, also after a crash or kill -9: a create that fails (a file
//! system that cannot hold the size, ENOSPC midway) removes its temporary
//! file and leaves the target as it was. Only a process killed before the
//! rename leaves its temporary file (`.NAME.zio-create.XXXXXX`) behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::file::{LockError, take_image_lock};
use super::{errno, strerror};

/// Symlinks followed at most, as the kernel does (ELOOP after that).
const MAX_LINKS: usize = 40;

/// The bytes QEMU locks (raw-posix's permission and shared-permission
/// bytes, 100 and 200 up): any lock there is a QEMU process using the
/// image.
const QEMU_LOCK_START: i64 = 100;
const QEMU_LOCK_LEN: i64 = 200;

/// Creates the image at `path` with `fill`, which writes it into an open,
/// empty file; `path` is replaced only once the new image is complete and
/// on disk. Errors are one line: `Could not create 'PATH': REASON` (REASON
/// is `fill`'s own text when it fails), or the lock refusal as qemu-img
/// words it, `PATH: Failed to get "write" lock: ...`.
///
/// A new file gets mode 0644 less the umask, as qemu-img creates it; a
/// replaced file keeps its mode (and, where the caller may, its owner).
pub fn create_image<T>(
    path: &str,
    fill: impl FnOnce(&File) -> Result<T, String>,
) -> Result<T, String> {
    let fail = |e: &io::Error| format!("Could not create '{path}': {}", strerror(e));
    let target = resolve(Path::new(path)).map_err(|e| fail(&e))?;
    let old = match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => return Err(fail(&errno(Errno::EISDIR))),
        Ok(m) if !m.is_file() => {
            return Err(format!(
                "Could not create '{path}': not a regular file (zio create makes image files and does not replace devices)"
            ));
        }
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail(&e)),
    };
    // The old image stays locked until the new one has replaced it.
    let _old_lock = match &old {
        Some(_) => {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&target)
                .map_err(|e| fail(&e))?;
            lock_target(&f, path)?;
            Some(f)
        }
        None => None,
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| fail(&errno(Errno::EISDIR)))?
        .to_string_lossy()
        .into_owned();
    let (tmp, file) = TempFile::create(&dir, &name).map_err(|e| fail(&e))?;
    // Nobody opens the new image before it is complete.
    take_image_lock(&file, true).map_err(|e| match e {
        LockError::Other(e) => fail(&errno(e)),
        LockError::Conflict(msg) => msg,
    })?;
    if let Some(m) = &old {
        let perms = std::fs::Permissions::from_mode(m.mode() & 0o7777);
        file.set_permissions(perms).map_err(|e| fail(&e))?;
        // Only root may give a file away; anyone else keeps their own.
        let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
    }
    let made = fill(&file).map_err(|e| format!("Could not create '{path}': {e}"))?;
    file.sync_all().map_err(|e| fail(&e))?;
    std::fs::rename(&tmp.path, &target).map_err(|e| fail(&e))?;
    tmp.keep();
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail(&e))?;
    Ok(made)
}

/// `path` with its symlinks followed (the file a create through a link
/// replaces; the link stays). A missing file is its own answer.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(e),
        }
    }
    Err(errno(Errno::ELOOP))
}

/// Takes the write lock on the existing image (QEMU's lock bytes, as every
/// zio open does) and checks that no other process has any of those bytes
/// locked (a reader included), as qemu-img refuses it.
fn lock_target(file: &File, path: &str) -> Result<(), String> {
    let refused = || {
        format!(
            "{path}: Failed to get \"write\" lock: is another process using the image [{path}]?"
        )
    };
    match take_image_lock(file, true) {
        Ok(()) => {}
        Err(LockError::Conflict(_)) => return Err(refused()),
        Err(LockError::Other(e)) => {
            return Err(format!("{path}: Failed to lock the image: {}", e.desc()));
        }
    }
    use nix::fcntl::{FcntlArg, fcntl};
    let mut probe = libc::flock {
        l_type: libc::F_WRLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: QEMU_LOCK_START,
        l_len: QEMU_LOCK_LEN,
        l_pid: 0,
    };
    match fcntl(file, FcntlArg::F_OFD_GETLK(&mut probe)) {
        Ok(_) if probe.l_type != libc::F_UNLCK as i16 => Err(refused()),
        _ => Ok(()),
    }
}

/// The new image while it is being made: `.NAME.zio-create.XXXXXX` in the
/// target's directory, removed when dropped unless kept.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn create(dir: &Path, name: &str) -> io::Result<(TempFile, File)> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ ((std::process::id() as u64) << 32);
        for k in 0u64..100 {
            let suffix = seed.wrapping_add(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)) & 0xff_ffff;
            let path = dir.join(format!(".{name}.zio-create.{suffix:06x}"));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
            {
                Ok(f) => return Ok((TempFile { path, keep: false }, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(errno(Errno::EEXIST))
    }

    /// The file has been renamed into place: nothing to remove.
    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("zio-create-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_fill_leaves_the_target_and_no_temp_file() {
        let d = scratch("fail");
        let t = d.join("t.img");
        std::fs::write(&t, b"old image").unwrap();
        let p = t.to_string_lossy().into_owned();
        let e = create_image(&p, |f| {
            f.set_len(4096).unwrap();
            Err::<(), _>("No space left on device".to_string())
        })
        .unwrap_err();
        assert_eq!(
            e,
            format!("Could not create '{p}': No space left on device")
        );
        assert_eq!(std::fs::read(&t).unwrap(), b"old image");
        assert_eq!(entries(&d), ["t.img"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_create_replaces_the_file_a_symlink_names_and_keeps_its_mode() {
        let d = scratch("link");
        let real = d.join("real.img");
        std::fs::write(&real, b"old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("real.img", d.join("link.img")).unwrap();
        let p = d.join("link.img").to_string_lossy().into_owned();
        create_image(&p, |f| f.set_len(8).map_err(|e| e.to_string())).unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), [0u8; 8]);
        assert!(
            std::fs::symlink_metadata(d.join("link.img"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let mode = std::fs::metadata(&real).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        assert_eq!(entries(&d), ["link.img", "real.img"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_locked_target_or_a_directory_is_refused() {
        let d = scratch("locked");
        let t = d.join("t.img");
        std::fs::write(&t, b"held").unwrap();
        let held = OpenOptions::new().read(true).write(true).open(&t).unwrap();
        take_image_lock(&held, true).unwrap();
        let p = t.to_string_lossy().into_owned();
        let e = create_image(&p, |_| Ok(())).unwrap_err();
        assert_eq!(
            e,
            format!("{p}: Failed to get \"write\" lock: is another process using the image [{p}]?")
        );
        assert_eq!(std::fs::read(&t).unwrap(), b"held");
        drop(held);
        let dp = d.to_string_lossy().into_owned();
        let e = create_image(&dp, |_| Ok(())).unwrap_err();
        assert_eq!(e, format!("Could not create '{dp}': Is a directory"));
        assert_eq!(entries(&d), ["t.img"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
