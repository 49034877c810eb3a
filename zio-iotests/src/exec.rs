//! Running one test script: environment, its own process group, merged
//! stdout/stderr capture, and the timeout that kills the whole group.

use std::fs::{self, File};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::config::Config;
use super::discover::TestCase;
use super::scratch::Scratch;

/// How the test script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal (not by the runner).
    Signal(i32),
    /// Still running at the timeout; the runner killed its process group.
    TimedOut(Duration),
}

/// What one run of a test script produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub exit: Exit,
    /// Merged stdout and stderr, as written.
    pub output: String,
    /// The reason given to `_notrun`, if the test skipped itself.
    pub notrun: Option<String>,
    pub elapsed: Duration,
    pub scratch: Scratch,
}

/// Runs `bash ./NAME` in the tests directory with a fresh `$TEST_DIR`.
///
/// The script gets stdin from `/dev/null`, one file for both stdout and
/// stderr (so a leftover background process cannot hold the runner up),
/// and its own process group, which is killed with SIGKILL at the timeout.
pub fn run_test(test: &TestCase, cfg: &Config) -> Result<RunOutput> {
    let scratch = Scratch::new(&cfg.scratch_root, &test.name);
    scratch.prepare()?;
    let log = File::create(&scratch.log)
        .with_context(|| format!("cannot create {}", scratch.log.display()))?;
    let log_err = log.try_clone().context("cannot duplicate log file")?;

    let start = Instant::now();
    let child = Command::new("bash")
        .arg(format!("./{}", test.script_name()))
        .current_dir(&cfg.tests_dir)
        // The kernel series the run is for (`# kernels:`): common.rc's
        // _zoned_dev gives the emulated device that profile.
        .env("ZIO_TEST_KERNEL", test.kernel())
        .env("ZIO", &cfg.zio)
        .env("IOTESTS", &cfg.tests_dir)
        .env("TEST_DIR", &scratch.test_dir)
        .env("TEST_IMG", scratch.test_dir.join("t.img"))
        .env("IOTEST_NOTRUN_FILE", &scratch.notrun)
        .env("LC_ALL", "C")
        // Inherited values would change how bash or common.rc behave.
        .env_remove("BASH_ENV")
        .env_remove("ENV")
        .env_remove("status")
        // Set only inside the VM tier: common.rc's _zoned_dev takes them
        // as the real device under test.
        .env_remove("TEST_DEV")
        .env_remove("TEST_NVME")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .context("cannot start bash")?;
    let exit = wait_with_timeout(child, cfg.timeout)?;
    let elapsed = start.elapsed();

    let output =
        fs::read(&scratch.log).with_context(|| format!("cannot read {}", scratch.log.display()))?;
    let notrun = fs::read(&scratch.notrun).ok().map(|reason| {
        let reason = String::from_utf8_lossy(&reason).trim().replace('\n', "; ");
        if reason.is_empty() {
            "no reason given".to_string()
        } else {
            reason
        }
    });
    Ok(RunOutput {
        exit,
        output: String::from_utf8_lossy(&output).into_owned(),
        notrun,
        elapsed,
        scratch,
    })
}

/// Waits for `child` on a helper thread so the timeout costs no polling.
fn wait_with_timeout(mut child: std::process::Child, timeout: Duration) -> Result<Exit> {
    let pid = i32::try_from(child.id()).context("child pid out of range")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        // The receiver may be gone if the runner gave up; nothing to do then.
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(timeout) {
        Ok(status) => status,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // The script's pid is its process group id (process_group(0)),
            // and the group outlives the script while members remain.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            rx.recv()
                .map_err(|_| anyhow!("lost track of test process {pid}"))?
                .context("cannot wait for test process")?;
            return Ok(Exit::TimedOut(timeout));
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(anyhow!("lost track of test process {pid}"));
        }
    };
    Ok(exit_of(status.context("cannot wait for test process")?))
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    }
}
