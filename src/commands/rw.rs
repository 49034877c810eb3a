//! The I/O family: read, readv, write, writev, discard, and the aio_read,
//! aio_write and aio_flush forms. Options, checks, messages and reports
//! follow qemu-io 10.0.2 line for line. An aio_ request runs in a thread
//! of its own ([`super::aio`]); one that no blkdebug breakpoint or
//! overlapping request stops completes before its command returns. A write or
//! writev is one request to the backend, as qemu-io sends it (the backend
//! builds it from one bounded pattern buffer); its progress bar follows
//! what the block layer reports done. Reads above 16 MiB stream through
//! the backend's bounded buffer in chunks, and stop between two 64 MiB
//! pieces once Ctrl-C is pressed at the interactive prompt (a write is not
//! cut).

use std::io;
use std::time::Instant;

use super::aio::AioSet;
use super::args::{Opt, cvtnum, parse_pattern};
use super::progress::{PIECE, Progress};
use super::report::{IoReport, cvtstr, dump_buffer};
use super::{Body, Command, Console, Interrupt, Status, getopt, usage};
use zio_block::aligned::AlignedBuf;
use zio_block::{BDRV_REQUEST_MAX_BYTES, BlockBackend, WriteFlags, strerror};

/// Reads up to this size land in one buffer, as in qemu-io; larger ones
/// stream, and `-v` then reads the range a second time to dump it.
const WHOLE_READ_MAX: u64 = 16 << 20;

pub const COMMANDS: &[Command] = &[
    Command {
        name: "read",
        altname: Some("r"),
        argmin: 2,
        argmax: None,
        args: Some("[-Cpqrv] [-P pattern [-s off] [-l len]] off len"),
        oneline: "reads a number of bytes at a specified offset",
        help: Some(READ_HELP),
        writes: false,
        body: Body::Io(read_f),
    },
    Command {
        name: "readv",
        altname: None,
        argmin: 2,
        argmax: None,
        args: Some("[-Cqrv] [-P pattern] off len [len..]"),
        oneline: "reads a number of bytes at a specified offset",
        help: Some(READV_HELP),
        writes: false,
        body: Body::Io(readv_f),
    },
    Command {
        name: "write",
        altname: Some("w"),
        argmin: 2,
        argmax: None,
        args: Some("[-Cfnpqruz] [-P pattern | -s source_file] off len"),
        oneline: "writes a number of bytes at a specified offset",
        help: Some(WRITE_HELP),
        writes: true,
        body: Body::Io(write_f),
    },
    Command {
        name: "writev",
        altname: None,
        argmin: 2,
        argmax: None,
        args: Some("[-Cfqr] [-P pattern] off len [len..]"),
        oneline: "writes a number of bytes at a specified offset",
        help: Some(WRITEV_HELP),
        writes: true,
        body: Body::Io(writev_f),
    },
    Command {
        name: "discard",
        altname: Some("d"),
        argmin: 2,
        argmax: None,
        args: Some("[-Cq] off len"),
        oneline: "discards a number of bytes at a specified offset",
        help: Some(DISCARD_HELP),
        writes: true,
        body: Body::Io(discard_f),
    },
    Command {
        name: "aio_read",
        altname: None,
        argmin: 2,
        argmax: None,
        args: Some("[-Ciqrv] [-P pattern] off len [len..]"),
        oneline: "asynchronously reads a number of bytes",
        help: Some(AIO_READ_HELP),
        writes: false,
        body: Body::Aio(aio_read_f),
    },
    Command {
        name: "aio_write",
        altname: None,
        argmin: 2,
        argmax: None,
        args: Some("[-Cfiqruz] [-P pattern] off len [len..]"),
        oneline: "asynchronously writes a number of bytes",
        help: Some(AIO_WRITE_HELP),
        writes: true,
        body: Body::Aio(aio_write_f),
    },
    Command {
        name: "aio_flush",
        altname: None,
        argmin: 0,
        argmax: Some(0),
        args: None,
        oneline: "completes all outstanding aio requests",
        help: Some(AIO_FLUSH_HELP),
        writes: false,
        body: Body::Aio(aio_flush_f),
    },
];

