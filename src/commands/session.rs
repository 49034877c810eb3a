//! The session family: open, close, quit, help, sleep. These manage the
//! shell itself rather than do I/O.

use std::time::{Duration, Instant};

use super::args::{self, Opt, strtol0};
use super::{Body, Command, Shell, Status, find, getopt, not_found, table, usage};
use zio_block::{OpenRequest, open_image};

pub const COMMANDS: &[Command] = &[
    Command {
        name: "open",
        altname: Some("o"),
        argmin: 1,
        argmax: None,
        args: Some("[-rsCnkU] [-t cache] [-d discard] [-o options] [path]"),
        oneline: "open the file specified by path",
        help: Some(OPEN_HELP),
        writes: false,
        body: Body::Shell(open_f),
    },
    Command {
        name: "reopen",
        altname: None,
        argmin: 0,
        argmax: None,
        args: Some("[(-r|-w)] [-c cache] [-o options]"),
        oneline: "reopens an image with new options",
        help: Some(REOPEN_HELP),
        writes: false,
        body: Body::Shell(reopen_f),
    },
    Command {
        name: "close",
        altname: Some("c"),
        argmin: 0,
        argmax: Some(0),
        args: None,
        oneline: "close the current open file",
        help: Some(CLOSE_HELP),
        writes: false,
        body: Body::Shell(close_f),
    },
    Command {
        name: "quit",
        altname: Some("q"),
        argmin: 0,
        argmax: None,
        args: None,
        oneline: "exit the program",
        help: Some(QUIT_HELP),
        writes: false,
        body: Body::Shell(|_, _| Status::Quit),
    },
    Command {
        name: "help",
        altname: Some("?"),
        argmin: 0,
        argmax: Some(1),
        args: Some("[command]"),
        oneline: "help for one or all commands",
        help: Some(HELP_HELP),
        writes: false,
        body: Body::Shell(help_f),
    },
    Command {
        name: "sleep",
        altname: None,
        argmin: 1,
        argmax: Some(1),
        args: None,
        oneline: "waits for the given value in milliseconds",
        help: Some(SLEEP_HELP),
        writes: false,
        body: Body::Shell(sleep_f),
    },
];

fn open_f(sh: &mut Shell, argv: &[&str]) -> Status {
    // An open, even one that fails, means the embedded default is not wanted.
    sh.pending_default = None;
    if sh.blk.is_some() && !sh.default_device {
        sh.console.warn(&format!(
            "{}: file open already, try 'help close'",
            sh.console.prog
        ));
        return Status::Failed;
    }
    let mut req = OpenRequest::default();
    let mut native_aio = false;
    let mut options: Vec<String> = Vec::new();
    let mut g = getopt(argv);
    for o in g.by_ref() {
        match o {
            Opt::Flag('r', _) => req.read_only = true,
            Opt::Flag('n', _) => req.nocache = true,
            Opt::Flag('o', Some(v)) => options.push(v.to_string()),
            Opt::Flag('U', _) => req.force_share = true,
            Opt::Flag('t', Some(mode)) => match args::cache_mode_direct(mode) {
                Ok(direct) => req.nocache = direct,
                Err(e) => {
                    sh.console.warn(&format!("{}: {e}", sh.console.prog));
                    return Status::Failed;
                }
            },
            Opt::Flag('d', Some(mode)) => {
                if let Err(e) = args::check_discard_mode(mode) {
                    sh.console.warn(&format!("{}: {e}", sh.console.prog));
                    return Status::Failed;
                }
            }
            Opt::Flag('s', _) => req.snapshot = true,
            // Copy-on-read: no zio driver has a backing image to copy from.
            Opt::Flag('C', _) => {}
            Opt::Flag('k', _) => native_aio = true,
            Opt::Bad(msg) => {
                sh.console.warn(&msg);
                return usage(&mut sh.console, "open");
            }
            Opt::Flag(..) => return usage(&mut sh.console, "open"),
        }
    }
    let opts = (!options.is_empty()).then(|| options.join(","));
    match g.operands() {
        [] => {
            req.image_opts = true;
            req.target = opts;
        }
        [path] => {
            req.target = Some(path.to_string());
            req.options = opts;
        }
        _ => return usage(&mut sh.console, "open"),
    }
    if native_aio && !req.nocache {
        let device = req.target.as_deref().filter(|_| !req.image_opts);
        let at = device.map_or(String::new(), |d| format!(" device {d}"));
        sh.console.warn(&format!(
            "{}: can't open{at}: aio=native was specified, but it requires cache.direct=on, which was not specified.",
            sh.console.prog
        ));
        return Status::Failed;
    }
    match open_image(&req) {
        Ok(blk) => {
            sh.blk = Some(blk);
            sh.open_req = Some(req);
            sh.default_device = false;
            Status::Ok
        }
        Err(e) => {
            sh.console.warn(&format!("{}: {e}", sh.console.prog));
            Status::Failed
        }
    }
}

