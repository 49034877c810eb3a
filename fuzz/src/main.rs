//! `zio-fuzz`: a coverage-less mutational fuzzer for zio's parsers, on
//! stable Rust (no libFuzzer).
//!
//! ```text
//! zio-fuzz TARGET [--runs N] [--seed S] [--max-len L] [--jobs J]
//! ```
//!
//! Targets:
//! - `cmdline`: command lines into `Shell::run_line` on an in-memory zoned
//!   device (recreated every few thousand runs), output to a sink.
//! - `image-opts`: option strings into `open_image` (`--image-opts`).
//! - `zoned-header`: mutated zoned image headers and zone tables, opened
//!   with `zoned::open_over` over a `NullNode` (and now and then from a
//!   temp file through `open_image`).
//!
//! Inputs are generated from dictionaries (command names, flags, numbers in
//! every qemu form, option keys and values, interesting integers) and
//! mutated (bit flips, inserted, deleted, spliced and duplicated bytes and
//! tokens, invalid UTF-8, which is decoded lossily). Every path an input
//! could name is rewritten to a file in a private temp directory, and
//! whatever would make a run slow (sleeps, huge I/O, thousands of appends,
//! slow throttles, millions of zones) is capped, so no run touches the host
//! or takes long. A panic is a crash: the input is printed escaped and
//! saved to `fuzz-crashes/TARGET-N.txt`, and the exit status is 1.
//! Build with `-C debug-assertions -C overflow-checks` (bench/fuzz.sh does)
//! so arithmetic overflows count as crashes too.

#![deny(unsafe_code)]

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use zio::commands::args::{GetOpt, Opt, breakline, strtol0};
use zio::commands::{Console, Shell, table};
use zio_block::fuzzing::{NullNode, OptionMap, zoned};
use zio_block::units::parse_size;
use zio_block::zone_rules::{Device, Kernel, ZoneConfig, ZoneGeometry};
use zio_block::{
    BlockBackend, BlockDriver, OpenFlags, OpenRequest, WriteFlags, ZoneOp, open_image,
};

const USAGE: &str = "usage: zio-fuzz cmdline|image-opts|zoned-header [--runs N] [--seed S] [--max-len L] [--jobs J]";

/// The device of the `cmdline` target.
const CMDLINE_DEVICE: &str =
    "driver=null,zoned=on,size=64M,zone_size=4M,zone_nr_conv=1,zone_max_open=2,zone_max_active=3";
/// Runs between recreations of the shell's device (and temp images).
const RECREATE_EVERY: u64 = 4096;
/// Largest I/O length a `cmdline` run keeps (more is capped), and with
/// `-v` (hex dump), except in a rare "big" run.
const IO_CAP: u64 = 64 << 10;
const DUMP_CAP: u64 = 4 << 10;
const BIG_CAP: u64 = 80 << 20;
/// Most zones an opened null device may have.
const MAX_ZONES: u64 = 4096;

// ---------------------------------------------------------------- options

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Cmdline,
    ImageOpts,
    ZonedHeader,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Cmdline => "cmdline",
            Target::ImageOpts => "image-opts",
            Target::ZonedHeader => "zoned-header",
        }
    }
}

struct Args {
    target: Target,
    runs: u64,
    seed: u64,
    max_len: usize,
    jobs: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut target = None;
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
        .min(2);
    let mut a = Args {
        target: Target::Cmdline,
        runs: 1_000_000,
        seed: 0x5eed,
        max_len: 0,
        jobs,
    };
    while let Some(arg) = it.next() {
        let mut val = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            parse_size(&v).map_err(|_| format!("{name}: bad number '{v}'"))
        };
        match arg.as_str() {
            "--runs" => a.runs = val("--runs")?,
            "--seed" => a.seed = val("--seed")?,
            "--max-len" => a.max_len = val("--max-len")? as usize,
            "--jobs" => a.jobs = val("--jobs")?.max(1),
            "-h" | "--help" => return Err(USAGE.into()),
            "cmdline" => target = Some(Target::Cmdline),
            "image-opts" => target = Some(Target::ImageOpts),
            "zoned-header" => target = Some(Target::ZonedHeader),
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    a.target = target.ok_or(USAGE)?;
    if a.max_len == 0 {
        a.max_len = match a.target {
            Target::Cmdline => 256,
            Target::ImageOpts => 512,
            Target::ZonedHeader => 64 << 10,
        };
    }
    Ok(a)
}

// ---------------------------------------------------------------- rng

use zio_block::rng::Rng;

/// A deterministic hash (FNV-1a), to pick a temp file for a path.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

// ---------------------------------------------------------------- dictionaries

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "511",
    "512",
    "513",
    "4k",
    "4K",
    "4096",
    "8k",
    "64k",
    "1.5k",
    "0.5k",
    "1M",
    "3M",
    "4M",
    "8M",
    "12M",
    "60M",
    "64M",
    "128M",
    "1G",
    "0x10",
    "0x1000",
    "0x400000",
    "0X800000",
    "0x",
    "0xg",
    "-1",
    "-0",
    "+4k",
    "8E",
    "16E",
    "1e",
    "7E",
    "8191P",
    "2147483137",
    "2147483136",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999",
    "1.",
    ".5k",
    "1.5",
    "1.0000000001k",
    "1kk",
    "1b",
    "1B",
    "1x",
    "1 k",
    "0b",
    "1.5e",
    "4194304",
    "4194816",
    "67108864",
    "67108352",
    "3.999M",
    "nan",
    "inf",
    "",
];

