//! The zone family: zone_report, zone_open, zone_close, zone_finish,
//! zone_reset, zone_append. Arguments and output lines follow qemu-io
//! 10.0.2 (values printed in 512-byte sectors), except its defects that
//! README lists: `zone_append` takes one or more lengths with or without
//! `-p`, and an append to a full zone fails as the kernel fails it.
//! Extensions: `zone_append -P pattern`, `-q`, and `-t T -n N` for N appends
//! from T threads at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::args::{Opt, cvtnum};
use super::format::{
    SCHEMA_VERSION, ZoneRecord, bad_count, blkzone_line, cond_name, exact_size, json_line,
    json_pretty, percent, type_name, written,
};
use super::progress::Progress;
use super::rw::{bad_option, num, pattern, vector_length};
use super::{Body, Command, Console, Status, getopt, usage};
use zio_block::units::plural;
use zio_block::{BlockBackend, Zone, ZoneCond, ZoneInfo, ZoneOp, ZoneType, strerror};

/// Zones asked of the device at a time, as BLKREPORTZONE is called in batches.
const REPORT_BATCH: u64 = 65536;

/// Most threads `zone_append -t` starts.
const MAX_THREADS: u64 = 256;

macro_rules! mgmt_command {
    ($name:literal, $alt:literal, $oneline:literal, $op:expr, $help:expr) => {
        Command {
            name: $name,
            altname: Some($alt),
            argmin: 2,
            argmax: Some(2),
            args: Some("offset len"),
            oneline: $oneline,
            help: Some($help),
            writes: true,
            body: Body::Io(|blk, con, argv| zone_mgmt_f(blk, con, argv, $op)),
        }
    };
}

pub const COMMANDS: &[Command] = &[
    Command {
        name: "zone_report",
        altname: Some("zrp"),
        // 2 operands and options: counted by zone_report_f, with the
        // dispatcher's message.
        argmin: 0,
        argmax: None,
        args: Some("[-j | -t | --blkzone] offset number"),
        oneline: "report zone information",
        help: Some(REPORT_HELP),
        writes: false,
        body: Body::Io(zone_report_f),
    },
    mgmt_command!(
        "zone_open",
        "zo",
        "explicit open a range of zones in zone block device",
        ZoneOp::Open,
        "
 explicitly opens the zones of a range (BLKOPENZONE)

 Example:
 'zone_open 256M 256M' - opens the second zone of a 256 MiB-zone device

 offset must be a zone start and len a multiple of the zone size (or reach
 the end of the device). An empty or closed zone needs open (and active)
 resources: with the open limit reached, an implicitly open zone is closed
 to make room; if every open zone was opened explicitly the device answers
 Too many references, and with the active limit reached Value too large.

"
    ),
    mgmt_command!(
        "zone_close",
        "zc",
        "close a range of zones in zone block device",
        ZoneOp::Close,
        "
 closes the open zones of a range (BLKCLOSEZONE)

 Example:
 'zone_close 0 256M' - closes the first zone

 An open zone becomes closed, or empty if nothing was written to it; a
 closed zone stays closed; closing an empty or full zone fails.

"
    ),
    mgmt_command!(
        "zone_finish",
        "zf",
        "finish a range of zones in zone block device",
        ZoneOp::Finish,
        "
 finishes the zones of a range (BLKFINISHZONE)

 Example:
 'zone_finish 0 256M' - makes the first zone full

 The zone becomes full with its write pointer at the zone end (its length,
 not its capacity); an empty or closed zone needs resources as for
 zone_open.

"
    ),
    mgmt_command!(
        "zone_reset",
        "zrs",
        "reset a zone write pointer in zone block device",
        ZoneOp::Reset,
        "
 resets the zones of a range (BLKRESETZONE)

 Examples:
 'zone_reset 0 256M' - empties the first zone
 'zone_reset 0 250G' - resets every sequential zone of a 250 GiB device
 (conventional, read-only and offline zones are skipped)

 Data below the old write pointer is gone: it reads as 0xff.

"
    ),
    Command {
        name: "zone_summary",
        altname: Some("zs"),
        // -j and no operands: counted by zone_summary_f, as info counts.
        argmin: 0,
        argmax: None,
        args: Some("[-j]"),
        oneline: "count the zones by condition, open/active zones and capacity used",
        help: Some(SUMMARY_HELP),
        writes: false,
        body: Body::Io(zone_summary_f),
    },
    Command {
        name: "zone_append",
        altname: Some("zap"),
        argmin: 2,
        argmax: None,
        args: Some("[-pqV] [-P pattern] [-t threads] [-n appends] offset len [len..]"),
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
    push_hex(line, z.wp_sectors());
    line.extend_from_slice(b", zcond:");
    push_dec(line, z.cond.as_u8());
    line.extend_from_slice(b", [type: ");
    push_dec(line, z.ztype.as_u8());
    line.extend_from_slice(b"]\n");
}

/// How `zone_report` prints its zones.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReportMode {
    /// qemu-io's lines.
    Plain,
    /// `-j`: a JSON array, one zone object per line.
    Json,
    /// `-t`: a table.
    Table,
    /// `--blkzone`: util-linux `blkzone report` lines.
    Blkzone,
}

