//! The shell's commands and their dispatch, with qemu-io's names, aliases,
//! argument rules and messages.
//!
//! One file per command family (`rw`: read/write/readv/writev/discard and
//! the aio_ forms, `query`: flush/length/info/map, `session`:
//! open/close/help/quit/sleep, `zone`: the zone_* commands, `debug`: the
//! blkdebug breakpoints). `aio` keeps the aio requests in flight.
//! `progress` is the progress bar any long command may draw at a terminal.
//! I/O commands receive the open `BlockBackend` and nothing else of the
//! block layer. Output goes through a [`Console`], so the same bytes reach a
//! terminal, a `-c` run and a test.

mod aio;
pub mod args;
mod debug;
mod format;
pub mod progress;
mod query;
pub mod report;
mod rw;
mod session;
mod zone;

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aio::AioSet;
use zio_block::{BlockBackend, OpenRequest, open_image};

/// Where commands write: stdout for results, stderr for diagnostics.
/// Stdout is flushed before anything goes to stderr, so a merged stream
/// keeps program order. A closed stdout (EPIPE: the reader went away, as in
/// `zio -c ... | head -1`) is remembered and every later write to it is
/// dropped, as qemu-io ignores printf's errors; long commands ask
/// [`stop_early`](Self::stop_early) and stop early, which also holds once
/// the user pressed Ctrl-C at the interactive prompt ([`Interrupt`]).
pub struct Console {
    out: PipeGuard,
    err: Box<dyn Write>,
    /// Set by Ctrl-C (SIGINT) while a command runs at the interactive
    /// prompt; never set elsewhere.
    pub interrupt: Interrupt,
    /// Prefix of diagnostics (`zio: Block node is read-only`): the name
    /// the program was invoked by.
    pub prog: &'static str,
}

/// The request to stop the running command: a flag the binary's SIGINT
/// handler sets (interactive sessions only) and the shell clears before
/// each command. Cheap to clone and to ask, from any thread.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// The flag itself, for a signal handler to set.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }

    /// Ctrl-C was pressed since the last [`take`](Self::take).
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Whether Ctrl-C was pressed, clearing the flag.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// A writer that turns EPIPE into "everything written" and remembers it,
/// so no caller sees a closed pipe as an error (or panics on one).
struct PipeGuard {
    inner: Box<dyn Write>,
    closed: bool,
}

impl PipeGuard {
    fn absorb(&mut self, r: io::Result<()>) -> io::Result<()> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            r => r,
        }
    }
}

impl Write for PipeGuard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.inner.flush();
        self.absorb(r)
    }
}

impl Console {
    pub fn new(out: Box<dyn Write>, err: Box<dyn Write>) -> Self {
        Console {
            out: PipeGuard {
                inner: out,
                closed: false,
            },
            err,
            interrupt: Interrupt::default(),
            prog: "zio",
        }
    }

    /// The process's own stdout (buffered) and stderr.
    pub fn stdio() -> Self {
        Console::new(
            Box::new(io::BufWriter::with_capacity(64 * 1024, io::stdout())),
            Box::new(io::stderr()),
        )
    }

    pub fn out(&mut self) -> &mut dyn Write {
        &mut self.out
    }

    /// Stdout was closed by its reader: nothing written to it arrives.
    pub fn out_closed(&self) -> bool {
        self.out.closed
    }

    /// A long command should stop now: nobody reads its output any more,
    /// or the user pressed Ctrl-C.
    pub fn stop_early(&self) -> bool {
        self.out.closed || self.interrupt.is_set()
    }

    pub fn err(&mut self) -> &mut dyn Write {
        let _ = self.out.flush();
        &mut *self.err
    }

