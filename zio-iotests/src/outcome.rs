//! Verdicts: turns one run's output into pass / fail / not run, and does
//! the file work that goes with it (`.out.bad`, `--bless`, cleanup).

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use super::compare::{normalize, outputs_match, unified_diff};
use super::config::{Config, display_path};
use super::discover::TestCase;
use super::exec::{Exit, RunOutput, run_test};

/// The three results a test can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    NotRun,
}

impl Status {
    /// The word used in reports: `pass`, `fail` or `not run`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotRun => "not run",
        }
    }
}

/// The judged result of one test.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub name: String,
    pub status: Status,
    /// Why it failed or was not run; `blessed` after `--bless`; else empty.
    pub reason: String,
    pub elapsed: Duration,
    /// Unified diff of expected vs actual output; empty when they match.
    pub diff: String,
    /// Where the actual output of a failed test was kept.
    pub bad_file: Option<PathBuf>,
    /// Command that reruns just this test (set for failures).
    pub rerun: Option<String>,
    /// The `.out` file was rewritten by `--bless`.
    pub blessed: bool,
    /// The runner itself failed (I/O error etc.), not the test.
    pub runner_error: bool,
}

impl Verdict {
    fn new(name: &str, status: Status, reason: String, elapsed: Duration) -> Verdict {
        Verdict {
            name: name.to_string(),
            status,
            reason,
            elapsed,
            diff: String::new(),
            bad_file: None,
            rerun: None,
            blessed: false,
            runner_error: false,
        }
    }
}

/// Runs `test` and judges it. Never fails: a runner error becomes a `fail`
/// verdict with `runner_error` set and the error as its reason.
pub fn run_one(test: &TestCase, cfg: &Config) -> Verdict {
    match run_test(test, cfg).and_then(|run| judge(test, run, cfg)) {
        Ok(verdict) => verdict,
        Err(e) => {
            let mut v = Verdict::new(
                &test.name,
                Status::Fail,
                format!("runner error: {e:#}"),
                Duration::ZERO,
            );
            v.runner_error = true;
            v.rerun = Some(rerun_command(cfg, &test.name));
            v
        }
    }
}

/// Judges one finished run against `test.expected`.
pub fn judge(test: &TestCase, run: RunOutput, cfg: &Config) -> Result<Verdict> {
    let scratch = &run.scratch;
    if let (Some(reason), false) = (&run.notrun, matches!(run.exit, Exit::TimedOut(_))) {
        scratch.clean(cfg.keep)?;
        return Ok(Verdict::new(
            &test.name,
            Status::NotRun,
            reason.clone(),
            run.elapsed,
        ));
    }

    let mut problems = Vec::new();
    let mut diff = String::new();
    let mut blessed = false;
    match run.exit {
        Exit::TimedOut(limit) => problems.push(format!("timed out after {} s", limit.as_secs())),
        Exit::Signal(sig) => problems.push(format!("killed by signal {sig}")),
        Exit::Code(0) => {}
        Exit::Code(code) => problems.push(format!("exit status {code}")),
    }
    if !matches!(run.exit, Exit::TimedOut(_)) {
        // `--bless NAME` of a test without NAME.out yet: it is compared
        // with nothing, and blessing writes it.
        let first_bless = cfg.bless && !test.expected.exists();
        let expected = if first_bless {
            String::new()
        } else {
            fs::read_to_string(&test.expected)
                .with_context(|| format!("cannot read {}", test.expected.display()))?
        };
        if first_bless || !outputs_match(&expected, &run.output) {
            let old_label = format!("{}/{}.out", cfg.tests_dir_label, test.name);
            let new_label = display_path(&scratch.bad);
            diff = unified_diff(&expected, &run.output, &old_label, &new_label);
            if cfg.bless && problems.is_empty() {
                let path = test.bless_path();
                fs::write(&path, normalize(&run.output))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                blessed = true;
            } else {
                problems.push("output mismatch".to_string());
            }
        }
    }

    if problems.is_empty() {
        scratch.clean(cfg.keep)?;
        let reason = if blessed { "blessed" } else { "" };
        let mut v = Verdict::new(&test.name, Status::Pass, reason.into(), run.elapsed);
        v.diff = diff;
        v.blessed = blessed;
        return Ok(v);
    }
    fs::rename(&scratch.log, &scratch.bad)
        .with_context(|| format!("cannot write {}", scratch.bad.display()))?;
    let mut v = Verdict::new(&test.name, Status::Fail, problems.join(", "), run.elapsed);
    v.diff = diff;
    v.bad_file = Some(scratch.bad.clone());
    v.rerun = Some(rerun_command(cfg, &test.name));
    Ok(v)
}

/// The command that reruns test `name` (the run's prefix and the name).
pub fn rerun_command(cfg: &Config, name: &str) -> String {
    format!("{} {}", cfg.rerun_prefix, shell_quote(name))
}

/// `word` quoted for a POSIX shell when it contains anything unusual.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=+,:@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("001"), "001");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
