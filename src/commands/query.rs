//! The query family: flush, length, truncate, info, map. One-line answers
//! about the open image (and its size), worded as qemu-io words them.

use serde::Serialize;

use super::args::{Opt, cvtnum};
use super::format::{SCHEMA_VERSION, bad_count, json_pretty};
use super::report::cvtstr;
use super::{Body, Command, Console, Status, getopt, usage};
use zio_block::{BlockBackend, NodeInfo, Prealloc, ZoneInfo, strerror};

pub const COMMANDS: &[Command] = &[
    Command {
        name: "flush",
        altname: Some("f"),
        argmin: 0,
        argmax: Some(0),
        args: None,
        oneline: "flush all in-core file state to disk",
        help: None,
        writes: false,
        body: Body::Io(flush_f),
    },
    Command {
        name: "length",
        altname: Some("l"),
        argmin: 0,
        argmax: Some(0),
        args: None,
        oneline: "gets the length of the current file",
        help: None,
        writes: false,
        body: Body::Io(length_f),
    },
    Command {
        name: "truncate",
        altname: None,
        argmin: 1,
        argmax: Some(3),
        args: Some("[-m prealloc_mode] off"),
        oneline: "truncates the current file at the given offset",
        help: Some(TRUNCATE_HELP),
        writes: true,
        body: Body::Io(truncate_f),
    },
    Command {
        name: "info",
        altname: Some("i"),
        // -j and no operands: counted by info_f, with the dispatcher's
        // message.
        argmin: 0,
        argmax: None,
        args: Some("[-j]"),
        oneline: "prints information about the current file",
        help: Some(INFO_HELP),
        writes: false,
        body: Body::Io(info_f),
    },
    Command {
        name: "map",
        altname: None,
        argmin: 0,
        argmax: Some(0),
        args: Some(""),
        oneline: "prints the allocated areas of a file",
        help: None,
        writes: false,
        body: Body::Io(map_f),
    },
];

/// A failure prints `flush failed: ...`, except when zio is invoked as
/// qemu-io: then, as qemu-io, it only sets the exit status.
fn flush_f(blk: &BlockBackend, con: &mut Console, _argv: &[&str]) -> Status {
    match blk.flush() {
        Ok(()) => Status::Ok,
        Err(e) => {
            if con.prog != "qemu-io" {
                con.say(&format!("flush failed: {}", strerror(&e)));
            }
            Status::Failed
        }
    }
}

const TRUNCATE_HELP: &str = "
 sets the length of the open image to OFF bytes, as qemu-io's truncate

 Example:
 'truncate 1G' - grows the image file to 1 GiB (sparse) or shrinks it
 'truncate -m full 2G' - grows it, writing zeros over the new part

 -m, -- how the grown part is allocated: off (sparse, the default), falloc
       (fallocate) or full (zeros written); metadata is not supported
 Only a raw image file can be resized: a block device cannot grow, and a
 zoned image or a null device cannot be resized at all.
";

fn truncate_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    let mut prealloc = Prealloc::Off;
    let mut g = getopt(argv);
    for o in g.by_ref() {
        match o {
            Opt::Flag('m', Some(mode)) => match Prealloc::parse(mode) {
                Some(p) => prealloc = p,
                None => {
                    con.warn(&format!(
                        "{}: Invalid preallocation mode '{mode}'",
                        con.prog
                    ));
                    return Status::Failed;
                }
            },
            Opt::Bad(msg) => {
                con.warn(&msg);
                return usage(con, "truncate");
            }
            Opt::Flag(..) => return usage(con, "truncate"),
        }
    }
    // Operands after the first are ignored, as qemu-io ignores them.
    let Some(off) = g.operands().first() else {
        return usage(con, "truncate");
    };
    let len = match cvtnum(off) {
        Ok(n) => n,
        Err(e) => {
            con.warn(&e);
            return Status::Failed;
        }
    };
    match blk.truncate(len, prealloc) {
        Ok(()) => Status::Ok,
        Err(e) => {
            con.warn(&format!("{}: {e}", con.prog));
            Status::Failed
        }
    }
}

fn length_f(blk: &BlockBackend, con: &mut Console, _argv: &[&str]) -> Status {
    match blk.length() {
        Ok(n) => {
            con.say(&cvtstr(n as f64));
            Status::Ok
        }
        Err(e) => {
            con.say(&format!("getlength: {}", strerror(&e)));
            Status::Failed
        }
    }
}

/// `info -j` (schema version [`SCHEMA_VERSION`]; sizes in bytes).
#[derive(Serialize)]
struct InfoJson {
    version: u32,
    format_names: Vec<String>,
    cluster_size: u64,
    vm_state_offset: u64,
    /// `null` when the length cannot be read.
    length: Option<u64>,
    /// `null` on a device that is not zoned.
    zoned: Option<ZonedJson>,
}

#[derive(Serialize)]
struct ZonedJson {
    model: &'static str,
    zone_size: u64,
    zone_capacity: u64,
    nr_zones: u64,
    nr_conv: u64,
    /// 0: no limit.
    max_open: u64,
    /// 0: no limit.
    max_active: u64,
    /// 0: no limit beyond the zone.
    max_append: u64,
    write_granularity: u64,
    /// The kernel series the device answers as.
    kernel: String,
    /// The device family it answers as.
    device: &'static str,
}