    /// A whole line on stdout. Write errors (a closed pipe) are ignored, as
    /// qemu-io ignores printf's.
    pub fn say(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    /// A whole line on stderr.
    pub fn warn(&mut self, line: &str) {
        let _ = writeln!(self.err(), "{line}");
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
        let _ = self.err.flush();
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The command failed; the run goes on and exits 1.
    Failed,
    /// `quit`: stop reading commands.
    Quit,
}

/// A command's body. `Io` commands need an open image and get only its
/// backend; `Aio` ones the aio requests in flight too; `Shell` commands
/// manage the session itself.
#[derive(Clone, Copy)]
pub enum Body {
    Io(fn(&BlockBackend, &mut Console, &[&str]) -> Status),
    Aio(fn(&BlockBackend, &mut Console, &mut AioSet, &[&str]) -> Status),
    Shell(fn(&mut Shell, &[&str]) -> Status),
}

/// One entry of the command table.
#[derive(Clone, Copy)]
pub struct Command {
    pub name: &'static str,
    pub altname: Option<&'static str>,
    pub argmin: usize,
    /// `None`: any number.
    pub argmax: Option<usize>,
    /// The usage string (`[-Cq] [-P pattern] off len`): what `help` and the
    /// manual print, and the options the parser accepts ([`getopt`]).
    pub args: Option<&'static str>,
    pub oneline: &'static str,
    /// Extended help for `help NAME`.
    pub help: Option<&'static str>,
    /// Refused with "Block node is read-only" on a read-only image.
    pub writes: bool,
    pub body: Body,
}

/// Every command, sorted by name (the order `help` lists them in).
pub fn table() -> &'static [Command] {
    static TABLE: std::sync::OnceLock<Vec<Command>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut v: Vec<Command> = [
            rw::COMMANDS,
            query::COMMANDS,
            session::COMMANDS,
            zone::COMMANDS,
            debug::COMMANDS,
        ]
        .into_iter()
        .flat_map(|family| family.iter().copied())
        .map(|mut c| {
            c.help = c.help.or_else(|| fallback_help(c.name));
            c
        })
        .collect();
        v.sort_by_key(|c| c.name);
        v
    })
}

impl Command {
    /// `name args -- oneline`, with the word the user typed as the name.
    pub fn usage_line(&self, word: &str) -> String {
        match self.args {
            Some(a) => format!("{word} {a} -- {}", self.oneline),
            None => format!("{word} -- {}", self.oneline),
        }
    }
}

/// GNU getopt over a command line with the options its command's usage
/// line lists (see [`args::spec_of`]), so the help and the parser cannot
/// disagree; argv[0] is the command word (a name or an alias).
pub fn getopt<'a>(argv: &'a [&'a str]) -> args::GetOpt<'a> {
    let spec = argv
        .first()
        .and_then(|w| find(w))
        .and_then(|c| c.args)
        .map(args::spec_of)
        .unwrap_or_default();
    args::GetOpt::new(argv, spec)
}

pub fn find(word: &str) -> Option<&'static Command> {
    table()
        .iter()
        .find(|c| c.name == word || c.altname == Some(word))
}

/// Longest word [`suggest`] compares with the command names, in bytes.
pub const SUGGEST_MAX_LEN: usize = 64;

/// The command an unknown `word` was probably meant to be: the closest
/// name or alias by Damerau-Levenshtein distance, when it is clearly close
/// (at most 2 edits and at least 60% alike, or at least 70% alike), as
/// its canonical name; case is ignored. `foo` suggests nothing (`f` is 2 edits but only
/// a third alike); `zrpp` suggests `zone_report`, `readx` `read`.
/// Words longer than [`SUGGEST_MAX_LEN`] bytes get no suggestion (the
/// distance is quadratic in the word's length, and no command name is
/// anywhere near that long).
pub fn suggest(word: &str) -> Option<&'static str> {
    if word.is_empty() || word.len() > SUGGEST_MAX_LEN {
        return None;
    }
    let word = word.to_lowercase();
    let word = word.as_str();
    table()
        .iter()
        .flat_map(|c| {
            std::iter::once(c.name)
                .chain(c.altname)
                .map(move |n| (c, n))
        })
        .filter_map(|(c, n)| {
            let d = strsim::damerau_levenshtein(word, n);
            let sim = strsim::normalized_damerau_levenshtein(word, n);
            ((d <= 2 && sim >= 0.6) || sim >= 0.7).then_some((d, c.name))
        })
        .min_by_key(|&(d, name)| (d, name))
        .map(|(_, name)| name)
}