const FLAGS: &[&str] = &[
    "-P", "-q", "-v", "-C", "-s", "-l", "-z", "-u", "-n", "-p", "-t", "-V", "-f", "-r", "-o", "-d",
    "-U", "-k", "-b", "-c", "-x", "--", "-", "-qv", "-Cq", "-zu", "-zn", "-zun", "-P0xab", "-pq",
    "-t2", "-n3", "-qP", "-:", "-P-1", "-P256", "-P0x100", "-Pz",
];

const PATTERNS: &[&str] = &[
    "0", "0xab", "0xcd", "255", "256", "-1", "0x", "017", "ab", "1e3",
];

const OPT_KEYS: &[&str] = &[
    "driver",
    "file",
    "file.driver",
    "file.filename",
    "filename",
    "file.file.driver",
    "file.file.filename",
    "file.size",
    "file.zoned",
    "file.zone_size",
    "size",
    "offset",
    "zoned",
    "zone_size",
    "zone_capacity",
    "zone_nr_conv",
    "zone_max_open",
    "zone_max_active",
    "zone_append_max",
    "zone_readonly",
    "zone_offline",
    "zone_restore",
    "bps-total",
    "iops-total",
    "power_cycle",
    "inject.0.event",
    "inject.0.errno",
    "inject.0.after",
    "inject.0.once",
    "inject.1.event",
    "inject.1.errno",
    "inject.2.event",
    "file.inject.0.event",
    "bogus",
    "",
    "file.",
    ".",
];

const OPT_VALUES: &[&str] = &[
    "null",
    "raw",
    "file",
    "zoned",
    "throttle",
    "blkdebug",
    "host_device",
    "qcow2",
    "on",
    "off",
    "true",
    "no",
    "yes",
    "maybe",
    "read",
    "write",
    "flush",
    "discard",
    "zone",
    "append",
    "EIO",
    "ENOSPC",
    "etoomanyrefs",
    "5",
    "0",
    "4095",
    "-5",
    "EBOGUS",
    "1:2",
    "1:1",
    "0",
    "1:",
    ":",
    "2:3:4",
    "18446744073709551616",
    "x.img",
];

const DRIVERS: &[&str] = &["null", "raw", "file", "zoned", "throttle", "blkdebug"];

const INTERESTING_U64: &[u64] = &[
    0,
    1,
    2,
    511,
    512,
    4096,
    1 << 20,
    1 << 22,
    1 << 26,
    1 << 31,
    1 << 32,
    1 << 62,
    1 << 63,
    i64::MAX as u64,
    (i64::MAX as u64) & !511,
    u32::MAX as u64,
    u64::MAX,
    !511,
    u64::MAX - (1 << 20) + 1,
];

// ---------------------------------------------------------------- temp files

/// A private temp directory with small images every path is rewritten to.
struct TempFiles {
    dir: PathBuf,
    paths: Vec<String>,
}

const ZONED_CFG: ZoneConfig = ZoneConfig {
    size: 8 << 20,
    zone_size: 1 << 20,
    zone_capacity: Some(768 << 10),
    nr_conv: 1,
    max_open: 2,
    max_active: 3,
    zone_append_max: 0,
    kernel: Kernel::V6_1,
    device: Device::NullBlk,
};

impl TempFiles {
    fn new(worker: u64) -> TempFiles {
        let dir = std::env::temp_dir().join(format!(
            "zio-fuzz-{}-{worker}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        let t = TempFiles {
            paths: [
                "raw.img",
                "zoned.img",
                "small.img",
                "empty.img",
                "missing.img",
                "",
            ]
            .iter()
            .map(|n| {
                let p = dir.join(n);
                p.to_string_lossy().into_owned()
            })
            .collect(),
            dir,
        };
        t.reset();
        t
    }

    /// (Re)creates the images.
    fn reset(&self) {
        let f = |name: &str| self.dir.join(name);
        let mk = |name: &str, len: u64| {
            let file = std::fs::File::create(f(name)).expect("create a temp image");
            file.set_len(len).expect("size a temp image");
        };
        mk("raw.img", 1 << 20);
        mk("small.img", 1000);
        mk("empty.img", 0);
        let _ = std::fs::remove_file(f("missing.img"));
        zoned::create(&f("zoned.img").to_string_lossy(), &ZONED_CFG).expect("create zoned.img");
    }

    fn zoned_path(&self) -> String {
        self.paths[1].clone()
    }

    /// The temp path standing for `orig`.
    fn path_for(&self, orig: &str) -> &str {
        &self.paths[(fnv(orig) % self.paths.len() as u64) as usize]
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------- sanitizing

/// Splits an option string into items as `OptionMap::parse` does (`,,` is
/// a literal comma), returning `(key, value)` (value `None` without `=`).
fn split_options(text: &str) -> Vec<(String, Option<String>)> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let push = |cur: &mut String, items: &mut Vec<(String, Option<String>)>| {
        let item = std::mem::take(cur);
        match item.split_once('=') {
            Some((k, v)) => items.push((k.to_string(), Some(v.to_string()))),
            None => items.push((item, None)),
        }
    };
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
                continue;
            }
            push(&mut cur, &mut items);
            continue;
        }
        cur.push(c);
    }
    push(&mut cur, &mut items);
    items
}

