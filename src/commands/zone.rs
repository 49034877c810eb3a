//! The zone family: zone_report, zone_open, zone_close, zone_finish,
//! zone_reset, zone_append. Arguments and output lines follow qemu-io
//! 10.0.2 (values printed in 512-byte sectors), except its defects that
//! README lists: `zone_append` takes one or more lengths with or without
//! `-p`, and an append to a full zone fails as the kernel fails it.
//! Extensions: `zone_append -P pattern`, `-q`, and `-t T -n N` for N appends
//! from T threads at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::args::{GetOpt, Opt, cvtnum};
use super::rw::{bad_option, num, pattern, vector_length};
use super::{Body, Command, Console, Status, usage};
use crate::blocklayer::{BlockBackend, Zone, ZoneOp, strerror};

/// Zones asked of the device at a time, as BLKREPORTZONE is called in batches.
const REPORT_BATCH: u64 = 65536;

/// Most threads `zone_append -t` starts.
const MAX_THREADS: u64 = 256;

macro_rules! mgmt_command {
    ($name:literal, $alt:literal, $oneline:literal, $op:expr) => {
        Command {
            name: $name,
            altname: Some($alt),
            argmin: 2,
            argmax: Some(2),
            args: Some("offset len"),
            oneline: $oneline,
            help: None,
            writes: true,
            body: Body::Io(|blk, con, argv| zone_mgmt_f(blk, con, argv, $op)),
        }
    };
}

pub const COMMANDS: &[Command] = &[
    Command {
        name: "zone_report",
        altname: Some("zrp"),
        argmin: 2,
        argmax: Some(2),
        args: Some("offset number"),
        oneline: "report zone information",
        help: Some(REPORT_HELP),
        writes: false,
        body: Body::Io(zone_report_f),
    },
    mgmt_command!(
        "zone_open",
        "zo",
        "explicit open a range of zones in zone block device",
        ZoneOp::Open
    ),
    mgmt_command!(
        "zone_close",
        "zc",
        "close a range of zones in zone block device",
        ZoneOp::Close
    ),
    mgmt_command!(
        "zone_finish",
        "zf",
        "finish a range of zones in zone block device",
        ZoneOp::Finish
    ),
    mgmt_command!(
        "zone_reset",
        "zrs",
        "reset a zone write pointer in zone block device",
        ZoneOp::Reset
    ),
    Command {
        name: "zone_append",
        altname: Some("zap"),
        argmin: 2,
        argmax: None,
        args: Some("offset len [len..]"),
        oneline: "append write a number of bytes at a specified offset",
        help: Some(APPEND_HELP),
        writes: true,
        body: Body::Io(zone_append_f),
    },
];

/// Appends `0x` and `v` in lower-case hex, as printf's `0x%lx`.
fn push_hex(line: &mut Vec<u8>, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut n = 0;
    let mut v = v;
    loop {
        tmp[n] = DIGITS[(v & 0xf) as usize];
        n += 1;
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    line.extend_from_slice(b"0x");
    line.extend(tmp[..n].iter().rev());
}

/// Appends a small number in decimal.
fn push_dec(line: &mut Vec<u8>, v: u8) {
    if v >= 10 {
        push_dec(line, v / 10);
    }
    line.push(b'0' + v % 10);
}

/// One report line, as qemu-io prints it:
/// `start: 0x80000, len 0x80000, cap 0x80000, wptr 0x80000, zcond:1, [type: 2]`.
/// Written by hand: a report of a million zones spends its time here.
fn push_zone(line: &mut Vec<u8>, z: &Zone) {
    line.extend_from_slice(b"start: ");
    push_hex(line, z.start >> 9);
    line.extend_from_slice(b", len ");
    push_hex(line, z.len >> 9);
    line.extend_from_slice(b", cap ");
    push_hex(line, z.cap >> 9);
    line.extend_from_slice(b", wptr ");
    push_hex(line, z.wp >> 9);
    line.extend_from_slice(b", zcond:");
    push_dec(line, z.cond.as_u8());
    line.extend_from_slice(b", [type: ");
    push_dec(line, z.ztype.as_u8());
    line.extend_from_slice(b"]\n");
}

fn zone_report_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    let Some(mut offset) = num(con, argv[1]) else {
        return Status::Failed;
    };
    let Some(mut left) = num(con, argv[2]) else {
        return Status::Failed;
    };
    if left > u32::MAX as u64 {
        con.say("Number of zones must be less than 2^32");
        return Status::Failed;
    }
    while left > 0 {
        let ask = left.min(REPORT_BATCH);
        let zones = match blk.zone_report(offset, ask as usize) {
            Ok(z) => z,
            Err(e) => {
                con.say(&format!("zone report failed: {}", strerror(&e)));
                return Status::Failed;
            }
        };
        let mut text = Vec::with_capacity(zones.len() * 80);
        for z in &zones {
            push_zone(&mut text, z);
        }
        let _ = con.out().write_all(&text);
        match zones.last() {
            Some(last) if zones.len() as u64 == ask => {
                offset = last.start + last.len;
                left -= ask;
            }
            _ => break,
        }
    }
    Status::Ok
}

