//! The query family: flush, length, info, map. One-line answers about the
//! open image, worded as qemu-io words them.

use super::report::cvtstr;
use super::{Body, Command, Console, Status};
use crate::blocklayer::{BlockBackend, strerror};

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
        name: "info",
        altname: Some("i"),
        argmin: 0,
        argmax: Some(0),
        args: None,
        oneline: "prints information about the current file",
        help: None,
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

fn flush_f(blk: &BlockBackend, con: &mut Console, _argv: &[&str]) -> Status {
    match blk.flush() {
        Ok(()) => Status::Ok,
        Err(e) => {
            con.say(&format!("flush failed: {}", strerror(&e)));
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

fn info_f(blk: &BlockBackend, con: &mut Console, _argv: &[&str]) -> Status {
    let info = blk.info();
    for name in &info.format_names {
        con.say(&format!("format name: {name}"));
    }
    con.say(&format!(
        "cluster size: {}",
        cvtstr(info.cluster_size as f64)
    ));
    con.say(&format!(
        "vm state offset: {}",
        cvtstr(info.vm_state_offset as f64)
    ));
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
    }
    Status::Ok
}

/// Every zio format stores all of its bytes, so the map is one allocated
/// extent, as qemu-io prints for raw images.
fn map_f(blk: &BlockBackend, con: &mut Console, _argv: &[&str]) -> Status {
    let len = match blk.length() {
        Ok(n) => n,
        Err(e) => {
            con.warn(&format!(
                "zio: Failed to query image length: {}",
                strerror(&e)
            ));
            return Status::Failed;
        }
    };
    if len > 0 {
        con.say(&format!(
            "{} (0x{len:x}) bytes     allocated at offset {} (0x0)",
            cvtstr(len as f64),
            cvtstr(0.0)
        ));
    }
    Status::Ok
}