fn join_options(items: &[(String, Option<String>)]) -> String {
    let esc = |s: &str| s.replace(',', ",,");
    items
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{}={}", esc(k), esc(v)),
            None => esc(k),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Makes an option string safe and fast: every file name (`filename`, and
/// a child's name given as `file=`) becomes a temp file, throttle rates
/// are at least fast enough not to wait, and a device gets at most
/// [`MAX_ZONES`] zones.
fn sanitize_options(text: &str, tmp: &TempFiles) -> String {
    let mut items = split_options(text);
    let last = |k: &str| k.rsplit('.').next().unwrap_or("").to_string();
    let prefix = |k: &str| match k.rfind('.') {
        Some(i) => k[..=i].to_string(),
        None => String::new(),
    };
    for (k, v) in items.iter_mut() {
        let Some(val) = v else { continue };
        let l = last(k);
        // A key OptionMap would take as a child name: anything but the
        // known scalar keys is a potential `NAME=FILENAME`.
        let scalar = matches!(
            l.as_str(),
            "driver"
                | "size"
                | "offset"
                | "zoned"
                | "zone_size"
                | "zone_capacity"
                | "zone_nr_conv"
                | "zone_max_open"
                | "zone_max_active"
                | "zone_append_max"
                | "zone_readonly"
                | "zone_offline"
                | "zone_restore"
                | "bps-total"
                | "iops-total"
                | "power_cycle"
                | "event"
                | "errno"
                | "after"
                | "once"
        );
        if !scalar {
            *val = tmp.path_for(val).to_string();
        }
        if l == "bps-total" && parse_size(val).is_ok_and(|n| n < 1 << 30) {
            *val = "1G".into();
        }
        if l == "iops-total" && parse_size(val).is_ok_and(|n| n < 1 << 20) {
            *val = "1M".into();
        }
    }
    // Zone counts per node (options sharing a prefix).
    let prefixes: Vec<String> = items.iter().map(|(k, _)| prefix(k)).collect();
    for p in prefixes {
        let get = |items: &[(String, Option<String>)], key: &str| {
            items
                .iter()
                .rev()
                .find(|(k, _)| *k == format!("{p}{key}"))
                .and_then(|(_, v)| v.as_deref().map(parse_size))
        };
        let zs = match get(&items, "zone_size") {
            Some(Ok(z)) if z >= 512 => z,
            Some(_) => continue,
            None => 256 << 20,
        };
        let size = match get(&items, "size") {
            Some(Ok(s)) => s,
            Some(Err(_)) => continue,
            None => 250 << 30,
        };
        if size / zs > MAX_ZONES {
            let capped = zs.saturating_mul(MAX_ZONES).to_string();
            let key = format!("{p}size");
            match items.iter_mut().rev().find(|(k, _)| *k == key) {
                Some((_, v)) => *v = Some(capped),
                None => items.push((key, Some(capped))),
            }
        }
    }
    join_options(&items)
}

/// Replaces the option values and operands of a command line with what
/// `f` returns, finding them with zio's own getopt.
fn rewrite_args(
    argv: &[&str],
    spec: &'static str,
    mut opt: impl FnMut(char, &str) -> Option<String>,
    mut operand: impl FnMut(usize, &str) -> Option<String>,
) -> Vec<String> {
    let mut out: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    // Where a slice of `argv` lives: (token index, byte offset).
    let locate = |s: &str| -> Option<(usize, usize)> {
        let p = s.as_ptr() as usize;
        argv.iter().enumerate().find_map(|(i, t)| {
            let b = t.as_ptr() as usize;
            (p >= b && p + s.len() <= b + t.len()).then(|| (i, p - b))
        })
    };
    let mut g = GetOpt::new(argv, spec);
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for o in g.by_ref() {
        if let Opt::Flag(c, Some(v)) = o
            && let Some(new) = opt(c, v)
            && let Some((i, at)) = locate(v)
        {
            edits.push((i, at, new));
        }
    }
    for (n, v) in g.operands().iter().enumerate() {
        if let Some(new) = operand(n, v)
            && let Some((i, at)) = locate(v)
        {
            edits.push((i, at, new));
        }
    }
    for (i, at, new) in edits {
        let mut t = out[i][..at].to_string();
        t.push_str(&new);
        out[i] = t;
    }
    out
}

/// Makes a command line safe and fast (see the module doc). `big` lifts
/// the I/O length cap to [`BIG_CAP`].
fn sanitize_line(line: &str, tmp: &TempFiles, big: bool) -> String {
    let argv = breakline(line.trim_end_matches(['\n', '\r']));
    let Some(word) = argv.first() else {
        return line.to_string();
    };
    let Some(cmd) = zio::commands::find(word) else {
        return line.to_string();
    };
    let verbose = argv[1..]
        .iter()
        .any(|a| a.starts_with('-') && a.contains('v'));
    let cap = if big {
        BIG_CAP
    } else if verbose {
        DUMP_CAP
    } else {
        IO_CAP
    };
    let cap_len = |v: &str| match parse_size(v) {
        Ok(n) if n > cap && n <= 1 << 32 => Some(cap.to_string()),
        _ => None,
    };
    let new: Vec<String> = match cmd.name {
        "open" => rewrite_args(
            &argv,
            "snCro:kt:d:U",
            |c, v| (c == 'o').then(|| sanitize_options(v, tmp)),
            |_, v| Some(tmp.path_for(v).to_string()),
        ),
        "sleep" => argv
            .iter()
            .enumerate()
            .map(|(i, a)| match strtol0(a) {
                Some(ms) if i > 0 && ms > 0 => "0".to_string(),
                _ => a.to_string(),
            })
            .collect(),
        "read" | "readv" | "write" | "writev" | "zone_append" => {
            let spec = match cmd.name {
                "read" => "Cl:pP:qrs:v",
                "readv" => "CP:qrv",
                "write" => "CfnpP:qruz",
                "writev" => "CfqrP:",
                _ => "pP:qt:n:V",
            };
            rewrite_args(
                &argv,
                spec,
                |c, v| {
                    let limit = match c {
                        't' => 4,
                        'n' => 32,
                        _ => return None,
                    };
                    match parse_size(v) {
                        Ok(n) if n > limit => Some(limit.to_string()),
                        _ => None,
                    }
                },
                |n, v| if n >= 1 { cap_len(v) } else { None },
            )
        }
        _ => return line.to_string(),
    };
    new.join(" ")
}

// ---------------------------------------------------------------- generators

fn gen_number(rng: &mut Rng) -> String {
    match rng.below(6) {
        0..=2 => rng.pick(NUMBERS).to_string(),
        3 => {
            // A block-aligned offset or length on the 64M device.
            let n = rng.below(64 << 20 >> 12) << 12;
            match rng.below(3) {
                0 => format!("{n}"),
                1 => format!("{:#x}", n),
                _ => format!("{}k", n >> 10),
            }
        }
        4 => format!("{}", rng.pick(INTERESTING_U64)),
        _ => {
            let bits = rng.below(40);
            format!("{}", rng.below(1 << bits))
        }
    }
}

fn gen_options(rng: &mut Rng) -> String {
    let mut items: Vec<String> = Vec::new();
    if !rng.chance(8) {
        items.push(format!("driver={}", rng.pick(DRIVERS)));
    }
    match rng.below(5) {
        0 => items.push(format!("file.driver={}", rng.pick(DRIVERS))),
        1 => items.push("file.filename=x.img".into()),
        2 => items.push("file=zoned.img".into()),
        _ => {}
    }
    for _ in 0..rng.below(7) {
        let k = rng.pick(OPT_KEYS);
        let v = if rng.chance(2) {
            gen_number(rng)
        } else {
            rng.pick(OPT_VALUES).to_string()
        };
        items.push(if rng.chance(30) {
            k.to_string()
        } else {
            format!("{k}={v}")
        });
    }
    items.join(",")
}

fn command_words() -> Vec<&'static str> {
    table()
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.altname))
        .collect()
}

