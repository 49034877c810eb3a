//! qemu-io's output formats: sizes (`1.500 KiB`), times (`00.00 sec`,
//! `0:00:01.50`), the two-line I/O report and its `-C` CSV form, and the hex
//! dump of `-v`. Pure functions, so each format has a unit test.

use std::io::{self, Write};
use std::time::Duration;

/// A size as qemu-io's `cvtstr` prints it: three decimals in the largest
/// binary unit that fits, `.000` dropped; plain `%f` bytes below 1 KiB.
pub fn cvtstr(value: f64) -> String {
    const UNITS: [(&str, i32); 6] = [
        (" EiB", 60),
        (" PiB", 50),
        (" TiB", 40),
        (" GiB", 30),
        (" MiB", 20),
        (" KiB", 10),
    ];
    let (mut s, suffix) = UNITS
        .iter()
        .find(|(_, shift)| value >= 2f64.powi(*shift))
        .map(|(suffix, shift)| (c_float(value / 2f64.powi(*shift), 3), *suffix))
        .unwrap_or_else(|| (c_float(value, 6), " bytes"));
    if let Some(at) = s.find(".000") {
        s.truncate(at);
    }
    s.push_str(suffix);
    s
}

/// `printf("%.Nf")`, including glibc's spelling of infinities and NaN.
pub fn c_float(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() {
            "-nan".into()
        } else {
            "nan".into()
        };
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    format!("{v:.decimals$}")
}

/// A duration truncated to microseconds, as `gettimeofday` differences are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed {
    pub secs: u64,
    pub usecs: u32,
}

impl From<Duration> for Elapsed {
    /// Rounds down to microseconds, but never to zero: an operation that
    /// finished within a microsecond still took time, and a zero would
    /// print rates as `inf`.
    fn from(d: Duration) -> Self {
        let d = d.max(Duration::from_micros(1));
        Elapsed {
            secs: d.as_secs(),
            usecs: d.subsec_micros(),
        }
    }
}

impl Elapsed {
    fn as_f64(self) -> f64 {
        self.secs as f64 + self.usecs as f64 / 1_000_000.0
    }

    /// `h:mm:ss.cc` (always with `-C`, and from one second on).
    fn clock(self) -> String {
        let cs = (self.usecs as f64 / 1_000_000.0 * 100.0) as u32;
        format!(
            "{}:{:02}:{:02}.{:02}",
            self.secs / 3600,
            self.secs % 3600 / 60,
            self.secs % 60,
            cs
        )
    }

    /// qemu-io's time column: `00.14 sec` under a second, else the clock.
    pub fn timestr(self, csv: bool) -> String {
        if csv || self.secs != 0 {
            self.clock()
        } else {
            format!("{:05.2} sec", self.usecs as f64 / 1_000_000.0)
        }
    }
}

/// The report after a successful read, write or discard.
pub struct IoReport<'a> {
    /// `read`, `wrote` or `discard`.
    pub op: &'a str,
    pub offset: u64,
    /// Bytes asked for.
    pub count: u64,
    /// Bytes done.
    pub total: u64,
    pub ops: u64,
    pub elapsed: Elapsed,
}

impl IoReport<'_> {
    pub fn write_to(&self, out: &mut dyn Write, csv: bool) -> io::Result<()> {
        let t = self.elapsed.as_f64();
        let rate = self.total as f64 / t;
        let ops_rate = self.ops as f64 / t;
        let ts = self.elapsed.timestr(csv);
        if csv {
            writeln!(
                out,
                "{},{},{},{},{}",
                self.total,
                self.ops,
                ts,
                c_float(rate, 3),
                c_float(ops_rate, 3)
            )
        } else {
            writeln!(
                out,
                "{} {}/{} bytes at offset {}",
                self.op, self.total, self.count, self.offset
            )?;
            writeln!(
                out,
                "{}, {} ops; {} ({}/sec and {} ops/sec)",
                cvtstr(self.total as f64),
                self.ops,
                ts,
                cvtstr(rate),
                c_float(ops_rate, 4)
            )
        }
    }
}

/// qemu-io's `-v` hex dump: 16 bytes a line, `%08x` address, ASCII column
/// with `.` for anything not alphanumeric. `base` is the device offset of
/// `buf[0]`, so a dump can be written in pieces.
pub fn dump_buffer(out: &mut dyn Write, base: u64, buf: &[u8]) -> io::Result<()> {
    let mut line = String::with_capacity(80);
    for (i, row) in buf.chunks(16).enumerate() {
        line.clear();
        line.push_str(&format!("{:08x}:  ", base + i as u64 * 16));
        for b in row {
            line.push_str(&format!("{b:02x} "));
        }
        line.push(' ');
        line.extend(row.iter().map(|&b| {
            if b.is_ascii_alphanumeric() {
                b as char
            } else {
                '.'
            }
        }));
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_qemu_io() {
        assert_eq!(cvtstr(4096.0), "4 KiB");
        assert_eq!(cvtstr(1536.0), "1.500 KiB");
        assert_eq!(cvtstr(32.0), "32 bytes");
        assert_eq!(cvtstr(0.0), "0 bytes");
        assert_eq!(cvtstr(50327454.0), "47.996 MiB");
        assert_eq!(cvtstr(67108864.0), "64 MiB");
        assert_eq!(cvtstr(1073741824.0), "1 GiB");
        assert_eq!(cvtstr(1.5), "1.500000 bytes");
        assert_eq!(cvtstr(1000.0 * 1024.0), "1000 KiB");
        assert_eq!(cvtstr(f64::INFINITY), "inf EiB");
    }

    #[test]
    fn times_match_qemu_io() {
        let t = |secs, usecs| Elapsed { secs, usecs };
        assert_eq!(t(0, 1234).timestr(false), "00.00 sec");
        assert_eq!(t(0, 140_000).timestr(false), "00.14 sec");
        assert_eq!(t(1, 500_000).timestr(false), "0:00:01.50");
        assert_eq!(t(3725, 999_999).timestr(false), "1:02:05.99");
        assert_eq!(t(0, 1234).timestr(true), "0:00:00.00");
    }

    #[test]
    fn report_lines() {
        let r = IoReport {
            op: "wrote",
            offset: 0,
            count: 4096,
            total: 4096,
            ops: 1,
            elapsed: Elapsed {
                secs: 0,
                usecs: 1000,
            },
        };
        let mut out = Vec::new();
        r.write_to(&mut out, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "wrote 4096/4096 bytes at offset 0\n4 KiB, 1 ops; 00.00 sec (3.906 MiB/sec and 1000.0000 ops/sec)\n"
        );
        let mut out = Vec::new();
        r.write_to(&mut out, true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "4096,1,0:00:00.00,4096000.000,1000.000\n"
        );
    }

    #[test]
    fn hex_dump_matches_qemu_io() {
        let mut out = Vec::new();
        let mut data = vec![0xabu8; 16];
        data.extend_from_slice(b"AAAz");
        dump_buffer(&mut out, 0x10, &data).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "00000010:  ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab  ................\n\
             00000020:  41 41 41 7a  AAAz\n"
        );
    }
}