/// Flags shared by the reporting commands.
#[derive(Default)]
struct Output {
    csv: bool,
    quiet: bool,
    verbose: bool,
}

/// A parsed number, or the qemu-io error line already printed.
pub(super) fn num(con: &mut Console, arg: &str) -> Option<u64> {
    match cvtnum(arg) {
        Ok(n) => Some(n),
        Err(msg) => {
            con.say(&msg);
            None
        }
    }
}

pub(super) fn pattern(con: &mut Console, arg: &str) -> Option<u8> {
    match parse_pattern(arg) {
        Ok(p) => Some(p),
        Err(msg) => {
            con.say(&msg);
            None
        }
    }
}

/// A length operand of read/write/discard, limited as qemu-io limits it.
fn length(con: &mut Console, arg: &str) -> Option<u64> {
    let n = num(con, arg)?;
    if n > BDRV_REQUEST_MAX_BYTES {
        con.say(&format!(
            "length cannot exceed {BDRV_REQUEST_MAX_BYTES}, given {arg}"
        ));
        return None;
    }
    Some(n)
}

/// The lengths of readv/writev, added up; qemu-io's iovec checks.
pub(super) fn vector_length(con: &mut Console, args: &[&str]) -> Option<u64> {
    let mut total: u64 = 0;
    for arg in args {
        let n = num(con, arg)?;
        if n > BDRV_REQUEST_MAX_BYTES {
            con.say(&format!(
                "Argument '{arg}' exceeds maximum size {BDRV_REQUEST_MAX_BYTES}"
            ));
            return None;
        }
        if total > BDRV_REQUEST_MAX_BYTES - n {
            con.say(&format!(
                "The total number of bytes exceed the maximum size {BDRV_REQUEST_MAX_BYTES}"
            ));
            return None;
        }
        total += n;
    }
    Some(total)
}

/// An unknown option or a missing option argument: getopt's message on
/// stderr, then the usage line.
pub(super) fn bad_option(con: &mut Console, cmd: &str, msg: &str) -> Status {
    con.warn(msg);
    usage(con, cmd)
}

/// The `off len` operands of read and discard.
fn offset_length(con: &mut Console, cmd: &str, ops: &[&str]) -> Result<(u64, u64), Status> {
    let &[off_arg, len_arg] = ops else {
        return Err(usage(con, cmd));
    };
    let offset = num(con, off_arg).ok_or(Status::Failed)?;
    let count = length(con, len_arg).ok_or(Status::Failed)?;
    Ok((offset, count))
}

/// The `off len [len..]` operands of readv and writev.
fn offset_vector(con: &mut Console, cmd: &str, ops: &[&str]) -> Result<(u64, u64), Status> {
    if ops.len() < 2 {
        return Err(usage(con, cmd));
    }
    let offset = num(con, ops[0]).ok_or(Status::Failed)?;
    let count = vector_length(con, &ops[1..]).ok_or(Status::Failed)?;
    Ok((offset, count))
}

/// What a read checks: `len` bytes from `start` (device offsets) hold `byte`.
#[derive(Clone, Copy)]
struct Verify {
    byte: u8,
    start: u64,
    len: u64,
}

impl Verify {
    /// False if the part of `chunk` (at device offset `at`) inside the
    /// checked range holds anything else.
    fn holds(&self, at: u64, chunk: &[u8]) -> bool {
        let lo = self.start.max(at);
        let hi = (self.start + self.len).min(at + chunk.len() as u64);
        lo >= hi
            || chunk[(lo - at) as usize..(hi - at) as usize]
                .iter()
                .all(|&b| b == self.byte)
    }
}