fn gen_line(rng: &mut Rng, words: &[&'static str]) -> String {
    // Weight the zone and I/O commands.
    let word = match rng.below(10) {
        0..=3 => *rng.pick(&[
            "zone_append",
            "zap",
            "zone_open",
            "zo",
            "zone_close",
            "zc",
            "zone_finish",
            "zf",
            "zone_reset",
            "zrs",
            "zone_report",
            "zrp",
        ]),
        4..=6 => *rng.pick(&["read", "write", "readv", "writev", "discard", "r", "w"]),
        _ => *rng.pick(words),
    };
    let mut toks = vec![word.to_string()];
    if word == "open" || word == "o" {
        for f in ["-r", "-n", "-U", "-t", "-d", "-s"] {
            if rng.chance(6) {
                toks.push(f.to_string());
                if f == "-t" {
                    toks.push(rng.pick(&["none", "writeback", "bogus"]).to_string());
                }
                if f == "-d" {
                    toks.push(rng.pick(&["unmap", "ignore", "x"]).to_string());
                }
            }
        }
        if rng.chance(2) {
            toks.push("-o".into());
            toks.push(if rng.chance(2) {
                CMDLINE_DEVICE.to_string()
            } else {
                gen_options(rng)
            });
        }
        if rng.chance(2) {
            toks.push(
                rng.pick(&["raw.img", "zoned.img", "/etc/passwd", "x"])
                    .to_string(),
            );
        }
        return toks.join(" ");
    }
    let nflags = if rng.chance(2) { 0 } else { rng.below(3) };
    for _ in 0..nflags {
        let f = *rng.pick(FLAGS);
        toks.push(f.to_string());
        match f {
            "-P" => toks.push(rng.pick(PATTERNS).to_string()),
            "-s" | "-l" | "-t" | "-n" => toks.push(gen_number(rng)),
            _ => {}
        }
    }
    let nops = match rng.below(8) {
        0 => rng.below(6),
        _ => 2,
    };
    for i in 0..nops {
        // Zone-aligned offsets are the interesting ones for zone commands.
        if i == 0 && rng.chance(2) {
            toks.push(format!("{}M", 4 * rng.below(17)));
        } else if i == 1 && rng.chance(3) {
            toks.push(rng.pick(&["4k", "4M", "8M", "512", "1", "3M"]).to_string());
        } else {
            toks.push(gen_number(rng));
        }
    }
    if rng.chance(4) {
        // Permuted options after operands.
        let f = *rng.pick(FLAGS);
        toks.push(f.to_string());
    }
    toks.join(" ")
}

/// Byte-level mutations; `dict` supplies tokens to insert.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], dict: &[&str], max_len: usize) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(11) {
            0 if !data.is_empty() => {
                let i = rng.idx(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.idx(data.len());
                data[i] = rng.below(256) as u8;
            }
            2 => {
                let i = rng.idx(data.len() + 1);
                let b = *rng.pick(b" ,=-.0123456789xkMEe\n\t\0\xff\xc3");
                data.insert(i, b);
            }
            3 if !data.is_empty() => {
                let i = rng.idx(data.len());
                let n = 1 + rng.idx((data.len() - i).min(8));
                data.drain(i..i + n);
            }
            4 if !other.is_empty() => {
                // Splice: our head, the other's tail.
                let i = rng.idx(data.len() + 1);
                let j = rng.idx(other.len());
                data.truncate(i);
                data.extend_from_slice(&other[j..]);
            }
            5 | 6 => {
                // Insert a dictionary token at a space.
                let spaces: Vec<usize> = data
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b' ')
                    .map(|(i, _)| i)
                    .chain(std::iter::once(data.len()))
                    .collect();
                let at = *rng.pick(&spaces);
                let tok = format!(" {}", rng.pick(dict));
                data.splice(at..at, tok.bytes());
            }
            7 => {
                // Duplicate or replace a whole token.
                let text = String::from_utf8_lossy(data).into_owned();
                let mut toks: Vec<String> = text.split(' ').map(String::from).collect();
                let i = rng.idx(toks.len());
                if rng.chance(2) {
                    let t = toks[i].clone();
                    toks.insert(i, t);
                } else {
                    toks[i] = rng.pick(dict).to_string();
                }
                *data = toks.join(" ").into_bytes();
            }
            8 => {
                // Invalid UTF-8 and odd characters.
                let i = rng.idx(data.len() + 1);
                let junk: &[&[u8]] = &[
                    b"\xff",
                    b"\xc3",
                    b"\xe2\x82",
                    b"\xc3\xa9",
                    b"\xf0\x9f\x92\xa9",
                ];
                let j = *rng.pick(junk);
                data.splice(i..i, j.iter().copied());
            }
            9 if !data.is_empty() => {
                // Repeat a chunk.
                let i = rng.idx(data.len());
                let n = 1 + rng.idx((data.len() - i).min(16));
                let chunk: Vec<u8> = data[i..i + n].to_vec();
                for _ in 0..1 + rng.below(4) {
                    data.splice(i..i, chunk.iter().copied());
                }
            }
            _ => {
                // A digit run made long.
                let i = rng.idx(data.len() + 1);
                let n = 1 + rng.idx(40);
                data.splice(i..i, std::iter::repeat_n(b'9', n));
            }
        }
    }
    data.truncate(max_len);
}