fn zone_report_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    // qemu-io's zone_report takes no options; zio's (-j, -t, --blkzone) may
    // come anywhere, as getopt permutes them. A word that is a negative
    // number is an operand, so `zrp -1 1` keeps qemu-io's parsing error.
    let end = argv.iter().position(|w| *w == "--").unwrap_or(argv.len());
    let blkzone = argv[..end].contains(&"--blkzone");
    let words: Vec<&str> = argv
        .iter()
        .enumerate()
        .filter(|&(i, w)| i >= end || *w != "--blkzone")
        .map(|(_, w)| *w)
        .collect();
    let mut mode = if blkzone {
        ReportMode::Blkzone
    } else {
        ReportMode::Plain
    };
    let mut g = getopt(&words).negative_numbers();
    for o in g.by_ref() {
        match o {
            Opt::Flag('j', _) => mode = ReportMode::Json,
            Opt::Flag('t', _) => mode = ReportMode::Table,
            Opt::Bad(msg) => return bad_option(con, "zone_report", &msg),
            Opt::Flag(..) => return usage(con, "zone_report"),
        }
    }
    let ops = g.operands();
    if ops.len() != 2 {
        bad_count(con, argv[0], ops.len(), 2);
        return Status::Failed;
    }
    let Some(mut offset) = num(con, ops[0]) else {
        return Status::Failed;
    };
    let Some(mut left) = num(con, ops[1]) else {
        return Status::Failed;
    };
    if left > u32::MAX as u64 {
        con.say("Number of zones must be less than 2^32");
        return Status::Failed;
    }
    let mut out = ReportOut::new(mode, blk);
    let bar = Progress::counting("zone_report", left, "zones");
    while left > 0 {
        let ask = left.min(REPORT_BATCH);
        let zones = match blk.zone_report(offset, ask as usize) {
            Ok(z) => z,
            Err(e) => {
                out.abort(con);
                con.say(&format!("zone report failed: {}", strerror(&e)));
                return Status::Failed;
            }
        };
        let more = zones.len() as u64 == ask && left > ask;
        out.batch(con, &zones, !more);
        bar.inc(zones.len() as u64);
        // Nobody reads the rest (`zrp 0 16M | head`), or Ctrl-C: stop asking.
        if con.stop_early() {
            break;
        }
        match zones.last() {
            Some(last) if more => {
                offset = last.start + last.len;
                left -= ask;
            }
            _ => break,
        }
    }
    bar.finish();
    out.finish(con);
    Status::Ok
}

/// The output of one `zone_report`, fed batch by batch and printed as it
/// comes: nothing of a report is kept beyond the batch at hand.
struct ReportOut {
    mode: ReportMode,
    zone_size: u64,
    /// `-j`: zones printed so far (the array is opened with the first).
    printed: u64,
    /// `-t`: the column widths, fixed by the first batch; `None` before.
    widths: Option<Widths>,
    /// `-t`: the widest cell each column can have on this device, for a
    /// report longer than one batch.
    bound: Widths,
}