/// The body shared by read and readv.
fn do_read(
    blk: &BlockBackend,
    con: &mut Console,
    Range { op, offset, count }: Range,
    verify: Option<Verify>,
    out: &Output,
) -> Status {
    let mut ok = true;
    let start = Instant::now();
    let mut whole = None;
    let res = if count <= WHOLE_READ_MAX {
        let mut buf = AlignedBuf::new(count as usize);
        let r = blk.read(offset, buf.as_mut_slice());
        if r.is_ok()
            && let Some(v) = verify
        {
            ok = v.holds(offset, buf.as_slice());
        }
        whole = Some(buf);
        r
    } else {
        // A streamed read shows a bar at a terminal after a second.
        let bar = Progress::new(op, Some(count));
        let r = read_stream(blk, &con.interrupt, offset, count, |at, chunk| {
            if let Some(v) = verify {
                ok &= v.holds(at, chunk);
            }
            bar.inc(chunk.len() as u64);
        });
        bar.finish();
        r
    };
    let elapsed = start.elapsed().into();
    if con.interrupt.is_set() {
        // Ctrl-C: no report of a cut read (the shell says it stopped).
        return Status::Failed;
    }
    if let Err(e) = res {
        con.say(&format!("{op} failed: {}", strerror(&e)));
        return Status::Failed;
    }
    if let (false, Some(v)) = (ok, verify) {
        con.say(&format!(
            "Pattern verification failed at offset {}, {} bytes",
            v.start, v.len
        ));
    }
    let status = if ok { Status::Ok } else { Status::Failed };
    if out.quiet {
        return status;
    }
    if out.verbose {
        let dumped = match &whole {
            Some(buf) => dump_buffer(con.out(), offset, buf.as_slice()),
            None => {
                let mut werr = Ok(());
                let interrupt = con.interrupt.clone();
                let r = read_stream(blk, &interrupt, offset, count, |at, chunk| {
                    if werr.is_ok() {
                        werr = dump_buffer(con.out(), at, chunk);
                    }
                });
                r.and(werr)
            }
        };
        if con.interrupt.is_set() {
            return Status::Failed;
        }
        if let Err(e) = dumped {
            con.say(&format!("{op} failed: {}", strerror(&e)));
            return Status::Failed;
        }
    }
    report(con, "read", offset, count, elapsed, out.csv);
    status
}

/// `blk.read_each` in pieces of [`PIECE`] bytes, stopping between two
/// once the user pressed Ctrl-C (the read then ends early, `Interrupted`).
/// As `read_each`, nothing is read unless the whole range is valid.
fn read_stream(
    blk: &BlockBackend,
    interrupt: &Interrupt,
    offset: u64,
    count: u64,
    mut each: impl FnMut(u64, &[u8]),
) -> io::Result<()> {
    blk.check_request(offset, count)?;
    let mut done = 0;
    while done < count {
        if interrupt.is_set() {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = (count - done).min(PIECE);
        blk.read_each(offset + done, n, &mut each)?;
        done += n;
    }
    Ok(())
}

fn report(
    con: &mut Console,
    op: &str,
    offset: u64,
    count: u64,
    elapsed: super::report::Elapsed,
    csv: bool,
) {
    let r = IoReport {
        op,
        offset,
        count,
        total: count,
        ops: 1,
        elapsed,
    };
    let _ = r.write_to(con.out(), csv);
}

fn read_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    let mut out = Output::default();
    let (mut pat, mut pat_off, mut pat_len) = (None, None, None);
    let mut g = getopt(argv);
    for o in g.by_ref() {
        match o {
            Opt::Flag('C', _) => out.csv = true,
            Opt::Flag('l', Some(v)) => match num(con, v) {
                Some(n) => pat_len = Some(n),
                None => return Status::Failed,
            },
            Opt::Flag('p' | 'r', _) => {}
            Opt::Flag('P', Some(v)) => match pattern(con, v) {
                Some(p) => pat = Some(p),
                None => return Status::Failed,
            },
            Opt::Flag('q', _) => out.quiet = true,
            Opt::Flag('s', Some(v)) => match num(con, v) {
                Some(n) => pat_off = Some(n),
                None => return Status::Failed,
            },
            Opt::Flag('v', _) => out.verbose = true,
            Opt::Bad(msg) => return bad_option(con, "read", &msg),
            Opt::Flag(..) => return usage(con, "read"),
        }
    }
    let (offset, count) = match offset_length(con, "read", g.operands()) {
        Ok(v) => v,
        Err(status) => return status,
    };
    if pat.is_none() && (pat_len.is_some() || pat_off.is_some()) {
        return usage(con, "read");
    }
    let skip = pat_off.unwrap_or(0);
    let checked = pat_len
        .map(|l| l as i128)
        .unwrap_or(count as i128 - skip as i128);
    if checked < 0 || checked + skip as i128 > count as i128 {
        con.say("pattern verification range exceeds end of read data");
        return Status::Failed;
    }
    let verify = pat.map(|byte| Verify {
        byte,
        start: offset + skip,
        len: checked as u64,
    });
    let range = Range {
        op: "read",
        offset,
        count,
    };
    do_read(blk, con, range, verify, &out)
}