impl InfoJson {
    fn new(info: NodeInfo, length: Option<u64>, z: Option<ZoneInfo>) -> Self {
        InfoJson {
            version: SCHEMA_VERSION,
            // The text repeats a protocol node's name as qemu-io does
            // (`format name: null-co` twice); the JSON names each once.
            format_names: {
                let mut names = info.format_names;
                names.dedup();
                names
            },
            cluster_size: info.cluster_size,
            vm_state_offset: info.vm_state_offset,
            length,
            zoned: z.map(|z| ZonedJson {
                model: z.model.name(),
                zone_size: z.zone_size,
                zone_capacity: z.zone_capacity,
                nr_zones: z.nr_zones,
                nr_conv: z.nr_conv,
                max_open: z.max_open,
                max_active: z.max_active,
                max_append: z.max_append,
                write_granularity: z.write_granularity,
                kernel: z.kernel.to_string(),
                device: z.device,
            }),
        }
    }
}

fn info_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    // qemu-io's info takes nothing; `-j` is zio's option, refused as every
    // command refuses an unknown one; an operand gets the dispatcher's
    // message, as qemu-io's.
    let mut json = false;
    let mut g = getopt(argv);
    for o in g.by_ref() {
        match o {
            Opt::Flag('j', _) => json = true,
            Opt::Bad(msg) => return super::rw::bad_option(con, "info", &msg),
            Opt::Flag(..) => return usage(con, "info"),
        }
    }
    if !g.operands().is_empty() {
        bad_count(con, argv[0], g.operands().len(), 0);
        return Status::Failed;
    }
    if json {
        let j = InfoJson::new(blk.info(), blk.length().ok(), blk.zone_info());
        con.say(&json_pretty(&j));
        return Status::Ok;
    }
    let info = blk.info();
    for name in &info.format_names {
        con.say(&format!("format name: {name}"));
    }
    if !info.no_block_info {
        con.say(&format!(
            "cluster size: {}",
            cvtstr(info.cluster_size as f64)
        ));
        con.say(&format!(
            "vm state offset: {}",
            cvtstr(info.vm_state_offset as f64)
        ));
    }
    // zio's addition: the zoned model and limits (0 means no limit).
    if let Some(z) = blk.zone_info() {
        con.say(&format!("zoned model: {}", z.model.name()));
        con.say(&format!("zone size: {}", cvtstr(z.zone_size as f64)));
        con.say(&format!(
            "zone capacity: {}",
            cvtstr(z.zone_capacity as f64)
        ));
        con.say(&format!(
            "zones: {} ({} conventional)",
            z.nr_zones, z.nr_conv
        ));
        con.say(&format!("max open zones: {}", z.max_open));
        con.say(&format!("max active zones: {}", z.max_active));
        con.say(&format!("max append: {}", cvtstr(z.max_append as f64)));
        con.say(&format!(
            "write granularity: {}",
            cvtstr(z.write_granularity as f64)
        ));
        con.say(&format!("kernel: {}", z.kernel));
        con.say(&format!("device: {}", z.device));
    }
    // qemu-io's info fails where the driver has no block info (null-co,
    // nbd), after the format names.
    if info.no_block_info {
        return Status::Failed;
    }
    Status::Ok
}

const INFO_HELP: &str = "
 prints the format, cluster size and vm state offset of the open image,
 and for a zoned device its model and limits

 Example:
 'info' - the information in lines, as qemu-io prints it
 'info -j' - the same as one JSON object (sizes in bytes; limits 0 mean no
 limit; zoned is null for a device that is not zoned)

 -j, -- print JSON (schema in docs/report-formats.md)

";

/// The image's extents, allocated or not, as qemu-io's map prints them
/// (runs of the same answer merged). Every zio format stores all of its
/// bytes, so a file or device is one allocated extent, as qemu-io prints
/// for raw images; an NBD export answers for itself.
fn map_f(blk: &BlockBackend, con: &mut Console, _argv: &[&str]) -> Status {
    let len = match blk.length() {
        Ok(n) => n,
        Err(e) => {
            con.warn(&format!(
                "{}: Failed to query image length: {}",
                con.prog,
                strerror(&e)
            ));
            return Status::Failed;
        }
    };
    let mut offset = 0;
    while offset < len {
        let extent = |at: u64| blk.allocation(at, len - at);
        let (allocated, mut num) = match extent(offset) {
            Ok(a) => a,
            Err(e) => return allocation_failed(con, &e),
        };
        while num > 0 && offset + num < len {
            match extent(offset + num) {
                Ok((same, n)) if same == allocated && n > 0 => num += n,
                Ok(_) => break,
                Err(e) => return allocation_failed(con, &e),
            }
        }
        if num == 0 {
            con.warn(&format!("{}: Unexpected end of image", con.prog));
            return Status::Failed;
        }
        let what = if allocated {
            "    allocated"
        } else {
            "not allocated"
        };
        con.say(&format!(
            "{} (0x{num:x}) bytes {what} at offset {} (0x{offset:x})",
            cvtstr(num as f64),
            cvtstr(offset as f64)
        ));
        offset += num;
    }
    Status::Ok
}

fn allocation_failed(con: &mut Console, e: &std::io::Error) -> Status {
    con.warn(&format!(
        "{}: Failed to get allocation status: {}",
        con.prog,
        strerror(e)
    ));
    Status::Failed
}