/// qemu-io's "not found" line, with a suggestion when one is clearly close.
pub fn not_found(word: &str, quoted: bool) -> String {
    let shown = if quoted {
        format!("\"{word}\"")
    } else {
        word.to_string()
    };
    match suggest(word) {
        Some(s) => format!("command {shown} not found (did you mean {s}?)"),
        None => format!("command {shown} not found"),
    }
}

/// Extended help for the query family commands whose table entry (in
/// `query.rs`) has none: qemu-io prints only the usage line for these; zio adds a
/// paragraph and an example. A text in the family's own table wins.
fn fallback_help(name: &str) -> Option<&'static str> {
    Some(match name {
        "flush" => {
            "
 flushes all in-core state of the open image to stable storage

 Example:
 'write 0 4k' then 'flush' - the 4 KiB are on the disk when flush returns

 Asks every node of the open image to flush its caches (fsync on a file or
 block device; nothing to do for an in-memory device). Prints nothing on
 success, 'flush failed: ...' on failure (invoked as qemu-io, nothing
 either: as qemu-io, only the exit status tells).

"
        }
        "length" => {
            "
 prints the size of the open image

 Example:
 'length' - prints '64 MiB' for a 64 MiB image

 The size is printed with a binary unit suffix, as qemu-io prints it
 (bytes, KiB, MiB, GiB, TiB).

"
        }
        "map" => {
            "
 prints the allocated areas of the open image

 Example:
 'map' - prints '64 MiB (0x4000000) bytes     allocated at offset 0 bytes (0x0)'

 Every zio format stores all of its bytes, so a file or device is one
 allocated extent, as qemu-io prints it for raw images; an NBD export
 reports its own (block status), one line per run of the same answer.

"
        }
        _ => return None,
    })
}

/// Prints a command's usage line on stdout and fails, as qemu-io does for
/// bad options or operands.
pub fn usage(con: &mut Console, cmd: &str) -> Status {
    if let Some(c) = find(cmd) {
        con.say(&c.usage_line(c.name));
    }
    Status::Failed
}

/// The session: the open image (if any) and the console.
pub struct Shell {
    pub blk: Option<BlockBackend>,
    pub console: Console,
    /// The open image is the embedded default, which `open` replaces
    /// without asking for `close` first.
    pub default_device: bool,
    /// The embedded default, not opened yet: the first command that needs
    /// an image opens it (and says so on stderr), unless an `open` or
    /// `close` came first, which drop it.
    pub pending_default: Option<OpenRequest>,
    /// How the open image was opened, for `reopen`.
    pub open_req: Option<OpenRequest>,
    /// The aio requests in flight on the open image.
    aio: AioSet,
}

impl Drop for Shell {
    /// The end of the session waits for the aio requests in flight.
    fn drop(&mut self) {
        self.drain_aio();
        self.console.flush();
    }
}

impl Shell {
    pub fn new(blk: Option<BlockBackend>, console: Console) -> Self {
        Shell {
            blk,
            console,
            default_device: false,
            pending_default: None,
            open_req: None,
            aio: AioSet::default(),
        }
    }

    /// Completes every aio request in flight, resuming the suspended ones
    /// (see [`AioSet::drain`]).
    fn drain_aio(&mut self) {
        if let Some(blk) = &self.blk {
            self.aio.drain(blk, &mut self.console);
        }
    }

    /// Opens the pending embedded default, if any; false (the error
    /// printed) if it would not open.
    fn open_pending_default(&mut self) -> bool {
        let Some(req) = self.pending_default.take() else {
            return true;
        };
        self.console.warn(&format!(
            "{}: no image given, using the embedded default: an in-memory zoned device like null_blk zoned=1 ({})",
            self.console.prog,
            req.target.as_deref().unwrap_or("")
        ));
        match open_image(&req) {
            Ok(blk) => {
                self.blk = Some(blk);
                self.open_req = Some(req);
                self.default_device = true;
                true
            }
            Err(e) => {
                self.console.warn(&format!("{}: {e}", self.console.prog));
                false
            }
        }
    }