fn readv_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    read_vectored(blk, con, argv, "readv").unwrap_or_else(|ended| ended)
}

/// readv and aio_read (`word`): the same options (aio_read adds -i), the
/// same operands and the same read, whose status is `Ok`; `Err` is the
/// status of a command that ended before reading (a bad operand, or -i).
fn read_vectored(
    blk: &BlockBackend,
    con: &mut Console,
    argv: &[&str],
    word: &'static str,
) -> Result<Status, Status> {
    let job = parse_read_vectored(con, argv, word)?;
    Ok(job.run(blk, con))
}

/// A parsed readv or aio_read.
struct ReadJob {
    range: Range<'static>,
    verify: Option<Verify>,
    out: Output,
}

impl ReadJob {
    fn run(self, blk: &BlockBackend, con: &mut Console) -> Status {
        do_read(blk, con, self.range, self.verify, &self.out)
    }
}

fn parse_read_vectored(
    con: &mut Console,
    argv: &[&str],
    word: &'static str,
) -> Result<ReadJob, Status> {
    let mut out = Output::default();
    let mut pat = None;
    let mut g = getopt(argv);
    for o in g.by_ref() {
        match o {
            Opt::Flag('C', _) => out.csv = true,
            Opt::Flag('i', _) => {
                con.say("injecting invalid read request");
                return Err(Status::Ok);
            }
            Opt::Flag('P', Some(v)) => match pattern(con, v) {
                Some(p) => pat = Some(p),
                None => return Err(Status::Failed),
            },
            Opt::Flag('q', _) => out.quiet = true,
            Opt::Flag('r', _) => {}
            Opt::Flag('v', _) => out.verbose = true,
            Opt::Bad(msg) => return Err(bad_option(con, word, &msg)),
            Opt::Flag(..) => return Err(usage(con, word)),
        }
    }
    let (offset, count) = offset_vector(con, word, g.operands())?;
    let verify = pat.map(|byte| Verify {
        byte,
        start: offset,
        len: count,
    });
    // qemu-io names a failed aio_read "readv" too.
    let range = Range {
        op: "readv",
        offset,
        count,
    };
    Ok(ReadJob { range, verify, out })
}

/// What a write puts down.
enum Fill {
    /// Buffers of these lengths filled with the byte, one after the other.
    Pattern(u8, Vec<u64>),
    /// These bytes (`write -s`).
    Data(Vec<u8>),
    Zeroes,
}

/// `write -s FILE`'s data, as qemu-io builds it: the file's first `len`
/// bytes, repeated to fill `len` when the file is shorter. The error
/// (`FILE: No such file or directory`, `FILE: file is empty`) is qemu-io's.
fn data_from_file(path: &str, len: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let fail = |e: io::Error| format!("{path}: {}", strerror(&e));
    let file = std::fs::File::open(path).map_err(fail)?;
    let mut data = Vec::new();
    file.take(len).read_to_end(&mut data).map_err(fail)?;
    if data.is_empty() {
        return Err(format!("{path}: file is empty"));
    }
    let period = data.len();
    data.reserve(len as usize - period);
    while data.len() < len as usize {
        let n = period.min(len as usize - data.len());
        data.extend_from_within(..n);
    }
    Ok(data)
}

