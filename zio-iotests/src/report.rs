//! Reporting: the per-test lines, diffs and summary, in the human format
//! (one aligned line per test) or as TAP version 13. Pure formatting.
//!
//! A human result line is the name, the status, the time the test took,
//! the time it took when it last ran (when known) and the reason:
//!
//! ```text
//! zone-append  pass       0.1s (was 0.2s)
//! bad          fail       0.0s (was 0.0s)  output mismatch
//! skipped      not run    0.0s             needs a zoned device
//! ```
//!
//! With colour on, only the status word is coloured (green `pass`, red
//! `fail`, yellow `not run`), as qemu-iotests' `check` does on a terminal.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::time::Duration;

use super::outcome::{Status, Verdict};

/// When to colour the status words (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty.
    #[default]
    Auto,
    /// Always colour, even into a pipe or file.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Whether to colour, given whether stdout is a terminal and the value
    /// of `NO_COLOR` (<https://no-color.org>: set and not empty disables
    /// colour). An explicit `always` or `never` wins over both.
    pub fn enabled(self, stdout_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stdout_is_terminal && no_color.is_none_or(OsStr::is_empty),
        }
    }
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// Width of the status column: `not run`, the longest status word.
const STATUS_WIDTH: usize = 7;

/// Output format of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Tap,
}

/// Formats one run's report; every method returns complete lines.
#[derive(Debug, Clone)]
pub struct Reporter {
    format: Format,
    name_width: usize,
    total: usize,
    color: bool,
    /// Each test's time when it last ran, for the `(was ...)` column.
    previous: HashMap<String, Duration>,
    /// Width of that column: 0 when no test has a previous time.
    was_width: usize,
}

impl Reporter {
    /// A reporter for a run of the tests named `names`.
    pub fn new<'a>(format: Format, names: impl IntoIterator<Item = &'a str>) -> Reporter {
        let (mut name_width, mut total) = (0, 0);
        for name in names {
            name_width = name_width.max(name.len());
            total += 1;
        }
        Reporter {
            format,
            name_width,
            total,
            color: false,
            previous: HashMap::new(),
            was_width: 0,
        }
    }

    /// Colours the status words of human lines (never TAP).
    pub fn with_color(mut self, color: bool) -> Reporter {
        self.color = color;
        self
    }

    /// Shows `(was T)` after the time of each test found in `previous`
    /// (test name to its time when it last ran). Only the entries of this
    /// run's tests are kept, and the column is as wide as the widest.
    pub fn with_previous<'a>(
        mut self,
        names: impl IntoIterator<Item = &'a str>,
        previous: &BTreeMap<String, Duration>,
    ) -> Reporter {
        for name in names {
            if let Some(&t) = previous.get(name) {
                self.was_width = self.was_width.max(was_text(t).len());
                self.previous.insert(name.to_string(), t);
            }
        }
        self
    }

    /// What comes before the first test: the TAP version and plan.
    pub fn header(&self) -> String {
        match self.format {
            Format::Human => String::new(),
            Format::Tap => format!("TAP version 13\n1..{}\n", self.total),
        }
    }

    /// The report of test number `index` (0-based).
    pub fn verdict(&self, index: usize, v: &Verdict) -> String {
        match self.format {
            Format::Human => self.human_verdict(v),
            Format::Tap => tap_verdict(index, v),
        }
    }

    fn human_verdict(&self, v: &Verdict) -> String {
        let label = v.status.label();
        let pad = " ".repeat(STATUS_WIDTH.saturating_sub(label.len()));
        let status = match (self.color, v.status) {
            (false, _) => format!("{label}{pad}"),
            (true, Status::Pass) => format!("{GREEN}{label}{RESET}{pad}"),
            (true, Status::Fail) => format!("{RED}{label}{RESET}{pad}"),
            (true, Status::NotRun) => format!("{YELLOW}{label}{RESET}{pad}"),
        };
        let was = match self.previous.get(&v.name) {
            // A skip's time says nothing about the test: no comparison.
            Some(&t) if v.status != Status::NotRun => was_text(t),
            _ => String::new(),
        };
        let was_column = if self.was_width > 0 {
            format!(" {was:<w$}", w = self.was_width)
        } else {
            String::new()
        };
        let line = format!(
            "{:<width$}  {status}  {:>6}{was_column}  {}",
            v.name,
            seconds(v.elapsed),
            v.reason,
            width = self.name_width
        );
        let mut out = format!("{}\n", line.trim_end());
        for line in details(v) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// The closing lines: which tests were skipped, failed or blessed, and
    /// the count. Not-run tests are not counted, as in qemu's `check`.
    pub fn summary(&self, verdicts: &[Verdict]) -> String {
        let names = |pick: &dyn Fn(&Verdict) -> bool| {
            verdicts
                .iter()
                .filter(|v| pick(v))
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
        };
        let not_run = names(&|v| v.status == Status::NotRun);
        let failed = names(&|v| v.status == Status::Fail);
        let blessed = names(&|v| v.blessed);
        let ran = verdicts.len() - not_run.len();
        let mut lines = Vec::new();
        for (title, list) in [
            ("Not run", &not_run),
            ("Failures", &failed),
            ("Blessed", &blessed),
        ] {
            if !list.is_empty() {
                lines.push(format!("{title}: {}", list.join(" ")));
            }
        }
        lines.push(if failed.is_empty() {
            format!("Passed all {}", plural(ran, "iotest"))
        } else {
            format!("Failed {} of {}", failed.len(), plural(ran, "iotest"))
        });
        let prefix = match self.format {
            Format::Human => "",
            Format::Tap => "# ",
        };
        lines
            .iter()
            .map(|line| format!("{prefix}{line}\n"))
            .collect()
    }
}

