//! What the runner remembers between runs, in one small file in the
//! scratch root: which tests failed when they last ran (for `--failed`)
//! and how long each test took (shown as `(was 0.2s)` next to a result).
//!
//! One line per test, `NAME<TAB>pass|fail<TAB>SECONDS`, or
//! `NAME<TAB>fail<TAB>-` when the time is unknown. A line holding only a
//! name (the older format) means the test failed, time unknown.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::outcome::{Status, Verdict};

/// Path of the state file under `scratch_root` (a dot file, so it can never
/// collide with a test's scratch entries).
pub fn state_file(scratch_root: &Path) -> PathBuf {
    scratch_root.join(".last-failed")
}

/// What is remembered about one test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestState {
    /// It failed when it last ran.
    pub failed: bool,
    /// How long it took when it last ran to a pass or a fail.
    pub elapsed: Option<Duration>,
}

/// Everything remembered, by test name.
pub type State = BTreeMap<String, TestState>;

/// The state recorded so far; empty if no run has recorded anything yet.
pub fn load(scratch_root: &Path) -> Result<State> {
    let path = state_file(scratch_root);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Tests recorded as failed.
pub fn load_failed(scratch_root: &Path) -> Result<Vec<String>> {
    Ok(load(scratch_root)?
        .into_iter()
        .filter(|(_, s)| s.failed)
        .map(|(name, _)| name)
        .collect())
}

/// Each test's time at its last pass or fail.
pub fn load_times(scratch_root: &Path) -> Result<BTreeMap<String, Duration>> {
    Ok(load(scratch_root)?
        .into_iter()
        .filter_map(|(name, s)| Some((name, s.elapsed?)))
        .collect())
}

fn parse(text: &str) -> State {
    let mut state = State::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.trim_end_matches('\r').split('\t').collect();
        let (name, ts) = match fields[..] {
            [name] => (
                name.trim(),
                TestState {
                    failed: true,
                    elapsed: None,
                },
            ),
            [name, status, secs, ..] => (
                name,
                TestState {
                    failed: status == "fail",
                    elapsed: secs
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(Duration::from_secs_f64),
                },
            ),
            _ => continue,
        };
        if !name.is_empty() {
            state.insert(name.to_string(), ts);
        }
    }
    state
}

fn render(state: &State) -> String {
    state
        .iter()
        .filter(|(_, s)| s.failed || s.elapsed.is_some())
        .map(|(name, s)| {
            let status = if s.failed { "fail" } else { "pass" };
            let secs = s
                .elapsed
                .map_or_else(|| "-".to_string(), |d| format!("{:.6}", d.as_secs_f64()));
            format!("{name}\t{status}\t{secs}\n")
        })
        .collect()
}

/// Records a run: a test that passed or failed gets its new status and
/// time; one that was not run is no longer failed and keeps its old time
/// (a skip says nothing about how long the test takes); a failure of the
/// runner itself keeps the old time too. Tests not in `verdicts` keep
/// whatever was recorded for them.
pub fn record_run(scratch_root: &Path, verdicts: &[Verdict]) -> Result<()> {
    let mut state = load(scratch_root)?;
    for v in verdicts {
        let old = state.get(&v.name).and_then(|s| s.elapsed);
        let elapsed = match v.status {
            Status::Pass | Status::Fail if !v.runner_error => Some(v.elapsed),
            _ => old,
        };
        state.insert(
            v.name.clone(),
            TestState {
                failed: v.status == Status::Fail,
                elapsed,
            },
        );
    }
    let path = state_file(scratch_root);
    fs::write(&path, render(&state)).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_formats() {
        let state = parse("old\nnew\tpass\t0.250\nbad\tfail\t-\n\n");
        assert_eq!(
            state["old"],
            TestState {
                failed: true,
                elapsed: None
            }
        );
        assert_eq!(
            state["new"],
            TestState {
                failed: false,
                elapsed: Some(Duration::from_millis(250))
            }
        );
        assert!(state["bad"].failed && state["bad"].elapsed.is_none());
        assert_eq!(
            render(&state),
            "bad\tfail\t-\nnew\tpass\t0.250000\nold\tfail\t-\n"
        );
    }

    #[test]
    fn entries_with_nothing_to_remember_are_dropped() {
        let mut state = State::new();
        state.insert(
            "gone".into(),
            TestState {
                failed: false,
                elapsed: None,
            },
        );
        assert_eq!(render(&state), "");
    }
}