/// A checked request: the command word for errors, and the byte range.
struct Range<'a> {
    op: &'a str,
    offset: u64,
    count: u64,
}

fn do_write(
    blk: &BlockBackend,
    con: &mut Console,
    Range { op, offset, count }: Range,
    fill: Fill,
    flags: WriteFlags,
    out: &Output,
) -> Status {
    let start = Instant::now();
    let res: io::Result<()> = match fill {
        Fill::Pattern(b, lens) => write_pattern(blk, op, offset, &lens, b, flags),
        Fill::Data(data) => blk.write(offset, &data, flags),
        Fill::Zeroes => {
            let _bar = spinner(op, count);
            blk.write_zeroes(offset, count, flags)
        }
    };
    let elapsed = start.elapsed().into();
    if con.interrupt.is_set() {
        // Ctrl-C: no report of a cut read (the shell says it stopped).
        return Status::Failed;
    }
    if let Err(e) = res {
        con.say(&format!("{op} failed: {}", strerror(&e)));
        return Status::Failed;
    }
    if !out.quiet {
        report(con, "wrote", offset, count, elapsed, out.csv);
    }
    Status::Ok
}

/// A spinner with the request's size, for requests whose progress the
/// command layer cannot follow; it shows after a second at a terminal.
fn spinner(op: &str, count: u64) -> Progress {
    let bar = Progress::new(op, None);
    bar.set_message(cvtstr(count as f64));
    bar
}

/// `blk.write_pattern_vectored`: one request of buffers of `lens` bytes,
/// with a progress bar at a terminal for a long one, moved by what the
/// block layer reports done. The command never cuts the request: where a
/// device cuts it, and how the pieces' errors add up, is the device's.
fn write_pattern(
    blk: &BlockBackend,
    op: &str,
    offset: u64,
    lens: &[u64],
    byte: u8,
    flags: WriteFlags,
) -> io::Result<()> {
    let count: u64 = lens.iter().sum();
    if count <= PIECE {
        return blk.write_pattern_vectored(offset, lens, byte, flags, &|_| {});
    }
    let bar = Progress::new(op, Some(count));
    let r = blk.write_pattern_vectored(offset, lens, byte, flags, &|n| bar.inc(n));
    bar.finish();
    r
}

fn write_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    let mut out = Output::default();
    let mut flags = WriteFlags::default();
    let (mut pat, mut zero, mut source) = (None, false, None);
    let mut g = getopt(argv);
    for o in g.by_ref() {
        match o {
            Opt::Flag('C', _) => out.csv = true,
            Opt::Flag('f', _) => flags.fua = true,
            Opt::Flag('n', _) => flags.no_fallback = true,
            Opt::Flag('p' | 'r', _) => {}
            Opt::Flag('P', Some(v)) => match pattern(con, v) {
                Some(p) => pat = Some(p),
                None => return Status::Failed,
            },
            Opt::Flag('q', _) => out.quiet = true,
            Opt::Flag('s', Some(v)) => source = Some(v),
            Opt::Flag('u', _) => flags.may_unmap = true,
            Opt::Flag('z', _) => zero = true,
            Opt::Bad(msg) => return bad_option(con, "write", &msg),
            Opt::Flag(..) => return usage(con, "write"),
        }
    }
    let &[off_arg, len_arg] = g.operands() else {
        return usage(con, "write");
    };
    if usize::from(zero) + usize::from(pat.is_some()) + usize::from(source.is_some()) > 1 {
        con.say("Only one of -z, -P, and -s can be specified at the same time");
        return Status::Failed;
    }
    if flags.may_unmap && !zero {
        con.say("-u requires -z to be specified");
        return Status::Failed;
    }
    if flags.no_fallback && !zero {
        con.say("-n requires -z to be specified");
        return Status::Failed;
    }
    let Some(offset) = num(con, off_arg) else {
        return Status::Failed;
    };
    // Only an efficient write-zeroes (-z -n) may exceed the request limit.
    let Some(count) = num(con, len_arg) else {
        return Status::Failed;
    };
    if count > BDRV_REQUEST_MAX_BYTES && !(zero && flags.no_fallback) {
        con.say(&format!(
            "length cannot exceed {BDRV_REQUEST_MAX_BYTES} without -n, given {len_arg}"
        ));
        return Status::Failed;
    }
    let fill = if zero {
        Fill::Zeroes
    } else if let Some(path) = source {
        match data_from_file(path, count) {
            Ok(data) => Fill::Data(data),
            Err(msg) => {
                con.warn(&msg);
                return Status::Failed;
            }
        }
    } else {
        Fill::Pattern(pat.unwrap_or(0xcd), vec![count])
    };
    let range = Range {
        op: "write",
        offset,
        count,
    };
    do_write(blk, con, range, fill, flags, &out)
}

