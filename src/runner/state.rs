//! The `--failed` memory: a small file in the scratch root listing the
//! tests that failed when they last ran, one name per line.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Path of the state file under `scratch_root` (a dot file, so it can never
/// collide with a test's scratch entries).
pub fn state_file(scratch_root: &Path) -> PathBuf {
    scratch_root.join(".last-failed")
}

/// Tests recorded as failed; none if no run has recorded anything yet.
pub fn load_failed(scratch_root: &Path) -> Result<BTreeSet<String>> {
    let path = state_file(scratch_root);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Records a run: tests in `ran` are forgotten unless they are in `failed`,
/// and tests that did not run keep whatever was recorded for them.
pub fn record_run<'a>(
    scratch_root: &Path,
    ran: impl IntoIterator<Item = &'a str>,
    failed: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let mut set = load_failed(scratch_root)?;
    for name in ran {
        set.remove(name);
    }
    set.extend(failed.into_iter().map(str::to_string));
    let text: String = set.iter().map(|name| format!("{name}\n")).collect();
    let path = state_file(scratch_root);
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}
