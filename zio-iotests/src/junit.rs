//! JUnit XML (`--junit FILE`), the format CI systems (GitHub Actions
//! reporters, GitLab's `artifacts:reports:junit`, Jenkins) read: one
//! `<testcase>` per test run, a failure holding the test's diff and rerun
//! hint, a runner error as `<error>`, a test not run as `<skipped>` with its
//! reason. Pure formatting, like [`report`](super::report).
//!
//! Written by hand rather than with an XML crate: the document is five
//! element kinds, and the one subtle part, text that XML 1.0 cannot hold
//! at all (control characters a test may print, such as a terminal's
//! escape sequences), no escaping writer handles for us; see [`escape`].

use std::fmt::Write as _;

use super::outcome::{Status, Verdict};
use super::report::details;

/// The JUnit document of one run: suite `suite`, every testcase of class
/// `classname` (`iotests`, or `iotests.vm` for a VM run).
pub fn render(suite: &str, classname: &str, verdicts: &[Verdict]) -> String {
    let count = |pick: &dyn Fn(&Verdict) -> bool| verdicts.iter().filter(|v| pick(v)).count();
    let failures = count(&|v| v.status == Status::Fail && !v.runner_error);
    let errors = count(&|v| v.runner_error);
    let skipped = count(&|v| v.status == Status::NotRun);
    let time: f64 = verdicts.iter().map(|v| v.elapsed.as_secs_f64()).sum();
    let totals = format!(
        "tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\"",
        verdicts.len()
    );
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let suite = escape(suite);
    let _ = writeln!(out, "<testsuites name=\"{suite}\" {totals}>");
    let _ = writeln!(out, "  <testsuite name=\"{suite}\" {totals}>");
    for v in verdicts {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            escape(classname),
            escape(&v.name),
            v.elapsed.as_secs_f64()
        );
        let reason = escape(&v.reason);
        let text = escape(&details(v).join("\n"));
        match v.status {
            Status::Pass => out.push_str("/>\n"),
            Status::NotRun => {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{reason}\"/>\n    </testcase>"
                );
            }
            Status::Fail => {
                let kind = if v.runner_error { "error" } else { "failure" };
                let _ = writeln!(
                    out,
                    ">\n      <{kind} message=\"{reason}\" type=\"{kind}\">{text}</{kind}>\n    </testcase>"
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// `text` as XML 1.0 character data, usable in attributes and elements:
/// the five markup characters as entities, tab, newline and carriage
/// return as character references (so attribute values keep them), and
/// the characters XML 1.0 cannot hold even as references (other C0
/// controls, U+FFFE, U+FFFF) written visibly as `\u{1b}`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(escape("x\ty\n"), "x&#9;y&#10;");
        assert_eq!(escape("\x1b[31mred\u{ffff}"), "\\u{1b}[31mred\\u{ffff}");
        assert_eq!(escape("größe"), "größe");
    }

    #[test]
    fn counts_and_elements() {
        let v = |name: &str, status, reason: &str, runner_error| Verdict {
            name: name.into(),
            status,
            reason: reason.into(),
            elapsed: Duration::from_millis(1500),
            diff: if status == Status::Fail {
                "-a\n+b\n".into()
            } else {
                String::new()
            },
            bad_file: None,
            rerun: None,
            blessed: false,
            runner_error,
        };
        let xml = render(
            "iotests",
            "iotests",
            &[
                v("ok", Status::Pass, "", false),
                v("bad", Status::Fail, "output mismatch", false),
                v("t@6.12", Status::NotRun, "needs <root>", false),
                v("err", Status::Fail, "runner error: x", true),
            ],
        );
        assert!(xml.contains(
            "<testsuite name=\"iotests\" tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\" time=\"6.000\">"
        ));
        assert!(xml.contains("<testcase classname=\"iotests\" name=\"ok\" time=\"1.500\"/>\n"));
        assert!(
            xml.contains(
                "<failure message=\"output mismatch\" type=\"failure\">-a&#10;+b</failure>"
            )
        );
        assert!(xml.contains("name=\"t@6.12\""));
        assert!(xml.contains("<skipped message=\"needs &lt;root&gt;\"/>"));
        assert!(xml.contains("<error message=\"runner error: x\" type=\"error\">"));
    }
}