fn writev_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    write_vectored(blk, con, argv, "writev").unwrap_or_else(|ended| ended)
}

/// writev and aio_write (`word`): the same options (aio_write adds -i, -u
/// and -z, zeroing one length), operands and write, whose status is `Ok`;
/// `Err` is the status of a command that ended before writing.
fn write_vectored(
    blk: &BlockBackend,
    con: &mut Console,
    argv: &[&str],
    word: &'static str,
) -> Result<Status, Status> {
    let job = parse_write_vectored(con, argv, word)?;
    Ok(job.run(blk, con))
}

/// A parsed writev or aio_write.
struct WriteJob {
    range: Range<'static>,
    fill: Fill,
    flags: WriteFlags,
    out: Output,
}

impl WriteJob {
    fn run(self, blk: &BlockBackend, con: &mut Console) -> Status {
        do_write(blk, con, self.range, self.fill, self.flags, &self.out)
    }
}

fn parse_write_vectored(
    con: &mut Console,
    argv: &[&str],
    word: &'static str,
) -> Result<WriteJob, Status> {
    let mut out = Output::default();
    let mut flags = WriteFlags::default();
    let (mut pat, mut zero) = (0xcd, false);
    let mut g = getopt(argv);
    for o in g.by_ref() {
        match o {
            Opt::Flag('C', _) => out.csv = true,
            Opt::Flag('f', _) => flags.fua = true,
            Opt::Flag('i', _) => {
                con.say("injecting invalid write request");
                return Err(Status::Ok);
            }
            Opt::Flag('q', _) => out.quiet = true,
            Opt::Flag('r', _) => {}
            Opt::Flag('u', _) => flags.may_unmap = true,
            Opt::Flag('P', Some(v)) => match pattern(con, v) {
                Some(p) => pat = p,
                None => return Err(Status::Failed),
            },
            Opt::Flag('z', _) => zero = true,
            Opt::Bad(msg) => return Err(bad_option(con, word, &msg)),
            Opt::Flag(..) => return Err(usage(con, word)),
        }
    }
    let ops = g.operands();
    if ops.len() < 2 {
        return Err(usage(con, word));
    }
    if zero && ops.len() != 2 {
        con.say("-z supports only a single length parameter");
        return Err(Status::Failed);
    }
    if flags.may_unmap && !zero {
        con.say("-u requires -z to be specified");
        return Err(Status::Failed);
    }
    // qemu-io checks -z against -P with a flag its aio_write never sets,
    // so the pair writes zeros.
    let (offset, count) = if zero {
        let offset = num(con, ops[0]).ok_or(Status::Failed)?;
        (offset, num(con, ops[1]).ok_or(Status::Failed)?)
    } else {
        offset_vector(con, word, ops)?
    };
    let fill = if zero {
        Fill::Zeroes
    } else {
        // One buffer per length operand (all checked above), as qemu-io
        // builds its iovec.
        let lens = ops[1..].iter().filter_map(|a| cvtnum(a).ok()).collect();
        Fill::Pattern(pat, lens)
    };
    let range = Range {
        op: word,
        offset,
        count,
    };
    Ok(WriteJob {
        range,
        fill,
        flags,
        out,
    })
}