impl ReportOut {
    fn new(mode: ReportMode, blk: &BlockBackend) -> Self {
        let zone_size = blk.zone_info().map_or(0, |zi| zi.zone_size);
        let bound = if mode == ReportMode::Table {
            geometry_widths(blk)
        } else {
            header_widths()
        };
        ReportOut {
            mode,
            zone_size,
            printed: 0,
            widths: None,
            bound,
        }
    }

    /// Prints one batch; `last`: no batch follows.
    fn batch(&mut self, con: &mut Console, zones: &[Zone], last: bool) {
        let mut text = Vec::with_capacity(zones.len() * 100);
        match self.mode {
            ReportMode::Plain => {
                for z in zones {
                    push_zone(&mut text, z);
                }
            }
            ReportMode::Blkzone => {
                for z in zones {
                    text.extend_from_slice(blkzone_line(z).as_bytes());
                    text.push(b'\n');
                }
            }
            ReportMode::Json => {
                for z in zones {
                    text.extend_from_slice(if self.printed == 0 { b"[\n" } else { b",\n" });
                    text.extend_from_slice(json_line(&ZoneRecord::from(z)).as_bytes());
                    self.printed += 1;
                }
            }
            ReportMode::Table => {
                let widths = match self.widths {
                    Some(w) => w,
                    None => {
                        // A report of one batch is laid out from its rows;
                        // a longer one from what the device can hold, as
                        // its later rows are not known yet.
                        let mut w = header_widths();
                        if !last {
                            widen(&mut w, &self.bound);
                        }
                        // Rows are formatted twice here rather than kept.
                        for z in zones {
                            widen(&mut w, &row_widths(&table_row(z, self.zone_size)));
                        }
                        table_head(&mut text, &w);
                        self.widths = Some(w);
                        w
                    }
                };
                for z in zones {
                    table_line(&mut text, &widths, &table_row(z, self.zone_size));
                }
            }
        }
        let _ = con.out().write_all(&text);
    }

    /// Before an error line: closes a JSON array or a table already begun
    /// (a failing first batch prints only the error, as qemu-io).
    fn abort(&mut self, con: &mut Console) {
        if self.mode == ReportMode::Json && self.printed > 0 {
            con.say("\n]");
        }
        if let Some(w) = self.widths.take() {
            let mut text = Vec::new();
            table_rule(&mut text, &w, b'-');
            let _ = con.out().write_all(&text);
        }
    }

    /// Closes the JSON array or the table.
    fn finish(&mut self, con: &mut Console) {
        match self.mode {
            ReportMode::Json if self.printed == 0 => con.say("[]"),
            ReportMode::Json => con.say("\n]"),
            ReportMode::Table => {
                let mut text = Vec::new();
                let w = match self.widths.take() {
                    Some(w) => w,
                    None => {
                        let w = header_widths();
                        table_head(&mut text, &w);
                        w
                    }
                };
                table_rule(&mut text, &w, b'-');
                let _ = con.out().write_all(&text);
            }
            _ => {}
        }
    }
}

/// The `-t` table's columns; the first [`RIGHT_ALIGNED`] are right-aligned.
const TABLE_HEADER: [&str; 8] = [
    "zone",
    "start",
    "length",
    "capacity",
    "wp",
    "used",
    "type",
    "condition",
];
const RIGHT_ALIGNED: usize = 6;

/// Widths of the table's columns, in characters (every cell is ASCII).
type Widths = [usize; 8];

/// One row's cells.
type Row = [String; 8];

fn header_widths() -> Widths {
    TABLE_HEADER.map(str::len)
}

fn row_widths(r: &Row) -> Widths {
    std::array::from_fn(|i| r[i].len())
}