fn zone_mgmt_f(blk: &BlockBackend, con: &mut Console, argv: &[&str], op: ZoneOp) -> Status {
    let Some(offset) = num(con, argv[1]) else {
        return Status::Failed;
    };
    let Some(len) = num(con, argv[2]) else {
        return Status::Failed;
    };
    match blk.zone_mgmt(op, offset, len) {
        Ok(()) => Status::Ok,
        Err(e) => {
            if let Some(d) = &e.diag {
                con.warn(&format!("zio: {d}"));
            }
            con.say(&format!(
                "zone {} failed: {}",
                op.name(),
                strerror(&e.error)
            ));
            Status::Failed
        }
    }
}

/// A count option of `zone_append` (`-t`, `-n`).
fn count(con: &mut Console, flag: char, arg: &str, max: u64) -> Option<u64> {
    match cvtnum(arg) {
        Ok(n) if (1..=max).contains(&n) => Some(n),
        _ => {
            con.say(&format!(
                "zone_append: -{flag} takes a number from 1 to {max}, given {arg}"
            ));
            None
        }
    }
}

fn zone_append_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    let (mut show_pos, mut quiet, mut fill) = (false, false, 0xcdu8);
    let (mut threads, mut appends, mut verify) = (None, None, false);
    let mut g = GetOpt::new(argv, "pP:qt:n:V");
    for o in g.by_ref() {
        match o {
            Opt::Flag('p', _) => show_pos = true,
            Opt::Flag('P', Some(v)) => match pattern(con, v) {
                Some(p) => fill = p,
                None => return Status::Failed,
            },
            Opt::Flag('q', _) => quiet = true,
            Opt::Flag('V', _) => verify = true,
            Opt::Flag('t', Some(v)) => match count(con, 't', v, MAX_THREADS) {
                Some(n) => threads = Some(n),
                None => return Status::Failed,
            },
            Opt::Flag('n', Some(v)) => match count(con, 'n', v, u32::MAX as u64) {
                Some(n) => appends = Some(n),
                None => return Status::Failed,
            },
            Opt::Bad(msg) => return bad_option(con, "zone_append", &msg),
            Opt::Flag(..) => return usage(con, "zone_append"),
        }
    }
    let ops = g.operands();
    if ops.len() < 2 {
        return usage(con, "zone_append");
    }
    let Some(offset) = num(con, ops[0]) else {
        return Status::Failed;
    };
    let Some(len) = vector_length(con, &ops[1..]) else {
        return Status::Failed;
    };
    // An append longer than a zone's capacity cannot succeed: answer before
    // allocating its buffer (up to 2 GiB).
    match blk.zone_info() {
        Some(zi) if len > zi.zone_capacity => {
            con.say("zone append failed: Input/output error");
            return Status::Failed;
        }
        None => {
            con.say("zone append failed: Operation not supported");
            return Status::Failed;
        }
        Some(_) => {}
    }
    let data = vec![fill; len as usize];
    if threads.is_none() && appends.is_none() && !verify {
        return match blk.zone_append(offset, &data) {
            Ok(pos) => {
                if show_pos && !quiet {
                    con.say(&format!(
                        "After zap done, the append sector is 0x{:x}",
                        pos >> 9
                    ));
                }
                Status::Ok
            }
            Err(e) => {
                con.say(&format!("zone append failed: {}", strerror(&e)));
                Status::Failed
            }
        };
    }
    let appends = appends.unwrap_or(threads.unwrap_or(1));
    let threads = threads.unwrap_or(1).min(appends);
    let fanout = Fanout {
        offset,
        data: &data,
        threads,
        appends,
        show_pos: show_pos && !quiet,
        quiet,
        verify,
    };
    concurrent_appends(blk, con, &fanout)
}

/// A `zone_append -t/-n` run.
struct Fanout<'a> {
    offset: u64,
    data: &'a [u8],
    threads: u64,
    appends: u64,
    show_pos: bool,
    quiet: bool,
    /// `-V`: stamp each append with its number and check them all after.
    verify: bool,
}

