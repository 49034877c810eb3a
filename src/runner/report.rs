//! Reporting: the per-test lines, diffs and summary, in the human format
//! (one aligned line per test) or as TAP version 13. Pure formatting.

use super::outcome::{Status, Verdict};

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
        }
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
        let time = format!("{:.1}s", v.elapsed.as_secs_f64());
        let line = format!(
            "{:<width$}  {:<7}  {:>6}  {}",
            v.name,
            v.status.label(),
            time,
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
            format!("Passed all {ran} iotests")
        } else {
            format!("Failed {} of {ran} iotests", failed.len())
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
        assert_eq!(r.summary(&vs[..1]), "Passed all 1 iotests\n");
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