fn widen(w: &mut Widths, by: &Widths) {
    for (a, b) in w.iter_mut().zip(by) {
        *a = (*a).max(*b);
    }
}

/// The widest cell each column can hold on `blk`'s device, from its
/// geometry alone: zone numbers below the zone count, starts that are
/// multiples of the zone size below the device size, the zone size or the
/// last zone's length, the capacity, write pointers in sectors up to the
/// zone size, `100.00%`, and the type and condition names the device can
/// report (the conventional ones only with conventional zones).
/// A cell wider than this (a device whose zones differ from its geometry)
/// is printed whole, out of line.
fn geometry_widths(blk: &BlockBackend) -> Widths {
    let mut w = header_widths();
    let (Some(zi), Ok(size)) = (blk.zone_info(), blk.length()) else {
        return w;
    };
    let zs = zi.zone_size.max(1);
    let nr = size.div_ceil(zs).max(zi.nr_zones).max(1);
    let last_start = (nr - 1).saturating_mul(zs);
    let last_len = size.saturating_sub(last_start).min(zs);
    let types: &[ZoneType] = if zi.nr_conv > 0 {
        &[ZoneType::Conventional, ZoneType::SeqWriteRequired]
    } else {
        &[ZoneType::SeqWriteRequired]
    };
    let conds = [
        ZoneCond::NotWp,
        ZoneCond::Empty,
        ZoneCond::ImplicitOpen,
        ZoneCond::ExplicitOpen,
        ZoneCond::Closed,
        ZoneCond::ReadOnly,
        ZoneCond::Full,
        ZoneCond::Offline,
    ];
    let cells = [
        (nr - 1).to_string().len(),
        size_width(last_start, zs),
        exact_size(zs).len().max(exact_size(last_len).len()),
        capacity_width(&zi, last_len),
        size_width(zs, 512),
        "100.00%".len(),
        types.iter().map(|&t| type_name(t).len()).max().unwrap_or(0),
        conds
            .iter()
            .filter(|&&c| c != ZoneCond::NotWp || zi.nr_conv > 0)
            .map(|&c| cond_name(c).len())
            .max()
            .unwrap_or(0),
    ];
    widen(&mut w, &cells);
    w
}

/// The widest capacity cell: the device's zone capacity (less in a short
/// last zone); a conventional zone's capacity is its length.
fn capacity_width(zi: &ZoneInfo, last_len: u64) -> usize {
    let mut caps = vec![zi.zone_capacity, zi.zone_capacity.min(last_len)];
    if zi.nr_conv > 0 {
        caps.extend([zi.zone_size, last_len]);
    }
    caps.into_iter()
        .map(|c| exact_size(c).len())
        .max()
        .unwrap_or(1)
}

/// The widest [`exact_size`] of a multiple of `granularity` up to `max`:
/// every such value is a whole number of the largest unit dividing
/// `granularity`, so it has at most as many digits as `max` in that unit.
fn size_width(max: u64, granularity: u64) -> usize {
    const UNITS: [(usize, u32); 4] = [(4, 40), (4, 30), (4, 20), (4, 10)];
    let (suffix, shift) = UNITS
        .into_iter()
        .find(|&(_, shift)| granularity.is_multiple_of(1 << shift))
        .unwrap_or((2, 0));
    ((max >> shift).to_string().len() + suffix).max(1)
}

/// The top border, the header and the line under it
/// (comfy-table's ASCII_FULL_CONDENSED).
fn table_head(text: &mut Vec<u8>, w: &Widths) {
    table_rule(text, w, b'-');
    table_line(text, w, &TABLE_HEADER.map(String::from));
    let inner: usize = w.iter().map(|n| n + 3).sum::<usize>() - 1;
    text.push(b'+');
    text.resize(text.len() + inner, b'=');
    text.extend_from_slice(b"+\n");
}

/// `+------+---...+`, or with `=`.
fn table_rule(text: &mut Vec<u8>, w: &Widths, fill: u8) {
    text.push(b'+');
    for &n in w {
        text.resize(text.len() + n + 2, fill);
        text.push(b'+');
    }
    text.push(b'\n');
}