// ---------------------------------------------------------------- crashes

thread_local! {
    static PANIC_MSG: RefCell<String> = const { RefCell::new(String::new()) };
    /// Inside a fuzzed execution (a panic there is reported as a crash).
    static IN_RUN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs one execution under `catch_unwind`.
fn guarded<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    IN_RUN.with(|r| r.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_RUN.with(|r| r.set(false));
    r
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.payload().downcast_ref::<&str>() {
            Some(s) => s.to_string(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "(non-string panic)".into()),
        };
        let loc = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let text = format!("panicked at {loc}: {msg}");
        // Threads started by a command (zap -t) report to their own slot;
        // print those here so nothing is lost.
        let first = PANIC_MSG.with(|m| {
            let mut m = m.borrow_mut();
            let first = m.is_empty();
            if first {
                *m = text.clone();
            }
            first
        });
        if !first || !IN_RUN.with(|r| r.get()) {
            eprintln!("zio-fuzz: {text}");
        }
    }));
}

fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

struct Crashes {
    target: Target,
    count: AtomicU64,
    lock: Mutex<()>,
}

impl Crashes {
    /// Prints and saves a crash: the input, the panic, and (for
    /// `cmdline`) the lines run on the same device before it.
    fn report(&self, input: &[u8], context: &[String]) {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        let msg = PANIC_MSG.with(|m| std::mem::take(&mut *m.borrow_mut()));
        let mut text = format!(
            "# zio-fuzz {} crash {n}\n# {msg}\n# input (escaped):\n{}\n",
            self.target.name(),
            escape(input)
        );
        if !context.is_empty() {
            text += "# lines run on the same device before it, oldest first (escaped):\n";
            for l in context {
                text += &escape(l.as_bytes());
                text.push('\n');
            }
        }
        eprintln!("zio-fuzz: CRASH {n}: {msg}\n  input: {}", escape(input));
        let dir = Path::new("fuzz-crashes");
        let _ = std::fs::create_dir_all(dir);
        let path = dir.join(format!("{}-{n}.txt", self.target.name()));
        match std::fs::write(&path, text) {
            Ok(()) => eprintln!("  saved to {}", path.display()),
            Err(e) => eprintln!("  could not save {}: {e}", path.display()),
        }
    }
}

// ---------------------------------------------------------------- targets

struct Progress {
    done: AtomicU64,
    start: Instant,
    target: Target,
}

impl Progress {
    fn tick(&self) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(100_000) {
            let t = self.start.elapsed().as_secs_f64();
            eprintln!(
                "{}: {n} runs, {:.1} s ({:.0} runs/s)",
                self.target.name(),
                t,
                n as f64 / t
            );
        }
    }
}

fn quiet_console() -> Console {
    Console::new(Box::new(std::io::sink()), Box::new(std::io::sink()))
}

