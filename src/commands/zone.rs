//! The zone family: zone_report, zone_open, zone_close, zone_finish,
//! zone_reset, zone_append. Arguments and output lines follow qemu-io
//! 10.0.2 (values printed in 512-byte sectors), except its defects that
//! README lists: `zone_append` takes one or more lengths with or without
//! `-p`, and an append to a full zone fails as the kernel fails it.
//! Extensions: `zone_append -P pattern`, `-q`, and `-t T -n N` for N appends
//! from T threads at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use serde::Serialize;

use super::args::{GetOpt, Opt, cvtnum};
use super::format::{
    SCHEMA_VERSION, ZoneRecord, bad_count, blkzone_line, cond_name, exact_size, json_line,
    json_pretty, percent, type_name, written,
};
use super::progress::Progress;
use super::rw::{bad_option, num, pattern, vector_length};
use super::{Body, Command, Console, Status, usage};
use zio_block::{BlockBackend, Zone, ZoneCond, ZoneOp, ZoneType, strerror};

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
        // 2 operands, or a flag and 2: counted by zone_report_f, with the
        // dispatcher's message.
        argmin: 0,
        argmax: None,
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
        argmin: 0,
        argmax: Some(1),
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
    // qemu-io's zone_report takes no options: only a first word that is
    // exactly one of zio's flags is one, so every option-less call keeps
    // qemu-io's messages (`zrp -1 1` is a number that does not parse).
    let (mode, ops) = match argv.get(1).copied() {
        Some("-j") => (ReportMode::Json, &argv[2..]),
        Some("-t") => (ReportMode::Table, &argv[2..]),
        Some("--blkzone") => (ReportMode::Blkzone, &argv[2..]),
        _ => (ReportMode::Plain, &argv[1..]),
    };
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
    let zone_size = blk.zone_info().map_or(0, |zi| zi.zone_size);
    let mut out = ReportOut::new(mode, zone_size);
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
        out.batch(con, &zones);
        bar.inc(zones.len() as u64);
        match zones.last() {
            Some(last) if zones.len() as u64 == ask => {
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

/// The output of one `zone_report`, fed batch by batch.
struct ReportOut {
    mode: ReportMode,
    zone_size: u64,
    /// `-j`: zones printed so far (the array is opened with the first).
    printed: u64,
    /// `-t`: the rows, printed at the end.
    table: Option<Table>,
}

impl ReportOut {
    fn new(mode: ReportMode, zone_size: u64) -> Self {
        ReportOut {
            mode,
            zone_size,
            printed: 0,
            table: None,
        }
    }

    fn batch(&mut self, con: &mut Console, zones: &[Zone]) {
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
                let table = self.table.get_or_insert_with(report_table);
                for z in zones {
                    table.add_row(table_row(z, self.zone_size));
                }
            }
        }
        let _ = con.out().write_all(&text);
    }

    /// Before an error line: closes a JSON array already begun, drops a
    /// table (so a failing first batch prints only the error, as qemu-io).
    fn abort(&mut self, con: &mut Console) {
        if self.mode == ReportMode::Json && self.printed > 0 {
            con.say("\n]");
        }
        self.table = None;
    }

    /// Closes the JSON array, prints the table.
    fn finish(&mut self, con: &mut Console) {
        match self.mode {
            ReportMode::Json if self.printed == 0 => con.say("[]"),
            ReportMode::Json => con.say("\n]"),
            ReportMode::Table => {
                let table = self.table.take().unwrap_or_else(report_table);
                con.say(&table.to_string());
            }
            _ => {}
        }
    }
}

/// The `-t` table: ASCII, never wrapped or sized to a terminal, so its
/// lines are the same everywhere.
fn report_table() -> Table {
    let mut t = Table::new();
    t.load_style(presets::ASCII_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .force_no_tty()
        .set_header(vec![
            "zone",
            "start",
            "length",
            "capacity",
            "wp",
            "used",
            "type",
            "condition",
        ]);
    for i in 0..6 {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// One zone's row: number, sizes exactly in binary units, the write
/// pointer relative to the zone start and the share of the capacity below
/// it (`-` where there is no valid write pointer).
fn table_row(z: &Zone, zone_size: u64) -> Vec<Cell> {
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
    vec![
        Cell::new(number),
        Cell::new(exact_size(z.start)),
        Cell::new(exact_size(z.len)),
        Cell::new(exact_size(z.cap)),
        Cell::new(wp),
        Cell::new(used),
        Cell::new(type_name(z.ztype)),
        Cell::new(cond_name(z.cond)),
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
        ]
    }
}

fn zone_summary_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    let mut json = false;
    let mut g = GetOpt::new(argv, "j");
    for o in g.by_ref() {
        match o {
            Opt::Flag('j', _) => json = true,
            Opt::Bad(msg) => return bad_option(con, "zone_summary", &msg),
            Opt::Flag(..) => return usage(con, "zone_summary"),
        }
    }
    if !g.operands().is_empty() {
        return usage(con, "zone_summary");
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
    let bar = Progress::counting("zone_append", f.appends, "appends");
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
                    bar.inc(1);
                }
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(mine);
            });
        }
    });
    bar.finish();
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
 'zone_report -j 0 10' - the same zones as a JSON array
 'zone_report -t 0 10' - the same zones as a table
 'zone_report --blkzone 0 10' - the same zones as blkzone report prints them

 One line per zone, values in 512-byte sectors:
 start: 0x80000, len 0x80000, cap 0x80000, wptr 0x80000, zcond:1, [type: 2]
 zcond: 0 not write pointer, 1 empty, 2 implicitly open, 3 explicitly open,
 4 closed, 13 read-only, 14 full, 15 offline. type: 1 conventional,
 2 sequential write required.

 One flag may come first (zio's extensions; see docs/report-formats.md):
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
}