/// `| cell | cell |`, padded to the widths (a cell wider than its column
/// is printed whole).
fn table_line(text: &mut Vec<u8>, w: &Widths, cells: &Row) {
    text.push(b'|');
    for (i, (cell, &n)) in cells.iter().zip(w).enumerate() {
        let pad = n.saturating_sub(cell.len());
        text.push(b' ');
        if i < RIGHT_ALIGNED {
            text.resize(text.len() + pad, b' ');
            text.extend_from_slice(cell.as_bytes());
        } else {
            text.extend_from_slice(cell.as_bytes());
            text.resize(text.len() + pad, b' ');
        }
        text.extend_from_slice(b" |");
    }
    text.push(b'\n');
}

/// One zone's row: number, sizes exactly in binary units, the write
/// pointer relative to the zone start and the share of the capacity below
/// it (`-` where there is no valid write pointer).
fn table_row(z: &Zone, zone_size: u64) -> Row {
    let number = z
        .start
        .checked_div(zone_size)
        .map_or_else(|| "-".into(), |n| n.to_string());
    let (wp, used) = match written(z) {
        Some(w) => (
            exact_size(z.wp - z.start),
            format!("{:.2}%", percent(w, z.cap)),
        ),
        None => ("-".into(), "-".into()),
    };
    [
        number,
        exact_size(z.start),
        exact_size(z.len),
        exact_size(z.cap),
        wp,
        used,
        type_name(z.ztype).into(),
        cond_name(z.cond).into(),
    ]
}

/// `zone_summary -j` (schema version [`SCHEMA_VERSION`]).
#[derive(Serialize, Default)]
struct Summary {
    version: u32,
    zones: u64,
    zone_size: u64,
    conditions: Conditions,
    open: u64,
    /// 0: no limit.
    max_open: u64,
    active: u64,
    /// 0: no limit.
    max_active: u64,
    capacity_used: u64,
    capacity_total: u64,
    used_percent: f64,
    /// The kernel series the device answers as (`info`'s `kernel:`).
    kernel: String,
    /// The device family it answers as (`info`'s `device:`).
    device: &'static str,
}

#[derive(Serialize, Default)]
struct Conditions {
    empty: u64,
    implicit_open: u64,
    explicit_open: u64,
    closed: u64,
    full: u64,
    read_only: u64,
    offline: u64,
    conventional: u64,
}

impl Summary {
    fn add(&mut self, z: &Zone) {
        self.zones += 1;
        let c = &mut self.conditions;
        match z.cond {
            ZoneCond::NotWp => c.conventional += 1,
            ZoneCond::Empty => c.empty += 1,
            ZoneCond::ImplicitOpen => c.implicit_open += 1,
            ZoneCond::ExplicitOpen => c.explicit_open += 1,
            ZoneCond::Closed => c.closed += 1,
            ZoneCond::ReadOnly => c.read_only += 1,
            ZoneCond::Full => c.full += 1,
            ZoneCond::Offline => c.offline += 1,
        }
        self.open += z.cond.is_open() as u64;
        self.active += z.cond.is_active() as u64;
        if z.ztype != ZoneType::Conventional {
            self.capacity_total += z.cap;
            self.capacity_used += written(z).unwrap_or(0);
        }
    }

    fn lines(&self) -> Vec<String> {
        let c = &self.conditions;
        let limit = |n: u64, max: u64| {
            if max == 0 {
                format!("{n} (no limit)")
            } else {
                format!("{n} of {max}")
            }
        };
        vec![
            format!("zones: {}", self.zones),
            format!("empty: {}", c.empty),
            format!("implicitly open: {}", c.implicit_open),
            format!("explicitly open: {}", c.explicit_open),
            format!("closed: {}", c.closed),
            format!("full: {}", c.full),
            format!("read-only: {}", c.read_only),
            format!("offline: {}", c.offline),
            format!("conventional: {}", c.conventional),
            format!("open: {}", limit(self.open, self.max_open)),
            format!("active: {}", limit(self.active, self.max_active)),
            format!(
                "capacity used: {}/{} bytes ({:.2}%)",
                self.capacity_used, self.capacity_total, self.used_percent
            ),
            format!("kernel: {}", self.kernel),
            format!("device: {}", self.device),
        ]
    }
}