fn new_shell() -> Shell {
    let blk = open_image(&OpenRequest {
        target: Some(CMDLINE_DEVICE.into()),
        image_opts: true,
        ..OpenRequest::default()
    })
    .expect("open the fuzzing device");
    let mut sh = Shell::new(Some(blk), quiet_console());
    sh.default_device = true;
    sh
}

fn run_cmdline(w: &Worker, runs: u64) {
    let mut rng = Rng::new(w.seed);
    let tmp = TempFiles::new(w.id);
    let words = command_words();
    let mut dict: Vec<&str> = words.clone();
    dict.extend_from_slice(NUMBERS);
    dict.extend_from_slice(FLAGS);
    dict.extend_from_slice(PATTERNS);
    let mut corpus: Vec<Vec<u8>> = (0..64)
        .map(|_| gen_line(&mut rng, &words).into_bytes())
        .collect();
    let mut shell = new_shell();
    let mut history: Vec<String> = Vec::new();
    let debug = std::env::var_os("ZIO_FUZZ_DEBUG").is_some();
    for run in 0..runs {
        if run > 0 && (run % RECREATE_EVERY == 0 || (shell.blk.is_none() && rng.chance(16))) {
            shell = new_shell();
            history.clear();
            if run % RECREATE_EVERY == 0 {
                tmp.reset();
            }
        }
        let mut input = if rng.chance(2) {
            gen_line(&mut rng, &words).into_bytes()
        } else {
            corpus[rng.idx(corpus.len())].clone()
        };
        if rng.chance(2) {
            let other = corpus[rng.idx(corpus.len())].clone();
            mutate(&mut rng, &mut input, &other, &dict, w.max_len);
        }
        // The binary reads UTF-8 lines; bytes that are not arrive as
        // U+FFFD here (what a valid UTF-8 line can carry anyway).
        let text = String::from_utf8_lossy(&input).into_owned();
        let line = sanitize_line(&text, &tmp, rng.chance(50_000));
        let r = guarded(|| shell.run_line(&line));
        // The only feedback: lines that worked (and a few that did not)
        // join the corpus, so mutations build on valid commands.
        if matches!(r, Ok(zio::commands::Status::Ok)) || rng.chance(32) {
            let slot = rng.idx(corpus.len());
            corpus[slot] = input;
        }
        if debug {
            eprintln!("{:?} {}", r.as_ref().ok(), escape(line.as_bytes()));
        }
        if r.is_err() {
            w.crashes.report(line.as_bytes(), &history);
            shell = new_shell();
            history.clear();
        } else {
            history.push(line);
        }
        w.progress.tick();
    }
}

fn run_image_opts(w: &Worker, runs: u64) {
    let mut rng = Rng::new(w.seed);
    let tmp = TempFiles::new(w.id);
    let mut dict: Vec<&str> = OPT_KEYS.to_vec();
    dict.extend_from_slice(OPT_VALUES);
    dict.extend_from_slice(NUMBERS);
    let mut corpus: Vec<Vec<u8>> = (0..64)
        .map(|_| gen_options(&mut rng).into_bytes())
        .collect();
    corpus.push(CMDLINE_DEVICE.as_bytes().to_vec());
    corpus.push(b"driver=zoned,file.filename=zoned.img,power_cycle=on".to_vec());
    corpus.push(b"driver=raw,offset=1M,size=4M,file.driver=null,file.zoned=on,file.size=8M,file.zone_size=1M".to_vec());
    corpus.push(b"driver=throttle,bps-total=1G,file.driver=blkdebug,file.inject.0.event=zone,file.inject.0.errno=ETOOMANYREFS,file.file.driver=null,file.file.zoned=on,file.file.size=8M,file.file.zone_size=1M".to_vec());
    for run in 0..runs {
        if run > 0 && run % (4 * RECREATE_EVERY) == 0 {
            tmp.reset();
        }
        let mut input = if rng.chance(4) {
            gen_options(&mut rng).into_bytes()
        } else {
            corpus[rng.idx(corpus.len())].clone()
        };
        if !rng.chance(4) {
            let other = corpus[rng.idx(corpus.len())].clone();
            mutate(&mut rng, &mut input, &other, &dict, w.max_len);
        }
        let text = String::from_utf8_lossy(&input).into_owned();
        let opts = sanitize_options(&text, &tmp);
        let read_only = rng.chance(2);
        let force_share = rng.chance(8);
        let slot = rng.idx(corpus.len());
        corpus[slot] = input;
        let touch = rng.chance(4);
        let r = guarded(|| {
            let req = OpenRequest {
                target: Some(opts.clone()),
                image_opts: true,
                read_only,
                force_share,
                nocache: false,
                ..OpenRequest::default()
            };
            if let Ok(blk) = open_image(&req)
                && touch
            {
                exercise(&blk);
            }
        });
        if r.is_err() {
            let shown = format!("read_only={read_only} force_share={force_share} {opts}");
            w.crashes.report(shown.as_bytes(), &[]);
        }
        w.progress.tick();
    }
}

/// A few cheap requests on an opened image.
fn exercise(blk: &BlockBackend) {
    let len = blk.length().unwrap_or(0);
    let mut buf = [0u8; 512];
    let _ = blk.read(0, &mut buf);
    let _ = blk.read(len.saturating_sub(512), &mut buf);
    if let Ok(zones) = blk.zone_report(0, 64) {
        for z in zones.iter().take(4) {
            let _ = blk.write(z.wp, &buf, WriteFlags::default());
            let _ = blk.zone_append(z.start, &buf);
            let _ = blk.zone_mgmt(ZoneOp::Finish, z.start, z.len);
        }
    }
}