    /// Runs one command line.
    pub fn run_line(&mut self, line: &str) -> Status {
        let argv = args::breakline(line.trim_end_matches(['\n', '\r']));
        let Some(&word) = argv.first() else {
            return Status::Ok;
        };
        let Some(cmd) = find(word) else {
            self.console.warn(&not_found(word, true));
            return Status::Failed;
        };
        // qemu-io's order: an open image first, then the operand count,
        // then permissions.
        let needs_image = matches!(cmd.body, Body::Io(_) | Body::Aio(_));
        if needs_image && self.blk.is_none() {
            if self.pending_default.is_none() {
                self.console.warn("no file open, try 'help open'");
                return Status::Failed;
            }
            if !self.open_pending_default() {
                return Status::Failed;
            }
        }
        let given = argv.len() - 1;
        if given < cmd.argmin || cmd.argmax.is_some_and(|m| given > m) {
            let expected = match cmd.argmax {
                None => format!("at least {} arguments", cmd.argmin),
                Some(m) if m == cmd.argmin => format!("{m} arguments"),
                Some(m) => format!("between {} and {m} arguments", cmd.argmin),
            };
            self.console.warn(&format!(
                "bad argument count {given} to {word}, expected {expected}"
            ));
            return Status::Failed;
        }
        let blk = match (cmd.body, self.blk.as_ref()) {
            (Body::Shell(f), _) => {
                // What replaces or closes the image waits for its requests.
                if matches!(cmd.name, "close" | "reopen")
                    || (cmd.name == "open" && self.default_device)
                {
                    self.drain_aio();
                }
                return f(self, &argv);
            }
            (_, None) => return Status::Failed,
            (_, Some(blk)) => blk,
        };
        if cmd.writes && blk.is_read_only() {
            self.console
                .warn(&format!("{}: Block node is read-only", self.console.prog));
            return Status::Failed;
        }
        let status = match cmd.body {
            // A breakpoint could stop it: run as an aio request is.
            Body::Io(f) if blk.has_debug_node() => {
                let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
                self.aio.run_sync(blk, &mut self.console, move |b, c| {
                    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                    f(b, c, &argv)
                })
            }
            Body::Io(f) => f(blk, &mut self.console, &argv),
            Body::Aio(f) => f(blk, &mut self.console, &mut self.aio, &argv),
            Body::Shell(_) => Status::Failed,
        };
        if self.aio.in_flight() > 0 {
            self.aio.settle(blk, &mut self.console);
        }
        status
    }
}

#[cfg(test)]
mod suggest_tests {
    use super::*;

    #[test]
    fn suggests_only_clearly_close_names() {
        assert_eq!(suggest("zrpp"), Some("zone_report"));
        assert_eq!(suggest("readx"), Some("read"));
        assert_eq!(suggest("ZRP"), Some("zone_report"));
        assert_eq!(suggest("zone_rep"), Some("zone_report"));
        let long = "zrpp".repeat(1 << 18);
        assert_eq!(suggest(&long), None);
        assert_eq!(
            not_found(&long, true),
            format!("command \"{long}\" not found")
        );
        for far in ["foo", "x", "rd", "nosuch", ""] {
            assert_eq!(suggest(far), None, "{far}");
        }
        assert_eq!(not_found("foo", true), "command \"foo\" not found");
        assert_eq!(
            not_found("wrte", false),
            "command wrte not found (did you mean write?)"
        );
    }