/// The data of append number `seq` under `-V`: its number, repeated.
fn stamped(seq: u64, len: usize) -> Vec<u8> {
    seq.to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// Runs the appends from the threads at once. Prints failures, then (with
/// -p) every position in ascending order, then a count (and with -V what
/// was verified), so the output does not depend on timing.
fn concurrent_appends(blk: &BlockBackend, con: &mut Console, f: &Fanout) -> Status {
    let next = AtomicU64::new(0);
    let wp_before = blk
        .zone_report(f.offset, 1)
        .ok()
        .and_then(|z| z.first().map(|z| z.wp));
    let results: Mutex<Vec<(u64, Result<u64, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..f.threads {
            s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= f.appends {
                        break;
                    }
                    let r = if f.verify {
                        blk.zone_append(f.offset, &stamped(seq, f.data.len()))
                    } else {
                        blk.zone_append(f.offset, f.data)
                    };
                    mine.push((seq, r.map_err(|e| strerror(&e))));
                }
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(mine);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut errors: Vec<&String> = results.iter().filter_map(|r| r.1.as_ref().err()).collect();
    errors.sort();
    for e in &errors {
        con.say(&format!("zone append failed: {e}"));
    }
    let mut landed: Vec<(u64, u64)> = results
        .iter()
        .filter_map(|(seq, r)| r.as_ref().ok().map(|&pos| (pos, *seq)))
        .collect();
    landed.sort_unstable();
    if f.show_pos {
        for (pos, _) in &landed {
            con.say(&format!(
                "After zap done, the append sector is 0x{:x}",
                pos >> 9
            ));
        }
    }
    if !f.quiet {
        con.say(&format!(
            "{} appends from {} threads: {} landed, {} failed",
            f.appends,
            f.threads,
            landed.len(),
            errors.len()
        ));
    }
    let verified = !f.verify || verify_appends(blk, con, f, &landed, wp_before);
    if errors.is_empty() && verified {
        Status::Ok
    } else {
        Status::Failed
    }
}

/// `-V`: every landed append is whole and its own (its stamp reads back),
/// no two overlap, and the write pointer moved by exactly what landed.
fn verify_appends(
    blk: &BlockBackend,
    con: &mut Console,
    f: &Fanout,
    landed: &[(u64, u64)],
    wp_before: Option<u64>,
) -> bool {
    let len = f.data.len() as u64;
    let step = len.div_ceil(512) * 512;
    let mut problems = Vec::new();
    for w in landed.windows(2) {
        if w[1].0 < w[0].0 + step {
            problems.push(format!(
                "appends {} and {} overlap at {}",
                w[0].1, w[1].1, w[1].0
            ));
        }
    }
    let mut buf = vec![0u8; len as usize];
    for &(pos, seq) in landed {
        match blk.read(pos, &mut buf) {
            Ok(()) if buf == stamped(seq, len as usize) => {}
            Ok(()) => problems.push(format!("append {seq} at {pos} does not read back")),
            Err(e) => problems.push(format!("append {seq} at {pos}: {}", strerror(&e))),
        }
    }
    let wp_after = blk
        .zone_report(f.offset, 1)
        .ok()
        .and_then(|z| z.first().map(|z| z.wp));
    let moved = wp_after.zip(wp_before).map(|(a, b)| a - b);
    if moved != Some(landed.len() as u64 * step) {
        problems.push(format!(
            "write pointer moved by {moved:?} bytes, {} landed",
            landed.len() as u64 * step
        ));
    }
    for p in &problems {
        con.say(&format!("zone_append -V: {p}"));
    }
    if problems.is_empty() && !f.quiet {
        con.say(&format!(
            "verified {} appends: distinct, not overlapping, data intact, write pointer +{} bytes",
            landed.len(),
            landed.len() as u64 * step
        ));
    }
    problems.is_empty()
}

const REPORT_HELP: &str = "
 reports the zones of a zoned device, from the zone holding offset

 Example:
 'zone_report 0 10' - reports the first 10 zones

 One line per zone, values in 512-byte sectors:
 start: 0x80000, len 0x80000, cap 0x80000, wptr 0x80000, zcond:1, [type: 2]
 zcond: 0 not write pointer, 1 empty, 2 implicitly open, 3 explicitly open,
 4 closed, 13 read-only, 14 full, 15 offline. type: 1 conventional,
 2 sequential write required.

";

const APPEND_HELP: &str = "
 appends data at the write pointer of the zone starting at offset

 Example:
 'zone_append -p 0 4k' - appends 4 KiB to the first zone and prints the
 sector it landed at

 The lengths are added up into one append; the data is 0xcd unless -P says.
 -p, -- print the sector the data landed at
 -P, -- use a different pattern byte
 -q, -- print nothing on success
 -t, -- run the appends from this many threads at once (with -n)
 -n, -- how many appends to run (with -t); prints a count, and with -p every
        position in ascending order
 -V, -- with -t/-n: stamp every append with its number, then check that each
        landed whole at its own position and the write pointer moved by the
        sum

";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklayer::{ZoneCond, ZoneType};

    #[test]
    fn report_line_matches_qemu_io() {
        let z = Zone {
            start: 0x80000 << 9,
            len: 0x80000 << 9,
            cap: 0x60000 << 9,
            wp: 0x80018 << 9,
            ztype: ZoneType::SeqWriteRequired,
            cond: ZoneCond::Full,
        };
        let mut line = Vec::new();
        push_zone(&mut line, &z);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "start: 0x80000, len 0x80000, cap 0x60000, wptr 0x80018, zcond:14, [type: 2]\n"
        );
        let mut zero = Vec::new();
        push_hex(&mut zero, 0);
        assert_eq!(zero, b"0x0");
    }
}
