//! The driver table: every driver zio knows, with its role and the hooks
//! it implements, as QEMU's `BlockDriver` has `bdrv_open`, `bdrv_probe`,
//! `bdrv_co_create_opts` and `bdrv_co_check`. Opening a graph, probing a
//! format, `zio create` and `zio check` all go through this table; nothing
//! outside names a driver's module.

use std::sync::Arc;

use super::open::open_protocol;
use super::{BlockDriver, OpenFlags, OptionMap, Role, strerror};
use super::{blkdebug, file, host_device, nbd, null, null_co, raw, throttle, zoned, zoned_check};

/// A driver's constructor: takes the options it knows from the map.
pub(crate) type OpenFn = fn(&mut OptionMap, &OpenFlags) -> Result<Arc<dyn BlockDriver>, String>;
/// Opens a format over an already open child (after a probe).
pub(crate) type OverFn =
    fn(Arc<dyn BlockDriver>, &mut OptionMap, &OpenFlags) -> Result<Arc<dyn BlockDriver>, String>;
/// True if an image's first bytes (up to 4 KiB) are this format's.
pub(crate) type ProbeFn = fn(&[u8]) -> bool;
/// Builds an empty image at a path from its size and creation options;
/// returns what qemu-img prints after `fmt=NAME` (` size=... key=value`).
pub(crate) type CreateFn = fn(&str, u64, &mut OptionMap) -> Result<String, String>;
/// Checks (or repairs) an image, reporting through `say`.
pub(crate) type CheckFn = fn(Probed<'_>, bool, &mut dyn FnMut(&str)) -> Verdict;

/// An image opened for `zio check` (writable for a repair), with what the
/// probe read.
pub(crate) struct Probed<'a> {
    pub node: Arc<dyn BlockDriver>,
    pub path: &'a str,
    pub len: u64,
    /// Its first bytes, up to 4 KiB (fewer if the image is shorter).
    pub first: &'a [u8],
}

/// One row of the table.
pub(crate) struct DriverEntry {
    pub name: &'static str,
    pub role: Role,
    pub open: OpenFn,
    pub over: Option<OverFn>,
    pub probe: Option<ProbeFn>,
    pub create: Option<CreateFn>,
    pub check: Option<CheckFn>,
}

const fn entry(name: &'static str, role: Role, open: OpenFn) -> DriverEntry {
    DriverEntry {
        name,
        role,
        open,
        over: None,
        probe: None,
        create: None,
        check: None,
    }
}

pub(crate) const DRIVERS: &[DriverEntry] = &[
    entry("file", Role::Protocol, file::open),
    entry("host_device", Role::Protocol, host_device::open),
    entry("host_cdrom", Role::Protocol, host_device::open_cdrom),
    entry("null", Role::Protocol, null::open),
    entry("null-co", Role::Protocol, null_co::open_co),
    entry("null-aio", Role::Protocol, null_co::open_aio),
    entry("nbd", Role::Protocol, nbd::open),
    DriverEntry {
        over: Some(zoned::open_over),
        probe: Some(zoned::probe),
        create: Some(zoned::create_opts),
        check: Some(zoned_check::check),
        ..entry("zoned", Role::Format, zoned::open)
    },
    DriverEntry {
        over: Some(raw::open_over),
        create: Some(raw::create),
        ..entry("raw", Role::Format, raw::open)
    },
    entry("throttle", Role::Filter, throttle::open),
    entry("blkdebug", Role::Filter, blkdebug::open),
];

pub(crate) fn lookup(name: &str) -> Option<&'static DriverEntry> {
    DRIVERS.iter().find(|d| d.name == name)
}

/// Every driver's name, in table order: what `-f` and `driver=` take.
pub fn driver_names() -> Vec<&'static str> {
    DRIVERS.iter().map(|d| d.name).collect()
}

/// The formats `zio create` makes, in table order.
pub fn creatable_formats() -> Vec<&'static str> {
    DRIVERS
        .iter()
        .filter(|d| d.create.is_some())
        .map(|d| d.name)
        .collect()
}

/// The format whose probe claims `first`, if any (raw claims nothing: it is
/// what an image without a known signature is).
pub(crate) fn probe(first: &[u8]) -> Option<&'static DriverEntry> {
    DRIVERS.iter().find(|d| d.probe.is_some_and(|p| p(first)))
}

/// `zio create -f FORMAT -o OPTIONS FILE SIZE`: the image is built by the
/// format's create hook (in a temporary file that replaces FILE once
/// complete); returns the line qemu-img prints, or one error line.
pub fn create_image(format: &str, options: &str, file: &str, size: u64) -> Result<String, String> {
    let Some(create) = lookup(format).and_then(|d| d.create) else {
        return Err(format!(
            "Unknown image format '{format}' (zio creates {} images)",
            creatable_formats().join(" and ")
        ));
    };
    let mut opts = OptionMap::parse(options)?;
    let rest = create(file, size, &mut opts)?;
    Ok(format!("Formatting '{file}', fmt={format}{rest}"))
}

/// How a check ended, as its exit status says it (qemu-img check's codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 0: nothing wrong.
    Clean,
    /// 0: problems were found and all repaired.
    Repaired,
    /// 2: problems found (repairable with `--repair`, or not at all).
    Corrupt,
    /// 1: the image could not be checked.
    NotChecked,
    /// 63: the file is not an image of a format that has a check (no
    /// zoned header magic), as qemu-img check's "does not support checks".
    NotZoned,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Clean | Verdict::Repaired => 0,
            Verdict::NotChecked => 1,
            Verdict::Corrupt => 2,
            Verdict::NotZoned => 63,
        }
    }
}

/// `zio check [--repair] FILE`: probes FILE's format and runs that
/// format's check hook; findings go through `say`, one line each.
pub fn check_image(path: &str, repair: bool, say: &mut dyn FnMut(&str)) -> Verdict {
    let flags = OpenFlags {
        read_only: !repair,
        ..OpenFlags::default()
    };
    let mut opts = OptionMap::default();
    opts.set("filename", path.to_string());
    let node = match open_protocol(&mut opts, &flags) {
        Ok(n) => n,
        Err(e) => {
            say(&format!("zio: {e}"));
            return Verdict::NotChecked;
        }
    };
    let mut first = [0u8; 4096];
    let len = match node.length() {
        Ok(len) => len,
        Err(e) => {
            say(&format!("zio: Could not read '{path}': {}", strerror(&e)));
            return Verdict::NotChecked;
        }
    };
    let got = (len as usize).min(first.len());
    if let Err(e) = node.read(0, &mut first[..got]) {
        say(&format!("zio: Could not read '{path}': {}", strerror(&e)));
        return Verdict::NotChecked;
    }
    match probe(&first[..got]).and_then(|d| d.check) {
        Some(check) => {
            let img = Probed {
                node,
                path,
                len,
                first: &first[..got],
            };
            check(img, repair, say)
        }
        None => {
            say(&format!(
                "zio check: {path}: not a zoned image (no zoned header magic); zio check checks zoned images only"
            ));
            Verdict::NotZoned
        }
    }
}
