//! Run configuration shared by every test of one run: which zio, which
//! tests directory, where scratch files go, and the per-run switches.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Default limit on one test's wall-clock time.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything a test run needs besides the tests themselves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Absolute path of the zio binary under test (exported as `$ZIO`).
    pub zio: PathBuf,
    /// Absolute path of the tests directory (exported as `$IOTESTS`).
    pub tests_dir: PathBuf,
    /// Absolute path of the scratch root; each test gets `<root>/NAME`.
    pub scratch_root: PathBuf,
    /// A test running longer than this is killed and fails.
    pub timeout: Duration,
    /// Rewrite `.out` files from the actual output of tests that exit 0.
    pub bless: bool,
    /// Keep scratch directories of passing and skipped tests too.
    pub keep: bool,
    /// Command that reruns one test when followed by its name.
    pub rerun_prefix: String,
    /// How the tests directory is shown in diff headers.
    pub tests_dir_label: String,
}

impl Config {
    /// Checks `zio` and `tests_dir`, creates `scratch_root`, and makes all
    /// three absolute (symlinks are kept, so messages show familiar paths). Switches start at their defaults.
    pub fn new(zio: &Path, tests_dir: &Path, scratch_root: &Path) -> Result<Config> {
        if !tests_dir.is_dir() {
            bail!(
                "tests directory {} does not exist or is not a directory",
                tests_dir.display()
            );
        }
        if !zio.is_file() {
            bail!(
                "zio binary {} does not exist (build it, or pass --zio PATH)",
                zio.display()
            );
        }
        fs::create_dir_all(scratch_root)
            .with_context(|| format!("cannot create scratch root {}", scratch_root.display()))?;
        let abs = |p: &Path| {
            std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
        };
        let tests_dir = abs(tests_dir)?;
        Ok(Config {
            zio: abs(zio)?,
            scratch_root: abs(scratch_root)?,
            timeout: DEFAULT_TIMEOUT,
            bless: false,
            keep: false,
            rerun_prefix: "./run-iotests.sh".to_string(),
            tests_dir_label: display_path(&tests_dir),
            tests_dir,
        })
    }
}

/// `path` relative to the current directory when it lies below it, so that
/// messages read `iotests/NAME.out` rather than a long absolute path.
pub fn display_path(path: &Path) -> String {
    let relative = std::env::current_dir()
        .ok()
        .filter(|cwd| cwd.parent().is_some())
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    match relative {
        Some(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => path.display().to_string(),
    }
}
