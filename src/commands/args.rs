//! Reading a command line as qemu-io does: split on single spaces, options by
//! GNU getopt (permuting, so options may follow operands; `--` ends them),
//! numbers by `cvtnum` and pattern bytes by `strtol`. Errors carry
//! qemu-io's exact wording.

use zio_block::units::{SizeError, parse_size};

/// Splits a line on spaces, skipping empty tokens; no quoting, as qemu-io.
pub fn breakline(line: &str) -> Vec<&str> {
    line.split(' ').filter(|t| !t.is_empty()).collect()
}

/// A cache mode (qemu-io's `-t`, also `open -t`): whether it bypasses the
/// host page cache (O_DIRECT), or qemu-io's error line without the prefix.
pub fn cache_mode_direct(mode: &str) -> Result<bool, String> {
    match mode {
        "none" | "directsync" => Ok(true),
        "writeback" | "writethrough" | "unsafe" => Ok(false),
        _ => Err(format!("Invalid cache option: {mode}")),
    }
}

/// A discard mode (qemu-io's `-d`, also `open -d`), checked as qemu-io
/// checks it; zio's discard passes the request on in every mode.
pub fn check_discard_mode(mode: &str) -> Result<(), String> {
    match mode {
        "ignore" | "off" | "unmap" | "on" => Ok(()),
        _ => Err(format!("Invalid discard option: {mode}")),
    }
}

/// One result of [`GetOpt`].
#[derive(Debug, PartialEq, Eq)]
pub enum Opt<'a> {
    Flag(char, Option<&'a str>),
    /// The message getopt prints on stderr (`read: invalid option -- 'x'`).
    Bad(String),
}

/// The getopt spec (`"Cl:pP:qrs:v"`) of the options a usage string lists
/// (`"[-Cpqrv] [-P pattern [-s off] [-l len]] off len"`): every letter of a
/// cluster `-abc` is a flag, and a single `-X` followed by a word (not by
/// `]`, `|`, `)` or another option) takes a value. `--long` options are
/// not getopt's and are left out. The usage line is the one definition of
/// a command's options: its parser reads this spec, `help` prints the line.
pub fn spec_of(usage: &str) -> String {
    // Words, with each bracket, parenthesis and bar a token of its own.
    let mut tokens: Vec<&str> = Vec::new();
    for word in usage.split(' ') {
        let mut rest = word;
        while let Some(i) = rest.find(['[', ']', '(', ')', '|']) {
            tokens.extend([&rest[..i], &rest[i..i + 1]]);
            rest = &rest[i + 1..];
        }
        tokens.push(rest);
    }
    tokens.retain(|t| !t.is_empty());
    let mut spec = String::new();
    for (i, t) in tokens.iter().enumerate() {
        let Some(letters) = t.strip_prefix('-') else {
            continue;
        };
        if letters.starts_with('-') || letters.is_empty() {
            continue;
        }
        spec.push_str(letters);
        let next_is_word = tokens
            .get(i + 1)
            .is_some_and(|n| !n.starts_with(['-', '[', ']', '(', ')', '|']));
        if letters.chars().count() == 1 && next_is_word {
            spec.push(':');
        }
    }
    spec
}

/// The `--long` options a usage string lists (`--blkzone`).
pub fn long_options(usage: &str) -> impl Iterator<Item = &str> {
    usage
        .split(['[', ']', '(', ')', '|', ' '])
        .filter(|w| w.len() > 2 && w.starts_with("--"))
}

/// GNU getopt over `argv` (argv[0] is the command word) with a spec like
/// `"bCl:pP:qs:v"`. Operands are collected while scanning.
pub struct GetOpt<'a> {
    argv: &'a [&'a str],
    spec: String,
    idx: usize,
    /// Position inside a cluster like `-qv`.
    sub: usize,
    operands: Vec<&'a str>,
    /// A word like `-1` is an operand (a number), not options.
    negative_numbers: bool,
}

impl<'a> GetOpt<'a> {
    pub fn new(argv: &'a [&'a str], spec: impl Into<String>) -> Self {
        GetOpt {
            argv,
            spec: spec.into(),
            idx: 1,
            sub: 0,
            operands: Vec::new(),
            negative_numbers: false,
        }
    }

    /// Words that start `-` and a digit are operands: for a command whose
    /// options are all letters and whose operands may be negative numbers
    /// (their parsing error is qemu-io's message).
    pub fn negative_numbers(mut self) -> Self {
        self.negative_numbers = true;
        self
    }

    /// The operands, once the options are exhausted.
    pub fn operands(&self) -> &[&'a str] {
        &self.operands
    }

    fn takes_arg(&self, c: char) -> Option<bool> {
        let pos = self.spec.find(c)?;
        Some(self.spec[pos + c.len_utf8()..].starts_with(':'))
    }
}

impl<'a> Iterator for GetOpt<'a> {
    type Item = Opt<'a>;