const REOPEN_HELP: &str = "
 opens the open image again with changed options, as qemu-io's reopen

 Example:
 'reopen -o offset=1M,size=4M' - the raw node now shows 4 MiB from 1 MiB on
 'reopen -r' - the image is read-only from now on

 -r, -- read-only from now on
 -w, -- read-write from now on
 -c, -- the cache mode (none, directsync, writeback, writethrough, unsafe)
 -o, -- options set over those the image was opened with (cf. 'open')
 zio closes the image and opens it with the new options; if that fails,
 the error is printed and the image is opened as it was.
";

fn reopen_f(sh: &mut Shell, argv: &[&str]) -> Status {
    let prog = sh.console.prog;
    let (mut ro, mut rw, mut cache, mut options) = (false, false, None, Vec::new());
    let mut g = getopt(argv);
    for o in g.by_ref() {
        match o {
            Opt::Flag('r', _) => ro = true,
            Opt::Flag('w', _) => rw = true,
            Opt::Flag('c', Some(mode)) => match args::cache_mode_direct(mode) {
                Ok(direct) => cache = Some(direct),
                Err(e) => {
                    sh.console.warn(&format!("{prog}: {e}"));
                    return Status::Failed;
                }
            },
            Opt::Flag('o', Some(v)) => options.push(v.to_string()),
            Opt::Bad(msg) => {
                sh.console.warn(&msg);
                return usage(&mut sh.console, "reopen");
            }
            Opt::Flag(..) => return usage(&mut sh.console, "reopen"),
        }
    }
    if !g.operands().is_empty() {
        return usage(&mut sh.console, "reopen");
    }
    if ro && rw {
        sh.console
            .warn(&format!("{prog}: Only one -r/-w option may be given"));
        return Status::Failed;
    }
    let (Some(old), Some(_)) = (sh.open_req.clone(), sh.blk.as_ref()) else {
        sh.console.warn("no file open, try 'help open'");
        return Status::Failed;
    };
    let mut req = old.clone();
    if ro || rw {
        req.read_only = ro;
    }
    if let Some(direct) = cache {
        req.nocache = direct;
    }
    if !options.is_empty() {
        let mut all: Vec<String> = old.options.iter().cloned().collect();
        all.extend(options);
        req.options = Some(all.join(","));
    }
    // The old open goes first: its lock would stand in the new one's way.
    sh.blk = None;
    match open_image(&req) {
        Ok(blk) => {
            sh.blk = Some(blk);
            sh.open_req = Some(req);
            Status::Ok
        }
        Err(e) => {
            sh.console
                .warn(&format!("{prog}: {}", reopen_error(&e.reason)));
            match open_image(&old) {
                Ok(blk) => sh.blk = Some(blk),
                Err(e) => {
                    sh.console.warn(&format!("{prog}: {e}"));
                    sh.open_req = None;
                }
            }
            Status::Failed
        }
    }
}

