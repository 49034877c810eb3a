//! Scratch layout of one test below the scratch root: its `$TEST_DIR`, the
//! raw output log, the `.out.bad` kept on failure and the `.notrun` note.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Paths one test owns below the scratch root.
#[derive(Debug, Clone)]
pub struct Scratch {
    /// `<root>/NAME`, exported as `$TEST_DIR`.
    pub test_dir: PathBuf,
    /// `<root>/NAME.log`: merged stdout and stderr while the test runs.
    pub log: PathBuf,
    /// `<root>/NAME.out.bad`: the log, renamed, when the test fails.
    pub bad: PathBuf,
    /// `<root>/NAME.notrun`: written by `_notrun` with the reason.
    pub notrun: PathBuf,
}

impl Scratch {
    /// The paths for test `name` under `root`.
    pub fn new(root: &Path, name: &str) -> Scratch {
        Scratch {
            test_dir: root.join(name),
            log: root.join(format!("{name}.log")),
            bad: root.join(format!("{name}.out.bad")),
            notrun: root.join(format!("{name}.notrun")),
        }
    }

    /// Removes what a previous run left and creates an empty `$TEST_DIR`.
    pub fn prepare(&self) -> Result<()> {
        remove_dir_if_present(&self.test_dir)?;
        for file in [&self.log, &self.bad, &self.notrun] {
            remove_file_if_present(file)?;
        }
        fs::create_dir_all(&self.test_dir)
            .with_context(|| format!("cannot create {}", self.test_dir.display()))
    }

    /// Removes everything except `.out.bad` (used after a pass or skip).
    pub fn clean(&self, keep_test_dir: bool) -> Result<()> {
        if !keep_test_dir {
            remove_dir_if_present(&self.test_dir)?;
        }
        remove_file_if_present(&self.log)?;
        remove_file_if_present(&self.notrun)
    }
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn remove_file_if_present(file: &Path) -> Result<()> {
    match fs::remove_file(file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", file.display()))
        }
        _ => Ok(()),
    }
}