fn zone_summary_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    let mut json = false;
    let mut g = getopt(argv);
    for o in g.by_ref() {
        match o {
            Opt::Flag('j', _) => json = true,
            Opt::Bad(msg) => return bad_option(con, "zone_summary", &msg),
            Opt::Flag(..) => return usage(con, "zone_summary"),
        }
    }
    if !g.operands().is_empty() {
        bad_count(con, argv[0], g.operands().len(), 0);
        return Status::Failed;
    }
    let Some(zi) = blk.zone_info() else {
        con.say("zone summary failed: Operation not supported");
        return Status::Failed;
    };
    let mut s = Summary {
        version: SCHEMA_VERSION,
        zone_size: zi.zone_size,
        max_open: zi.max_open,
        max_active: zi.max_active,
        kernel: zi.kernel.to_string(),
        device: zi.device,
        ..Summary::default()
    };
    let mut offset = 0;
    let bar = Progress::counting("zone_summary", zi.nr_zones, "zones");
    loop {
        let zones = match blk.zone_report(offset, REPORT_BATCH as usize) {
            Ok(z) => z,
            Err(e) => {
                con.say(&format!("zone summary failed: {}", strerror(&e)));
                return Status::Failed;
            }
        };
        for z in &zones {
            s.add(z);
        }
        bar.inc(zones.len() as u64);
        if con.interrupt.is_set() {
            // Ctrl-C: no summary of part of the device.
            return Status::Failed;
        }
        match zones.last() {
            Some(last) if zones.len() as u64 == REPORT_BATCH => offset = last.start + last.len,
            _ => break,
        }
    }
    s.used_percent = percent(s.capacity_used, s.capacity_total);
    if json {
        con.say(&json_pretty(&s));
    } else {
        for l in s.lines() {
            con.say(&l);
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
    // A spinner while the device works (a reset of every zone can take a
    // while); shown only after a second at a terminal.
    let spinner = Progress::new(&format!("zone_{}", op.name()), None);
    let r = blk.zone_mgmt(op, offset, len);
    spinner.finish();
    match r {
        Ok(()) => Status::Ok,
        Err(e) => {
            if let Some(d) = &e.diag {
                con.warn(&format!("{}: {d}", con.prog));
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
    let mut g = getopt(argv);
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
    // Whether the append fits is the device's to answer; only what the
    // device would refuse before looking at any zone (not zoned, a range
    // past its end) is asked first, so that a huge append to a small
    // device fails before its buffer (up to 2 GiB) is allocated.
    let Some(zi) = blk.zone_info() else {
        con.say("zone append failed: Operation not supported");
        return Status::Failed;
    };
    if let Err(e) = blk.check_request(offset, len) {
        con.say(&format!("zone append failed: {}", strerror(&e)));
        return Status::Failed;
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
        step: append_step(len, zi.write_granularity),
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
    /// How far one append moves the write pointer.
    step: u64,
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

/// How far an append of `len` bytes moves the write pointer: `len` padded
/// to the device's write granularity (its logical block size; a sector at
/// least).
fn append_step(len: u64, write_granularity: u64) -> u64 {
    let g = write_granularity.max(512);
    len.div_ceil(g) * g
}

/// What one thread of a run saw: counts, the distinct errors with how
/// often each came, and (only with -p or -V, which print or check them)
/// where its appends landed.
#[derive(Default)]
struct Tally {
    landed: u64,
    /// `(strerror, count)`: a handful at most.
    errors: Vec<(String, u64)>,
    /// `(position, append number)` of each landed append, with -p or -V.
    positions: Vec<(u64, u64)>,
}

impl Tally {
    fn failed(&mut self, e: String, n: u64) {
        match self.errors.iter_mut().find(|(m, _)| *m == e) {
            Some((_, c)) => *c += n,
            None => self.errors.push((e, n)),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.landed += other.landed;
        for (e, n) in other.errors {
            self.failed(e, n);
        }
        self.positions.extend(other.positions);
    }
}

/// The line for `count` failed appends of `appends` with the same error:
/// qemu-io's `zone append failed: <error>` for one, with the count for more.
fn failure_line(error: &str, count: u64, appends: u64) -> String {
    if count == 1 {
        format!("zone append failed: {error}")
    } else {
        format!("zone append failed: {error} ({count} of {appends} appends)")
    }
}

/// Runs the appends from the threads at once. Prints each distinct failure
/// once with its count, then (with -p) every position in ascending order,
/// then a count (and with -V what was verified), so the output does not
/// depend on timing. Without -p and -V the memory used does not grow with
/// the number of appends.
fn concurrent_appends(blk: &BlockBackend, con: &mut Console, f: &Fanout) -> Status {
    let next = AtomicU64::new(0);
    let wp_before = blk
        .zone_report(f.offset, 1)
        .ok()
        .and_then(|z| z.first().map(|z| z.wp));
    let keep_positions = f.show_pos || f.verify;
    let total: Mutex<Tally> = Mutex::new(Tally::default());
    let bar = Progress::counting("zone_append", f.appends, "appends");
    let interrupt = &con.interrupt;
    std::thread::scope(|s| {
        for _ in 0..f.threads {
            s.spawn(|| {
                let mut mine = Tally::default();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= f.appends || interrupt.is_set() {
                        break;
                    }
                    let r = if f.verify {
                        blk.zone_append(f.offset, &stamped(seq, f.data.len()))
                    } else {
                        blk.zone_append(f.offset, f.data)
                    };
                    match r {
                        Ok(pos) => {
                            mine.landed += 1;
                            if keep_positions {
                                mine.positions.push((pos, seq));
                            }
                        }
                        Err(e) => mine.failed(strerror(&e), 1),
                    }
                    bar.inc(1);
                }
                total.lock().unwrap_or_else(|p| p.into_inner()).merge(mine);
            });
        }
    });
    bar.finish();
    if con.interrupt.is_set() {
        // Ctrl-C: the appends that landed stay; no tally of a cut run.
        return Status::Failed;
    }
    let mut total = total.into_inner().unwrap_or_else(|p| p.into_inner());
    total.errors.sort();
    let failed: u64 = total.errors.iter().map(|(_, n)| n).sum();
    for (e, n) in &total.errors {
        con.say(&failure_line(e, *n, f.appends));
    }
    let landed = &mut total.positions;
    landed.sort_unstable();
    if f.show_pos {
        for (pos, _) in landed.iter() {
            if con.stop_early() {
                break;
            }
            con.say(&format!(
                "After zap done, the append sector is 0x{:x}",
                pos >> 9
            ));
        }
    }
    if !f.quiet {
        con.say(&format!(
            "{} from {}: {} landed, {failed} failed",
            plural(f.appends, "append", "appends"),
            plural(f.threads, "thread", "threads"),
            total.landed,
        ));
    }
    let verified = !f.verify || verify_appends(blk, con, f, landed, wp_before);
    if failed == 0 && verified {
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
    let step = f.step;
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
            "verified {}: distinct, not overlapping, data intact, write pointer +{} bytes",
            plural(landed.len() as u64, "append", "appends"),
            landed.len() as u64 * step
        ));
    }
    problems.is_empty()
}

const REPORT_HELP: &str = "
 reports the zones of a zoned device, from the zone holding offset

 Example:
 'zone_report 0 10' - reports the first 10 zones
 'zone_report -j 0 10' - the same zones as a JSON array
 'zone_report -t 0 10' - the same zones as a table
 'zone_report --blkzone 0 10' - the same zones as blkzone report prints them

 One line per zone, values in 512-byte sectors:
 start: 0x80000, len 0x80000, cap 0x80000, wptr 0x80000, zcond:1, [type: 2]
 zcond: 0 not write pointer, 1 empty, 2 implicitly open, 3 explicitly open,
 4 closed, 13 read-only, 14 full, 15 offline. type: 1 conventional,
 2 sequential write required.

 zio's options (anywhere on the line; see docs/report-formats.md):
 -j, -- JSON: an array, one object per zone and line, values in bytes and
        sectors, with type and condition numbers and names
 -t, -- a table: zone number, start, length, capacity, write pointer from
        the zone start, % of the capacity used, type, condition
 --blkzone, -- the lines of util-linux 'blkzone report' (values in sectors,
        write pointer relative to the zone start)

";

const SUMMARY_HELP: &str = "
 summarizes every zone of a zoned device

 Example:
 'zone_summary' - counts and limits in plain lines
 'zone_summary -j' - the same as one JSON object

 Prints the number of zones in each condition (empty, implicitly open,
 explicitly open, closed, full, read-only, offline, conventional), the open
 and active zones against the device's limits ('open: 2 of 4', or
 '(no limit)'), and the capacity used: the bytes below the write pointers
 of the sequential zones over their total capacity, in percent.
 -j, -- print JSON (schema in docs/report-formats.md)

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
    use zio_block::{ZoneCond, ZoneType};

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

    #[test]
    fn table_lines_are_padded_and_aligned() {
        let z = Zone {
            start: 8 << 20,
            len: 4 << 20,
            cap: 3 << 20,
            wp: (8 << 20) + 4096,
            ztype: ZoneType::SeqWriteRequired,
            cond: ZoneCond::ImplicitOpen,
        };
        let row = table_row(&z, 4 << 20);
        let mut w = header_widths();
        widen(&mut w, &row_widths(&row));
        let mut text = Vec::new();
        table_head(&mut text, &w);
        table_line(&mut text, &w, &row);
        table_rule(&mut text, &w, b'-');
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "+------+-------+--------+----------+-------+-------+--------------------+---------------+\n\
             | zone | start | length | capacity |    wp |  used | type               | condition     |\n\
             +=======================================================================================+\n\
             |    2 | 8 MiB |  4 MiB |    3 MiB | 4 KiB | 0.13% | seq-write-required | implicit-open |\n\
             +------+-------+--------+----------+-------+-------+--------------------+---------------+\n"
        );
    }

    #[test]
    fn size_widths_bound_every_multiple() {
        for (max, gran) in [
            (1u64 << 40, 1u64 << 20),
            (262144 << 10, 4096),
            (4 << 20, 512),
        ] {
            let widest = (0..=max / gran)
                .step_by(((max / gran) / 5000).max(1) as usize)
                .map(|k| exact_size(k * gran).len())
                .max()
                .unwrap();
            assert!(size_width(max, gran) >= widest, "{max} {gran}");
        }
        assert_eq!(size_width(4 << 20, 512), "4194304 B".len());
        assert_eq!(size_width(65535 << 20, 1 << 20), "65535 MiB".len());
    }

    #[test]
    fn appends_pad_to_the_write_granularity() {
        assert_eq!(append_step(1536, 512), 1536);
        assert_eq!(append_step(1536, 4096), 4096);
        assert_eq!(append_step(4097, 4096), 8192);
        assert_eq!(append_step(100, 0), 512);
    }

    #[test]
    fn failures_are_counted_once_per_error() {
        assert_eq!(
            failure_line("Input/output error", 1, 10),
            "zone append failed: Input/output error"
        );
        assert_eq!(
            failure_line("Input/output error", 3, 10),
            "zone append failed: Input/output error (3 of 10 appends)"
        );
        let mut t = Tally::default();
        t.failed("b".into(), 1);
        let mut u = Tally::default();
        u.failed("a".into(), 2);
        u.failed("b".into(), 1);
        t.merge(u);
        t.errors.sort();
        assert_eq!(t.errors, vec![("a".into(), 2), ("b".into(), 2)]);
    }
}
