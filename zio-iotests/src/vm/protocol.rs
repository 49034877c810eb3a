//! The report protocol between the VM's `/init` (vm/init) and the runner:
//! lines starting with `ZIOVM <nonce> `, each test's output base64-encoded
//! between `BEGIN` and `END` lines, so stray kernel lines cannot be taken
//! for test output. See vm/init for the line formats.

use std::time::Duration;

/// How a test ended inside the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmExit {
    Code(i32),
    /// Killed by the in-VM watchdog after the per-test timeout.
    TimedOut,
}

/// One test's result as reported by the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    pub name: String,
    pub exit: VmExit,
    /// Merged stdout and stderr.
    pub output: Vec<u8>,
    /// The `_notrun` reason, if the test skipped itself.
    pub notrun: Option<String>,
    pub elapsed: Duration,
    /// Set when the frame was damaged (length mismatch, bad base64).
    pub damaged: Option<String>,
}

/// Everything one boot reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootReport {
    /// The guest kernel release, once `/init` started.
    pub ready: Option<String>,
    /// Device facts (`/sys/block/*/queue`), as text.
    pub info: Option<String>,
    /// Why device setup failed, if it did.
    pub setup_fail: Option<String>,
    pub tests: Vec<TestReport>,
    /// `/init` reached its end.
    pub done: bool,
}

impl BootReport {
    /// The report of test `name`, if the VM finished it.
    pub fn test(&self, name: &str) -> Option<&TestReport> {
        self.tests.iter().find(|t| t.name == name)
    }
}

/// Splits the VM's report text (carriage returns and stray lines allowed).
pub fn parse(text: &str, nonce: &str) -> BootReport {
    let marker = format!("ZIOVM {nonce} ");
    let mut report = BootReport::default();
    // The test whose BEGIN was seen: its name and base64 so far.
    let mut open: Option<(String, String)> = None;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        let Some(at) = line.find(&marker) else {
            if let Some((_, b64)) = &mut open {
                let l = line.trim();
                if !l.is_empty() && l.bytes().all(is_base64_byte) {
                    b64.push_str(l);
                }
            }
            continue;
        };
        let words: Vec<&str> = line[at + marker.len()..].split_whitespace().collect();
        match words.as_slice() {
            ["READY", release @ ..] => report.ready = Some(release.join(" ")),
            ["INFO", b64] => report.info = Some(decode_text(b64)),
            ["SETUP-FAIL", b64] => report.setup_fail = Some(decode_text(b64)),
            ["BEGIN", name] => open = Some((name.to_string(), String::new())),
            ["END", name, rc, bytes, t0, t1, reason] => {
                let b64 = match open.take() {
                    Some((n, b64)) if n == *name => b64,
                    _ => String::new(),
                };
                report
                    .tests
                    .push(end_of(name, rc, bytes, t0, t1, reason, &b64));
            }
            ["DONE"] => report.done = true,
            _ => {}
        }
    }
    report
}

fn end_of(
    name: &str,
    rc: &str,
    bytes: &str,
    t0: &str,
    t1: &str,
    reason: &str,
    b64: &str,
) -> TestReport {
    let exit = match rc {
        "timeout" => VmExit::TimedOut,
        _ => VmExit::Code(rc.parse().unwrap_or(-1)),
    };
    let elapsed = match (t0.parse::<f64>(), t1.parse::<f64>()) {
        (Ok(a), Ok(b)) if b >= a => Duration::from_secs_f64(b - a),
        _ => Duration::ZERO,
    };
    let notrun = (reason != "-").then(|| {
        let text = decode_text(reason).trim().replace('\n', "; ");
        if text.is_empty() {
            "no reason given".to_string()
        } else {
            text
        }
    });
    let (output, damaged) = match base64_decode(b64) {
        Some(out) if bytes.parse() == Ok(out.len()) => (out, None),
        Some(out) => {
            let why = format!("{} of {bytes} bytes arrived", out.len());
            (out, Some(why))
        }
        None => (Vec::new(), Some("undecodable output".to_string())),
    };
    TestReport {
        name: name.to_string(),
        exit,
        output,
        notrun,
        elapsed,
        damaged,
    }
}

fn decode_text(b64: &str) -> String {
    base64_decode(b64)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|| format!("(undecodable: {b64})"))
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// Standard base64 (with `=` padding) to bytes; `None` if malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(
            base64_decode("aGVsbG8Kd29ybGQK").unwrap(),
            b"hello\nworld\n"
        );
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert!(base64_decode("YQ=").is_none());
        assert!(base64_decode("YQ==YQ==").is_none());
        assert!(base64_decode("Y!==").is_none());
    }

    #[test]
    fn frames_survive_stray_lines() {
        let text = "SeaBIOS junk\r\n\
            ZIOVM n1 READY 6.1.0-56-amd64\r\n\
            ZIOVM n1 INFO bnVsbGIwOiB6b25lZD1ob3N0LW1hbmFnZWQK\r\n\
            ZIOVM n1 BEGIN a\r\n\
            aGVsbG8K\r\n\
            [    3.1] I/O error, dev nullb0, sector 0\r\n\
            d29ybGQK\r\n\
            ZIOVM n1 END a 0 12 2.50 2.75 -\r\n\
            ZIOVM other BEGIN a\r\n\
            ZIOVM n1 BEGIN b\r\n\
            ZIOVM n1 END b 3 0 3.00 3.10 bmVlZHMgbnZtZQo=\r\n\
            ZIOVM n1 BEGIN c\r\n\
            YWJj\r\n\
            ZIOVM n1 END c timeout 4 4.00 9.00 -\r\n\
            ZIOVM n1 DONE\r\n";
        let r = parse(text, "n1");
        assert_eq!(r.ready.as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(r.info.as_deref(), Some("nullb0: zoned=host-managed\n"));
        assert!(r.done);
        assert_eq!(r.tests.len(), 3);
        let a = r.test("a").unwrap();
        assert_eq!(a.output, b"hello\nworld\n");
        assert_eq!(a.exit, VmExit::Code(0));
        assert_eq!(a.damaged, None);
        assert_eq!(a.elapsed, Duration::from_millis(250));
        let b = r.test("b").unwrap();
        assert_eq!(b.exit, VmExit::Code(3));
        assert_eq!(b.notrun.as_deref(), Some("needs nvme"));
        let c = r.test("c").unwrap();
        assert_eq!(c.exit, VmExit::TimedOut);
        assert_eq!(c.damaged.as_deref(), Some("3 of 4 bytes arrived"));
    }

    #[test]
    fn a_missing_end_means_no_result() {
        let r = parse("ZIOVM x READY 6\nZIOVM x BEGIN a\naGVsbG8K\n", "x");
        assert!(r.test("a").is_none());
        assert!(!r.done);
        let r = parse("ZIOVM x SETUP-FAIL bm8gbnVsbGIwCg==\n", "x");
        assert_eq!(r.setup_fail.as_deref(), Some("no nullb0\n"));
    }
}
