//! Size numbers as QEMU reads them (`qemu_strtosz` via qemu-io's `cvtnum`).
//! Also counts as words, singular for one (`plural`).
//!
//! Decimal bytes by default; `0x` hex with no suffix and no fraction; suffixes
//! b k m g t p e in either case (powers of 1024); a decimal fraction needs a
//! suffix that makes it a whole number of bytes, rounded to nearest (`1.5k`).
//! Values above i64::MAX and negative numbers are "too large".

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeError {
    /// Not a number, or a suffix that isn't one (qemu's EINVAL).
    Invalid,
    /// Does not fit, or negative (qemu's ERANGE).
    TooLarge,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeError::Invalid => {
                f.write_str("non-numeric argument, or extraneous/unrecognized suffix")
            }
            SizeError::TooLarge => f.write_str("argument too large"),
        }
    }
}

fn suffix_shift(c: u8) -> Option<u32> {
    match c.to_ascii_lowercase() {
        b'b' => Some(0),
        b'k' => Some(10),
        b'm' => Some(20),
        b'g' => Some(30),
        b't' => Some(40),
        b'p' => Some(50),
        b'e' => Some(60),
        _ => None,
    }
}

/// Parses a size the way qemu-io's `cvtnum` does.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    // Leading white space is skipped, as C's strtoull does (qemu-iotests
    // pass "\t8k"); trailing white space is junk.
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        // qemu's strtou64 calls a negative integer out of range; anything
        // else after a minus sign is not a number at all.
        let digits = &b[1..];
        if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
            return Err(SizeError::TooLarge);
        }
        return Err(SizeError::Invalid);
    }
    if b.first() == Some(&b'+') {
        i = 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &s[int_start..i];

    // Hex: exactly "0x" (after an optional sign), no fraction, no suffix.
    if int_digits == "0" && i < b.len() && (b[i] == b'x' || b[i] == b'X') {
        let hex = &s[i + 1..];
        if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(SizeError::Invalid);
        }
        let v = u64::from_str_radix(hex, 16).map_err(|_| SizeError::TooLarge)?;
        return check_i64(v);
    }

    let mut frac_digits = "";
    if i < b.len() && b[i] == b'.' {
        let f_start = i + 1;
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &s[f_start..i];
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(SizeError::Invalid);
        }
    } else if int_digits.is_empty() {
        return Err(SizeError::Invalid);
    }

    let shift = match b.get(i) {
        Some(&c) => match suffix_shift(c) {
            Some(sh) => {
                i += 1;
                sh
            }
            None => return Err(SizeError::Invalid),
        },
        None => 0,
    };
    if i != b.len() {
        return Err(SizeError::Invalid);
    }

    let int_val: u128 = if int_digits.is_empty() {
        0
    } else {
        match int_digits.parse::<u64>() {
            Ok(v) => v as u128,
            Err(_) => return Err(SizeError::TooLarge),
        }
    };
    // The fraction, rounded to the nearest byte after scaling. Eighteen
    // digits are far below a byte's worth at the largest suffix.
    let fd = &frac_digits[..frac_digits.len().min(18)];
    let (num, den) = if fd.is_empty() {
        (0u128, 1u128)
    } else {
        (fd.parse::<u128>().unwrap_or(0), 10u128.pow(fd.len() as u32))
    };
    if num != 0 && shift == 0 {
        return Err(SizeError::Invalid);
    }
    let mul = 1u128 << shift;
    let frac_bytes = (num * mul * 2 + den) / (den * 2);
    let total = int_val * mul + frac_bytes;
    if total > u64::MAX as u128 {
        return Err(SizeError::TooLarge);
    }
    check_i64(total as u64)
}

fn check_i64(v: u64) -> Result<u64, SizeError> {
    if v > i64::MAX as u64 {
        Err(SizeError::TooLarge)
    } else {
        Ok(v)
    }
}

/// `n` and the noun for it, singular for one: `plural(1, "thread",
/// "threads")` is `1 thread`, `plural(2, ...)` `2 threads`.
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;
    use SizeError::*;

    /// Rows recorded from qemu-io 10.0.2 (`read -- X 0` on a 1 EiB null-co).
    #[test]
    fn matches_qemu_io() {
        let rows: &[(&str, Result<u64, SizeError>)] = &[
            ("1", Ok(1)),
            ("1b", Ok(1)),
            ("1B", Ok(1)),
            ("1k", Ok(1024)),
            ("1K", Ok(1024)),
            ("1.5k", Ok(1536)),
            ("1.k", Ok(1024)),
            (".5k", Ok(512)),
            ("1.5", Err(Invalid)),
            ("0x10", Ok(16)),
            ("0X10", Ok(16)),
            ("0x1e", Ok(30)),
            ("0x", Err(Invalid)),
            ("0x1k", Err(Invalid)),
            ("0x1.8", Err(Invalid)),
            ("0xffffffffffffffff", Err(TooLarge)),
            ("1e", Ok(1 << 60)),
            ("1E", Ok(1 << 60)),
            ("7E", Ok(7 << 60)),
            ("8E", Err(TooLarge)),
            ("16E", Err(TooLarge)),
            ("1e3", Err(Invalid)),
            ("08", Ok(8)),
            ("010", Ok(10)),
            ("-0", Err(TooLarge)),
            ("\t8k", Ok(8192)),
            ("\n512", Ok(512)),
            ("\x0b512", Ok(512)),
            ("\t0x200", Ok(512)),
            ("\t-1", Err(TooLarge)),
            ("8k\t", Err(Invalid)),
            ("-1", Err(TooLarge)),
            ("-1k", Err(Invalid)),
            ("-0x10", Err(Invalid)),
            ("-.5k", Err(Invalid)),
            ("+1", Ok(1)),
            ("++1", Err(Invalid)),
            ("+-1", Err(Invalid)),
            ("1kb", Err(Invalid)),
            ("1kk", Err(Invalid)),
            ("1t", Ok(1 << 40)),
            ("1p", Ok(1 << 50)),
            ("1.9999999b", Err(Invalid)),
            ("12.345M", Ok(12944671)),
            ("1.0000001k", Ok(1024)),
            ("18446744073709551615", Err(TooLarge)),
            ("18446744073709551616", Err(TooLarge)),
            ("9223372036854775807", Ok(i64::MAX as u64)),
            ("0.5", Err(Invalid)),
            ("0.5b", Err(Invalid)),
            ("1.b", Ok(1)),
            ("00x10", Err(Invalid)),
            ("0.0k", Ok(0)),
            ("1.0", Ok(1)),
            ("1.00b", Ok(1)),
            (".", Err(Invalid)),
            (".k", Err(Invalid)),
            ("k", Err(Invalid)),
            ("1.5.5k", Err(Invalid)),
            ("1..5k", Err(Invalid)),
            ("", Err(Invalid)),
        ];
        for (input, want) in rows {
            assert_eq!(parse_size(input), *want, "input {input:?}");
        }
    }
}