    #[test]
    fn a_closed_stdout_is_remembered_not_an_error() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut con = Console::new(Box::new(Closed), Box::new(io::sink()));
        assert!(!con.out_closed());
        con.say("lost");
        assert!(con.out_closed());
        assert!(con.out().write_all(b"also lost").is_ok());
        con.flush();
    }

    #[test]
    fn ctrl_c_stops_long_commands_and_is_taken_once() {
        let con = Console::new(Box::new(io::sink()), Box::new(io::sink()));
        let mut sh = Shell::new(None, con);
        assert!(!sh.console.stop_early());
        sh.console.interrupt.flag().store(true, Ordering::Relaxed);
        assert!(sh.console.stop_early());
        let start = std::time::Instant::now();
        assert_eq!(sh.run_line("sleep 60000"), Status::Failed);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        assert!(sh.console.interrupt.take());
        assert!(!sh.console.interrupt.take());
        assert!(!sh.console.stop_early());
        assert_eq!(sh.run_line("sleep 1"), Status::Ok);
    }

    #[test]
    fn fallback_help_fills_only_empty_entries() {
        for name in ["flush", "length", "map", "close", "quit", "sleep", "help"] {
            assert!(find(name).unwrap().help.is_some(), "{name}");
        }
        assert_eq!(find("read").unwrap().help, rw::COMMANDS[0].help);
    }

    /// A console whose stdout and stderr land in one buffer the test reads.
    fn captured() -> (Console, std::rc::Rc<std::cell::RefCell<Vec<u8>>>) {
        #[derive(Clone)]
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Shared(Default::default());
        let con = Console::new(Box::new(buf.clone()), Box::new(buf.clone()));
        (con, buf.0)
    }

    /// Every command accepts exactly the option letters its usage line (the
    /// line `help` and the manual print) lists, and the extended help
    /// describes each of them: run against a zoned null device, `CMD -X 0 1`
    /// (as many words as the command takes) is refused as an invalid option
    /// for every other letter.
    #[test]
    fn commands_accept_the_options_their_help_lists() {
        let req = OpenRequest {
            target: Some("driver=null,zoned=on".into()),
            image_opts: true,
            ..OpenRequest::default()
        };
        for c in table() {
            // No options and no operands, or any words (quit; blkdebug's
            // events and tags, which `-X` may be): nothing to parse.
            let words_only = [
                "quit",
                "sleep",
                "help",
                "break",
                "remove_break",
                "resume",
                "wait_break",
            ];
            if c.argmax == Some(0) || words_only.contains(&c.name) {
                continue;
            }
            let listed = args::spec_of(c.args.unwrap_or("")).replace(':', "");
            let (con, buf) = captured();
            // open parses only with no image open.
            let blk = (c.name != "open").then(|| open_image(&req).unwrap());
            let mut sh = Shell::new(blk, con);
            for l in ('a'..='z').chain('A'..='Z') {
                buf.borrow_mut().clear();
                let flag = format!("-{l}");
                let words = [flag.as_str(), "0", "1"];
                let n = c.argmax.unwrap_or(3).min(3);
                sh.run_line(&format!("{} {}", c.name, words[..n].join(" ")));
                let out = String::from_utf8_lossy(&buf.borrow()).into_owned();
                // A command without options takes `-X` as an operand, which
                // its count or its number parsing refuses.
                let refused = out.contains(&format!("invalid option -- '{l}'"))
                    || (listed.is_empty()
                        && (out.starts_with("bad argument count")
                            || out.starts_with("Parsing error")));
                assert_eq!(
                    refused,
                    !listed.contains(l),
                    "{} -{l}: usage {:?}, output {out:?}",
                    c.name,
                    c.args
                );
            }
            // Each listed letter has its ` -X, --` line in the extended help.
            let help = c.help.unwrap_or("");
            for l in listed.chars() {
                assert!(
                    help.lines().any(|h| h.starts_with(&format!(" -{l}, --"))),
                    "help {}: no line for -{l}",
                    c.name
                );
            }
            for long in args::long_options(c.args.unwrap_or("")) {
                assert!(
                    help.contains(&format!(" {long}, --")),
                    "help {}: {long}",
                    c.name
                );
            }
        }
    }
}