fn discard_f(blk: &BlockBackend, con: &mut Console, argv: &[&str]) -> Status {
    let mut out = Output::default();
    let mut g = getopt(argv);
    for o in g.by_ref() {
        match o {
            Opt::Flag('C', _) => out.csv = true,
            Opt::Flag('q', _) => out.quiet = true,
            Opt::Bad(msg) => return bad_option(con, "discard", &msg),
            Opt::Flag(..) => return usage(con, "discard"),
        }
    }
    let (offset, count) = match offset_length(con, "discard", g.operands()) {
        Ok(v) => v,
        Err(status) => return status,
    };
    let start = Instant::now();
    let res = {
        let _bar = spinner("discard", count);
        blk.discard(offset, count)
    };
    let elapsed = start.elapsed().into();
    if con.interrupt.is_set() {
        // Ctrl-C: no report of a cut read (the shell says it stopped).
        return Status::Failed;
    }
    if let Err(e) = res {
        con.say(&format!("discard failed: {}", strerror(&e)));
        return Status::Failed;
    }
    if !out.quiet {
        report(con, "discard", offset, count, elapsed, out.csv);
    }
    Status::Ok
}

const READ_HELP: &str = "
 reads a range of bytes from the given offset

 Example:
 'read -v 512 1k' - dumps 1 kilobyte read from 512 bytes into the file

 Reads a segment of the currently open file, optionally dumping it to the
 standard output stream (with -v option) for subsequent inspection.
 -C, -- report statistics in a machine parsable format
 -l, -- length for pattern verification (only with -P)
 -p, -- ignored for backwards compatibility
 -P, -- use a pattern to verify read data
 -q, -- quiet mode, do not show I/O statistics
 -r, -- register I/O buffer
 -s, -- start offset for pattern verification (only with -P)
 -v, -- dump buffer to standard output

";

const READV_HELP: &str = "
 reads a range of bytes from the given offset into multiple buffers

 Example:
 'readv -v 512 1k 1k ' - dumps 2 kilobytes read from 512 bytes into the file

 Reads a segment of the currently open file, optionally dumping it to the
 standard output stream (with -v option) for subsequent inspection.
 Uses multiple iovec buffers if more than one byte range is specified.
 -C, -- report statistics in a machine parsable format
 -P, -- use a pattern to verify read data
 -q, -- quiet mode, do not show I/O statistics
 -r, -- register I/O buffer
 -v, -- dump buffer to standard output

";

const WRITE_HELP: &str = "
 writes a range of bytes from the given offset

 Example:
 'write 512 1k' - writes 1 kilobyte at 512 bytes into the open file

 Writes into a segment of the currently open file, using a buffer
 filled with a set pattern (0xcdcdcdcd).
 -C, -- report statistics in a machine parsable format
 -f, -- use Force Unit Access semantics
 -n, -- with -z, don't allow slow fallback
 -p, -- ignored for backwards compatibility
 -P, -- use different pattern to fill file
 -q, -- quiet mode, do not show I/O statistics
 -r, -- register I/O buffer
 -s, -- take the data from a file (repeated when it is shorter than len)
 -u, -- with -z, allow unmapping
 -z, -- write zeroes using blk_pwrite_zeroes

";

const WRITEV_HELP: &str = "
 writes a range of bytes from the given offset source from multiple buffers

 Example:
 'writev 512 1k 1k' - writes 2 kilobytes at 512 bytes into the open file

 Writes into a segment of the currently open file, using a buffer
 filled with a set pattern (0xcdcdcdcd).
 -C, -- report statistics in a machine parsable format
 -f, -- use Force Unit Access semantics
 -P, -- use different pattern to fill file
 -q, -- quiet mode, do not show I/O statistics
 -r, -- register I/O buffer

";

const DISCARD_HELP: &str = "
 discards a range of bytes from the given offset

 Example:
 'discard 512 1k' - discards 1 kilobyte from 512 bytes into the file

 Discards a segment of the currently open file.
 -C, -- report statistics in a machine parsable format
 -q, -- quiet mode, do not show I/O statistics

";