/// QEMU's words for an option a reopen cannot set.
fn reopen_error(reason: &str) -> String {
    let unknown = [
        "does not support the option '",
        "doesn't support the option '",
    ];
    for u in unknown {
        if let Some((_, key)) = reason.split_once(u) {
            return format!("Cannot change the option '{}", key);
        }
    }
    reason.to_string()
}

fn close_f(sh: &mut Shell, _argv: &[&str]) -> Status {
    sh.default_device = false;
    sh.pending_default = None;
    sh.open_req = None;
    if sh.blk.take().is_none() {
        sh.console.warn("no file open, try 'help open'");
        return Status::Failed;
    }
    Status::Ok
}

fn help_f(sh: &mut Shell, argv: &[&str]) -> Status {
    let out = &mut sh.console;
    match argv.get(1) {
        None => {
            for c in table() {
                out.say(&c.usage_line(c.name));
            }
            out.say("");
            out.say("Use 'help commandname' for extended help.");
            Status::Ok
        }
        Some(word) => match find(word) {
            None => {
                out.say(&not_found(word, false));
                Status::Failed
            }
            Some(c) => {
                out.say(&c.usage_line(word));
                if let Some(text) = c.help {
                    let _ = out.out().write_all(text.as_bytes());
                }
                Status::Ok
            }
        },
    }
}

fn sleep_f(sh: &mut Shell, argv: &[&str]) -> Status {
    match strtol0(argv[1]) {
        Some(ms) if ms >= 0 => {
            sh.console.flush();
            // In short steps, so that Ctrl-C at the prompt cuts it.
            let (wait, start) = (Duration::from_millis(ms as u64), Instant::now());
            loop {
                let left = wait.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Status::Ok;
                }
                if sh.console.interrupt.is_set() {
                    return Status::Failed;
                }
                std::thread::sleep(left.min(Duration::from_millis(20)));
            }
        }
        _ => {
            sh.console
                .say(&format!("{} is not a valid number", argv[1]));
            Status::Failed
        }
    }
}

const OPEN_HELP: &str = "
 opens a new file in the requested mode

 Example:
 'open -n -o driver=raw /tmp/data' - opens raw data file read-write, uncached

 Opens a file for subsequent use by all of the other zio commands.
 -r, -- open file read-only
 -n, -- disable host cache (O_DIRECT), short for -t none
 -U, -- force shared permissions
 -t, -- use the given cache mode for the image (none, directsync, writeback,
        writethrough, unsafe)
 -d, -- use the given discard mode for the image (ignore, off, unmap, on)
 -o, -- options to be given to the block driver (driver=raw,file.filename=...)
 -s, -- write to a throwaway overlay (in memory); the image stays as it was
 -C, -- copy-on-read: accepted; changes nothing (no zio image has a backing file)
 -k, -- native AIO: accepted; changes nothing, and needs -n, as in QEMU
";

const CLOSE_HELP: &str = "
 closes the open image

 Example:
 'close' then 'open -r /tmp/data' - reopens an image read-only

 Closes the current image (dropping its lock), so that 'open' can open
 another one; until then commands that do I/O fail with \"no file open\".
 The embedded default device needs no 'close': 'open' replaces it.

";

const QUIT_HELP: &str = "
 exits zio

 Example:
 'quit' - stops reading commands; zio exits 1 if any command failed

 Commands after 'quit' (further -c options or lines of a script) are not
 run. End of input (Ctrl-D at the prompt) does the same.

";

const HELP_HELP: &str = "
 lists the commands, or explains one

 Example:
 'help' - one usage line per command
 'help zrp' - the usage line and extended help of zone_report

 A command's aliases (r for read, zrp for zone_report, ...) work here as
 everywhere. At the interactive prompt Tab completes command names,
 aliases, options and the path of 'open', and the usage of the command
 being typed is hinted after the cursor.

";

const SLEEP_HELP: &str = "
 waits for the given number of milliseconds

 Example:
 'sleep 500' - waits half a second

 The value is a decimal, octal (0...) or hexadecimal (0x...) number.
 Output of earlier commands is flushed before the wait.

";