/// Header fields as (offset, width) for targeted overwrites.
const HEADER_FIELDS: &[(usize, usize)] = &[
    (8, 4),
    (12, 4),
    (16, 8),
    (24, 8),
    (32, 8),
    (40, 8),
    (48, 8),
    (56, 4),
    (60, 4),
    (64, 8),
    (72, 8),
    (80, 8),
];

fn fix_header_crc(buf: &mut [u8]) {
    if buf.len() >= 4096 {
        let sum = crc32fast::hash(&buf[..4092]);
        buf[4092..4096].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Recomputes the checksum of table record `i` (0 = cursor) if present.
fn fix_record_crc(buf: &mut [u8], table: usize, i: usize) {
    let at = table + 32 * i;
    if at + 32 <= buf.len() {
        let mut h = crc32fast::Hasher::new();
        h.update(&(i as u64).to_le_bytes());
        h.update(&buf[at..at + 28]);
        let sum = h.finalize();
        buf[at + 28..at + 32].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Seed images: header + table of a few geometries, in a few states.
fn header_seeds(tmp: &TempFiles) -> Vec<Vec<u8>> {
    let cfgs = [
        ZONED_CFG,
        ZoneConfig {
            size: 4 << 20,
            zone_size: 512 << 10,
            zone_capacity: None,
            nr_conv: 0,
            max_open: 0,
            max_active: 0,
            zone_append_max: 4096,
            kernel: Kernel::V6_1,
            device: Device::NullBlk,
        },
        ZoneConfig {
            size: (6 << 20) + 8192,
            zone_size: 1 << 20,
            zone_capacity: Some(1 << 19),
            nr_conv: 2,
            max_open: 1,
            max_active: 2,
            zone_append_max: 0,
            kernel: Kernel::V6_1,
            device: Device::NullBlk,
        },
    ];
    let scripts: &[&[&str]] = &[
        &[],
        &[
            "write 1M 4k",
            "write 2M 8k",
            "write 3M 4k",
            "zone_finish 4M 1M",
        ],
        &[
            "zone_open 2M 1M",
            "write 1M 4k",
            "zone_close 1M 1M",
            "write 5M 4k",
        ],
    ];
    let path = tmp.zoned_path();
    let mut seeds = Vec::new();
    for cfg in &cfgs {
        for script in scripts {
            let header = zoned::create(&path, cfg).expect("create a seed image");
            let blk = open_image(&OpenRequest {
                target: Some(path.clone()),
                ..OpenRequest::default()
            })
            .expect("open a seed image");
            let mut sh = Shell::new(Some(blk), quiet_console());
            for l in *script {
                sh.run_line(l);
            }
            drop(sh);
            let geo = ZoneGeometry::new(cfg).expect("seed geometry");
            let len = 4096 + 32 * (geo.nr_zones() + 1);
            let bytes = std::fs::read(&path).expect("read a seed image");
            assert_eq!(header.table_offset, 4096);
            seeds.push(bytes[..len].to_vec());
        }
    }
    tmp.reset();
    seeds
}

fn run_zoned_header(w: &Worker, runs: u64) {
    let mut rng = Rng::new(w.seed);
    let tmp = TempFiles::new(w.id);
    let seeds = header_seeds(&tmp);
    let file_path = tmp.dir.join("fuzzed.img");
    let fault_opts = [
        "",
        "",
        "",
        "power_cycle=on",
        "zone_readonly=1",
        "zone_offline=2:3",
        "zone_restore=1",
        "zone_readonly=4,zone_restore=4",
        "power_cycle=on,zone_offline=7",
        "power_cycle=maybe",
    ];
    for _ in 0..runs {
        let mut buf = seeds[rng.idx(seeds.len())].clone();
        let mut header_touched = false;
        let mut records: Vec<usize> = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let nrec = (buf.len().saturating_sub(4096)) / 32;
            if buf.len() < 4096 {
                break;
            }
            match rng.below(10) {
                0 => {
                    let i = rng.idx(buf.len());
                    buf[i] ^= 1 << rng.below(8);
                    header_touched |= i < 4096;
                }
                1 => {
                    let i = rng.idx(buf.len());
                    buf[i] = *rng.pick(&[0u8, 1, 2, 3, 4, 5, 13, 14, 15, 16, 0x7f, 0x80, 0xff]);
                    header_touched |= i < 4096;
                }
                2..=4 => {
                    let &(at, width) = rng.pick(HEADER_FIELDS);
                    let v = if rng.chance(3) {
                        rng.next_u64()
                    } else if rng.chance(2) {
                        *rng.pick(INTERESTING_U64)
                    } else {
                        // Near the current value.
                        let mut cur = [0u8; 8];
                        cur[..width].copy_from_slice(&buf[at..at + width]);
                        let step = rng.below(3).wrapping_sub(1) << (9 * rng.below(3));
                        u64::from_le_bytes(cur).wrapping_add(step)
                    };
                    buf[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
                    header_touched = true;
                }
                5..=7 if nrec > 0 => {
                    // A record: its write pointer or condition (or the cursor).
                    let r = rng.idx(nrec);
                    let at = 4096 + 32 * r;
                    if rng.chance(2) {
                        buf[at + 8] = *rng.pick(&[0u8, 1, 2, 3, 4, 13, 14, 15, 5, 255]);
                    } else {
                        let cur =
                            u64::from_le_bytes(buf[at..at + 8].try_into().unwrap_or_default());
                        let v = match rng.below(4) {
                            0 => *rng.pick(INTERESTING_U64),
                            1 => cur.wrapping_add(4096),
                            2 => cur.wrapping_sub(4096),
                            _ => rng.below(16) << rng.below(22),
                        };
                        buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
                    }
                    records.push(r);
                }
                8 => {
                    let n = rng.idx(buf.len() + 1);
                    buf.truncate(n);
                }
                _ => {
                    let i = rng.idx(buf.len() + 1);
                    for _ in 0..1 + rng.below(64) {
                        buf.insert(i.min(buf.len()), rng.below(256) as u8);
                    }
                }
            }
        }
        if header_touched && !rng.chance(4) {
            fix_header_crc(&mut buf);
        }
        if !rng.chance(4) {
            for &r in &records {
                fix_record_crc(&mut buf, 4096, r);
            }
        }
        buf.truncate(w.max_len.max(4096));
        // The device's length: the buffer, or what the header asks for when
        // that is small (so the table and state are restored).
        let want = (|| {
            let (h, geo) = zoned::Header::decode(buf.get(..4096)?).ok()?;
            (geo.nr_zones() as u64 <= 65536 && h.cfg.size <= 1 << 30).then(|| h.file_len())
        })();
        let dev_len = match want {
            Some(l) if !rng.chance(8) => l.max(buf.len() as u64),
            _ => buf.len() as u64,
        };
        let opts_text = *rng.pick(&fault_opts);
        let read_only = rng.chance(3);
        let via_file = rng.chance(64) && dev_len <= 64 << 20;
        let touch = rng.chance(4);
        let r = guarded(|| {
            let flags = OpenFlags {
                read_only,
                ..OpenFlags::default()
            };
            let mut opts = OptionMap::parse(opts_text).unwrap_or_default();
            if via_file {
                let ok = std::fs::write(&file_path, &buf).is_ok()
                    && std::fs::OpenOptions::new()
                        .write(true)
                        .open(&file_path)
                        .and_then(|f| f.set_len(dev_len))
                        .is_ok();
                if ok {
                    let sep = if opts_text.is_empty() { "" } else { "," };
                    let text = format!(
                        "driver=zoned,file.filename={}{sep}{opts_text}",
                        file_path.display()
                    );
                    let req = OpenRequest {
                        target: Some(text),
                        image_opts: true,
                        read_only,
                        ..OpenRequest::default()
                    };
                    if let Ok(blk) = open_image(&req)
                        && touch
                    {
                        exercise(&blk);
                    }
                }
                return;
            }
            let node = NullNode::new(dev_len);
            let _ = node.write(0, &buf, WriteFlags::default());
            let child: Arc<dyn BlockDriver> = Arc::new(node);
            if let Ok(root) = zoned::open_over(child, &mut opts, &flags)
                && touch
            {
                exercise(&BlockBackend::new(root, read_only, "fuzz"));
            }
        });
        if r.is_err() {
            let shown = format!(
                "device length {dev_len}, options '{opts_text}', read_only={read_only}, via_file={via_file}, {} bytes:\n{}",
                buf.len(),
                escape(&buf)
            );
            w.crashes.report(shown.as_bytes(), &[]);
        }
        w.progress.tick();
    }
}

// ---------------------------------------------------------------- main

struct Worker {
    id: u64,
    seed: u64,
    max_len: usize,
    crashes: Arc<Crashes>,
    progress: Arc<Progress>,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    install_panic_hook();
    let crashes = Arc::new(Crashes {
        target: args.target,
        count: AtomicU64::new(0),
        lock: Mutex::new(()),
    });
    let progress = Arc::new(Progress {
        done: AtomicU64::new(0),
        start: Instant::now(),
        target: args.target,
    });
    let jobs = args.jobs.min(args.runs.max(1));
    let handles: Vec<_> = (0..jobs)
        .map(|id| {
            let runs = args.runs / jobs + u64::from(id < args.runs % jobs);
            let w = Worker {
                id,
                seed: args.seed.wrapping_mul(0x100_0000_01b3).wrapping_add(id),
                max_len: args.max_len,
                crashes: crashes.clone(),
                progress: progress.clone(),
            };
            let target = args.target;
            std::thread::Builder::new()
                .name("zio-fuzz-worker".into())
                .spawn(move || match target {
                    Target::Cmdline => run_cmdline(&w, runs),
                    Target::ImageOpts => run_image_opts(&w, runs),
                    Target::ZonedHeader => run_zoned_header(&w, runs),
                })
                .expect("start a worker")
        })
        .collect();
    let mut worker_died = false;
    for h in handles {
        worker_died |= h.join().is_err();
    }
    let n = progress.done.load(Ordering::Relaxed);
    let t = progress.start.elapsed().as_secs_f64();
    let c = crashes.count.load(Ordering::SeqCst);
    println!(
        "{}: {n} runs, {c} crashes, {t:.1} s ({:.0} runs/s)",
        args.target.name(),
        n as f64 / t
    );
    let _ = std::io::stdout().flush();
    if c > 0 || worker_died {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
