//! The blkdebug breakpoint family: break, remove_break, resume and
//! wait_break, with qemu-io 10.0.2's names, arguments and messages. They go
//! to the first blkdebug node of the image through the backend; the
//! requests they stop and resume are aio requests ([`super::aio`]).

use super::aio::{AioSet, resuming};
use super::{Body, Command, Console, Status};
use zio_block::{BlockBackend, strerror};

pub const COMMANDS: &[Command] = &[
    Command {
        name: "break",
        altname: None,
        argmin: 2,
        argmax: Some(2),
        args: Some("event tag"),
        oneline: "sets a breakpoint on event and tags the stopped request as tag",
        help: Some(BREAK_HELP),
        writes: false,
        body: Body::Aio(break_f),
    },
    Command {
        name: "remove_break",
        altname: None,
        argmin: 1,
        argmax: Some(1),
        args: Some("tag"),
        oneline: "remove a breakpoint by tag",
        help: Some(REMOVE_BREAK_HELP),
        writes: false,
        body: Body::Aio(remove_break_f),
    },
    Command {
        name: "resume",
        altname: None,
        argmin: 1,
        argmax: Some(1),
        args: Some("tag"),
        oneline: "resumes the request tagged as tag",
        help: Some(RESUME_HELP),
        writes: false,
        body: Body::Aio(resume_f),
    },
    Command {
        name: "wait_break",
        altname: None,
        argmin: 1,
        argmax: Some(1),
        args: Some("tag"),
        oneline: "waits for the suspension of a request",
        help: Some(WAIT_BREAK_HELP),
        writes: false,
        body: Body::Aio(wait_break_f),
    },
];

fn break_f(blk: &BlockBackend, con: &mut Console, _: &mut AioSet, argv: &[&str]) -> Status {
    match blk.debug_breakpoint(argv[1], argv[2]) {
        Ok(()) => Status::Ok,
        Err(e) => {
            con.say(&format!("Could not set breakpoint: {}", strerror(&e)));
            Status::Failed
        }
    }
}

fn remove_break_f(blk: &BlockBackend, con: &mut Console, _: &mut AioSet, argv: &[&str]) -> Status {
    let (resumed, r) = blk.debug_remove_breakpoint(argv[1]);
    for _ in 0..resumed {
        con.say(&resuming(argv[1]));
    }
    match r {
        Ok(()) => Status::Ok,
        Err(e) => {
            con.say(&format!(
                "Could not remove breakpoint {}: {}",
                argv[1],
                strerror(&e)
            ));
            Status::Failed
        }
    }
}

fn resume_f(blk: &BlockBackend, con: &mut Console, _: &mut AioSet, argv: &[&str]) -> Status {
    match blk.debug_resume(argv[1]) {
        Ok(()) => {
            con.say(&resuming(argv[1]));
            Status::Ok
        }
        Err(e) => {
            con.say(&format!("Could not resume request: {}", strerror(&e)));
            Status::Failed
        }
    }
}

/// Returns once a request is suspended as the tag. Where none is and none
/// can get there (every request in flight completed or stopped), qemu-io
/// would wait for ever; zio fails.
fn wait_break_f(blk: &BlockBackend, con: &mut Console, aio: &mut AioSet, argv: &[&str]) -> Status {
    aio.settle(blk, con);
    if blk.debug_is_suspended(argv[1]) {
        return Status::Ok;
    }
    con.say(&format!(
        "Could not wait for breakpoint {}: no request is suspended there, and none is running",
        argv[1]
    ));
    Status::Failed
}

const BREAK_HELP: &str = "
 sets a one-shot breakpoint on a blkdebug event

 Example:
 'break pwritev A' - the next request that reaches pwritev is suspended as A

 The image must have a blkdebug node (e.g. blkdebug::FILE or
 driver=blkdebug); the event is one of QEMU's blkdebug event names. The
 blkdebug node reaches pwritev_rmw_head, pwritev_rmw_after_head,
 pwritev_rmw_tail and pwritev_rmw_after_tail (a write not aligned to its
 align= option, read-modify-written), pwritev, pwritev_zero and
 pwritev_done (every write, write-zeroes) and flush_to_os and
 flush_to_disk (a flush). A suspended request waits for 'resume tag';
 later aio requests overtake it, and the ones overlapping it wait.
";

const REMOVE_BREAK_HELP: &str = "
 removes the breakpoints tagged as tag and resumes the requests suspended as tag

 As in qemu-io, it fails (No such file or directory) unless a breakpoint
 not yet hit was removed, even when it resumed requests.
";

const RESUME_HELP: &str = "
 resumes the request most recently suspended as tag
";

const WAIT_BREAK_HELP: &str = "
 waits until a request is suspended as tag

 Fails when no request is suspended as tag and no request in flight is
 still running (qemu-io would wait for ever).
";