/// `1 test`, `2 tests`: `count` and `noun`, plural unless it is 1.
pub fn plural(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// A duration as the report shows it: `0.3s`.
fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The previous-time column's text: `(was 0.3s)`.
fn was_text(d: Duration) -> String {
    format!("(was {})", seconds(d))
}

/// Lines shown under a test's result line: the diff, and for failures
/// where the output went and how to rerun the test.
pub fn details(v: &Verdict) -> Vec<String> {
    let mut lines: Vec<String> = v.diff.lines().map(str::to_string).collect();
    if v.status == Status::Fail {
        if let (true, Some(bad)) = (v.diff.is_empty(), &v.bad_file) {
            lines.push(format!("  output: {}", bad.display()));
        }
        if let Some(rerun) = &v.rerun {
            lines.push(format!("  rerun: {rerun}"));
        }
    }
    lines
}

fn tap_verdict(index: usize, v: &Verdict) -> String {
    let n = index + 1;
    let mut out = match v.status {
        Status::Pass => format!("ok {n} - {}\n", v.name),
        Status::NotRun => format!("ok {n} - {} # SKIP {}\n", v.name, v.reason),
        Status::Fail => format!("not ok {n} - {}\n# {}\n", v.name, v.reason),
    };
    if v.blessed {
        out.push_str("# blessed\n");
    }
    for line in details(v) {
        out.push_str(&format!("# {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn verdict(name: &str, status: Status, reason: &str) -> Verdict {
        Verdict {
            name: name.into(),
            status,
            reason: reason.into(),
            elapsed: Duration::from_millis(340),
            diff: String::new(),
            bad_file: None,
            rerun: (status == Status::Fail).then(|| format!("./run-iotests.sh {name}")),
            blessed: false,
            runner_error: false,
        }
    }

    #[test]
    fn human_lines_and_summary() {
        let vs = [
            verdict("001", Status::Pass, ""),
            verdict("long-name", Status::Fail, "exit status 3"),
            verdict("003", Status::NotRun, "needs root"),
        ];
        let r = Reporter::new(Format::Human, vs.iter().map(|v| v.name.as_str()));
        assert_eq!(r.verdict(0, &vs[0]), "001        pass       0.3s\n");
        assert_eq!(
            r.verdict(1, &vs[1]),
            "long-name  fail       0.3s  exit status 3\n  rerun: ./run-iotests.sh long-name\n"
        );
        assert_eq!(
            r.summary(&vs),
            "Not run: 003\nFailures: long-name\nFailed 1 of 2 iotests\n"
        );
        assert_eq!(r.summary(&vs[..1]), "Passed all 1 iotest\n");
        assert_eq!(
            r.summary(&vs[1..2]),
            "Failures: long-name\nFailed 1 of 1 iotest\n"
        );
        assert_eq!(plural(0, "test"), "0 tests");
    }

    #[test]
    fn previous_times_and_colour() {
        let vs = [
            verdict("a", Status::Pass, ""),
            verdict("bb", Status::Fail, "output mismatch"),
            verdict("c", Status::NotRun, "why"),
        ];
        let names = || vs.iter().map(|v| v.name.as_str());
        let previous = [
            ("a".to_string(), Duration::from_millis(12_340)),
            ("bb".to_string(), Duration::from_millis(200)),
            ("c".to_string(), Duration::from_millis(100)),
            ("other".to_string(), Duration::from_secs(999)),
        ]
        .into_iter()
        .collect();
        let r = Reporter::new(Format::Human, names()).with_previous(names(), &previous);
        assert_eq!(r.verdict(0, &vs[0]), "a   pass       0.3s (was 12.3s)\n");
        assert_eq!(
            r.verdict(1, &vs[1]).lines().next().unwrap(),
            "bb  fail       0.3s (was 0.2s)   output mismatch"
        );
        assert_eq!(
            r.verdict(2, &vs[2]),
            "c   not run    0.3s              why\n"
        );

        let r = r.with_color(true);
        assert_eq!(
            r.verdict(0, &vs[0]),
            "a   \x1b[32mpass\x1b[0m       0.3s (was 12.3s)\n"
        );
        assert!(
            r.verdict(1, &vs[1])
                .starts_with("bb  \x1b[31mfail\x1b[0m   ")
        );
        assert!(
            r.verdict(2, &vs[2])
                .starts_with("c   \x1b[33mnot run\x1b[0m  ")
        );
        let tap = Reporter::new(Format::Tap, names()).with_color(true);
        assert_eq!(tap.verdict(0, &vs[0]), "ok 1 - a\n");
    }

    #[test]
    fn colour_choice() {
        let empty = OsStr::new("");
        let set = OsStr::new("1");
        assert!(ColorChoice::Auto.enabled(true, None));
        assert!(ColorChoice::Auto.enabled(true, Some(empty)));
        assert!(!ColorChoice::Auto.enabled(true, Some(set)));
        assert!(!ColorChoice::Auto.enabled(false, None));
        assert!(ColorChoice::Always.enabled(false, Some(set)));
        assert!(!ColorChoice::Never.enabled(true, None));
    }

    #[test]
    fn tap_lines() {
        let vs = [
            verdict("a", Status::Pass, ""),
            verdict("b", Status::NotRun, "why"),
        ];
        let r = Reporter::new(Format::Tap, ["a", "b"]);
        assert_eq!(r.header(), "TAP version 13\n1..2\n");
        assert_eq!(r.verdict(0, &vs[0]), "ok 1 - a\n");
        assert_eq!(r.verdict(1, &vs[1]), "ok 2 - b # SKIP why\n");
    }
}