    fn next(&mut self) -> Option<Opt<'a>> {
        let cmd = self.argv.first().copied().unwrap_or("");
        loop {
            if self.sub == 0 {
                let arg = *self.argv.get(self.idx)?;
                if arg == "--" {
                    self.operands.extend_from_slice(&self.argv[self.idx + 1..]);
                    self.idx = self.argv.len();
                    return None;
                }
                let number =
                    self.negative_numbers && arg[1..].starts_with(|c: char| c.is_ascii_digit());
                if !arg.starts_with('-') || arg == "-" || number {
                    self.operands.push(arg);
                    self.idx += 1;
                    continue;
                }
                self.sub = 1;
            }
            let arg = self.argv[self.idx];
            let c = arg[self.sub..].chars().next()?;
            self.sub += c.len_utf8();
            let at_end = self.sub >= arg.len();
            let finish_word = |s: &mut Self| {
                s.sub = 0;
                s.idx += 1;
            };
            match self.takes_arg(c) {
                None if c == ':' => {}
                None => {
                    if at_end {
                        finish_word(self);
                    }
                    return Some(Opt::Bad(format!("{cmd}: invalid option -- '{c}'")));
                }
                Some(false) => {
                    if at_end {
                        finish_word(self);
                    }
                    return Some(Opt::Flag(c, None));
                }
                Some(true) => {
                    if !at_end {
                        let value = &arg[self.sub..];
                        finish_word(self);
                        return Some(Opt::Flag(c, Some(value)));
                    }
                    finish_word(self);
                    return match self.argv.get(self.idx) {
                        Some(v) => {
                            self.idx += 1;
                            Some(Opt::Flag(c, Some(v)))
                        }
                        None => Some(Opt::Bad(format!(
                            "{cmd}: option requires an argument -- '{c}'"
                        ))),
                    };
                }
            }
            if at_end {
                finish_word(self);
            }
            return Some(Opt::Bad(format!("{cmd}: invalid option -- '{c}'")));
        }
    }
}

/// A number as qemu-io's `cvtnum`, with its error line on failure
/// (printed on stdout by the caller, as qemu-io does).
pub fn cvtnum(arg: &str) -> Result<u64, String> {
    parse_size(arg).map_err(|e| match e {
        SizeError::Invalid => format!(
            "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- {arg}"
        ),
        SizeError::TooLarge => format!("Parsing error: argument too large -- {arg}"),
    })
}

/// C's `strtol(s, &end, 0)` with the whole string consumed; `None` on junk
/// or overflow.
pub fn strtol0(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, h)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// A pattern byte for `-P`: 0..=255 in C notation.
pub fn parse_pattern(arg: &str) -> Result<u8, String> {
    match strtol0(arg) {
        Some(v) if (0..=255).contains(&v) => Ok(v as u8),
        _ => Err(format!("{arg} is not a valid pattern byte")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<'a>(argv: &'a [&'a str], spec: &'static str) -> (Vec<Opt<'a>>, Vec<&'a str>) {
        let mut g = GetOpt::new(argv, spec);
        let opts: Vec<_> = g.by_ref().collect();
        (opts, g.operands().to_vec())
    }

    #[test]
    fn getopt_permutes_and_clusters() {
        let (o, ops) = run(&["read", "-qv", "0", "-P", "0xab", "4k"], "bCl:pP:qs:v");
        assert_eq!(
            o,
            vec![
                Opt::Flag('q', None),
                Opt::Flag('v', None),
                Opt::Flag('P', Some("0xab"))
            ]
        );
        assert_eq!(ops, vec!["0", "4k"]);
        let (o, _) = run(&["read", "-P0xab", "0", "1"], "P:");
        assert_eq!(o, vec![Opt::Flag('P', Some("0xab"))]);
    }

    #[test]
    fn specs_come_from_usage_lines() {
        assert_eq!(
            spec_of("[-Cpqrv] [-P pattern [-s off] [-l len]] off len"),
            "CpqrvP:s:l:"
        );
        assert_eq!(
            spec_of("[-Cfnpqruz] [-P pattern | -s source_file] off len"),
            "CfnpqruzP:s:"
        );
        assert_eq!(spec_of("[(-r|-w)] [-c cache] [-o options]"), "rwc:o:");
        assert_eq!(spec_of("[-j | -t | --blkzone] offset number"), "jt");
        assert_eq!(spec_of("[-j]"), "j");
        assert_eq!(spec_of("offset len [len..]"), "");
        assert_eq!(
            long_options("[-j | -t | --blkzone] offset number").collect::<Vec<_>>(),
            ["--blkzone"]
        );
    }

    #[test]
    fn getopt_errors_and_double_dash() {
        let (o, _) = run(&["r", "0", "-1"], "P:");
        assert_eq!(o, vec![Opt::Bad("r: invalid option -- '1'".into())]);
        let (o, _) = run(&["read", "0", "-P"], "P:");
        assert_eq!(
            o,
            vec![Opt::Bad("read: option requires an argument -- 'P'".into())]
        );
        let (o, ops) = run(&["read", "--", "-1", "0"], "P:");
        assert!(o.is_empty());
        assert_eq!(ops, vec!["-1", "0"]);
    }

    #[test]
    fn patterns_match_qemu_io() {
        assert_eq!(parse_pattern("0x41"), Ok(0x41));
        assert_eq!(parse_pattern("077"), Ok(0o77));
        assert_eq!(parse_pattern("+5"), Ok(5));
        assert_eq!(parse_pattern("-0"), Ok(0));
        assert_eq!(parse_pattern("255"), Ok(255));
        for bad in ["0x", "0x100", "256", "08", "1a", "-1", "abc"] {
            assert_eq!(
                parse_pattern(bad),
                Err(format!("{bad} is not a valid pattern byte"))
            );
        }
    }

    #[test]
    fn breakline_skips_empty_tokens() {
        assert_eq!(breakline("  read  0\t 1 "), vec!["read", "0\t", "1"]);
        assert!(breakline("").is_empty());
    }
}