/// What every aio_ help ends with.
macro_rules! aio_help {
    ($body:literal) => {
        concat!(
            $body,
            "
 zio runs each aio request until it completes or stops (at a blkdebug
 breakpoint, see 'help break', or behind an overlapping request being
 read-modify-written) before the command returns; a stopped request goes
 on when resumed, and its report is printed by the command that let it
 complete (resume, remove_break, aio_flush, wait_break). qemu-io may complete requests later and in any order
 (the report comes at aio_flush, at the next request that waits, or at
 exit). As in qemu-io, the command succeeds once the request is made: a
 failed request or a pattern mismatch is reported but does not change
 the exit status.
"
        )
    };
}

const AIO_READ_HELP: &str = aio_help!(
    "
 reads the given lengths from OFF into consecutive buffers, as readv

 Example:
 'aio_read -P 0x5a 0 64k' - reads 64 KiB at 0 and checks every byte is 0x5a

 -C, -- report statistics in a machine parsable format
 -i, -- make no request: counts an invalid request (prints a line saying so)
 -P, -- check the data read against a pattern byte
 -q, -- quiet mode, do not show I/O statistics
 -r, -- accepted (qemu-io registers the buffer)
 -v, -- dump the data read to standard output
"
);

const AIO_WRITE_HELP: &str = aio_help!(
    "
 writes buffers of the given lengths, filled with a pattern, from OFF, as
 writev; with -z, zeroes one length

 Example:
 'aio_write -P 0x5a 0 64k 64k' - writes 128 KiB of 0x5a at 0

 -C, -- report statistics in a machine parsable format
 -f, -- force unit access: the data is durable when the request completes
 -i, -- make no request: counts an invalid request (prints a line saying so)
 -P, -- fill the buffers with this byte (default 0xcd)
 -q, -- quiet mode, do not show I/O statistics
 -r, -- accepted (qemu-io registers the buffer)
 -u, -- with -z, the range may be unmapped
 -z, -- write zeroes (one length only)
"
);

const AIO_FLUSH_HELP: &str = "
 waits for every outstanding aio request. It does not flush the device's
 cache (that is flush). Fails when a request is suspended at a blkdebug
 breakpoint or waits behind one (qemu-io would wait for ever).
";

fn aio_read_f(blk: &BlockBackend, con: &mut Console, aio: &mut AioSet, argv: &[&str]) -> Status {
    let job = parse_read_vectored(con, argv, "aio_read");
    submit(
        blk,
        con,
        aio,
        job.map(|j| move |b: &BlockBackend, c: &mut Console| j.run(b, c)),
    )
}

fn aio_write_f(blk: &BlockBackend, con: &mut Console, aio: &mut AioSet, argv: &[&str]) -> Status {
    let job = parse_write_vectored(con, argv, "aio_write");
    submit(
        blk,
        con,
        aio,
        job.map(|j| move |b: &BlockBackend, c: &mut Console| j.run(b, c)),
    )
}

/// Makes a parsed aio request; the command succeeds once it is made (the
/// outcome is reported, not returned). `Err` is the status of a command
/// that ended before making it.
fn submit(
    blk: &BlockBackend,
    con: &mut Console,
    aio: &mut AioSet,
    job: Result<impl FnOnce(&BlockBackend, &mut Console) -> Status + Send + 'static, Status>,
) -> Status {
    match job {
        Ok(run) => {
            aio.submit(blk, con, move |b, c| {
                run(b, c);
            });
            Status::Ok
        }
        Err(ended) => ended,
    }
}

/// Waits for every aio request in flight. One stopped at a breakpoint would
/// keep qemu-io waiting for ever; zio fails instead.
fn aio_flush_f(blk: &BlockBackend, con: &mut Console, aio: &mut AioSet, _: &[&str]) -> Status {
    aio.settle(blk, con);
    match aio.in_flight() {
        0 => Status::Ok,
        n => {
            con.say(&format!(
                "aio_flush: {n} request(s) still suspended at a breakpoint or behind one; resume them first"
            ));
            Status::Failed
        }
    }
}
