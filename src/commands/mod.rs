//! The shell's commands and their dispatch, with qemu-io's names, aliases,
//! argument rules and messages.
//!
//! One file per command family (`rw`: read/write/readv/writev/discard,
//! `query`: flush/length/info/map, `session`: open/close/help/quit/sleep,
//! `zone`: the zone_* commands).
//! I/O commands receive the open `BlockBackend` and nothing else of the
//! block layer. Output goes through a [`Console`], so the same bytes reach a
//! terminal, a `-c` run and a test.

pub mod args;
mod query;
pub mod report;
mod rw;
mod session;
mod zone;

use std::io::{self, Write};

use crate::blocklayer::BlockBackend;

/// Where commands write: stdout for results, stderr for diagnostics.
/// Stdout is flushed before anything goes to stderr, so a merged stream
/// keeps program order.
pub struct Console {
    out: Box<dyn Write>,
    err: Box<dyn Write>,
}

impl Console {
    pub fn new(out: Box<dyn Write>, err: Box<dyn Write>) -> Self {
        Console { out, err }
    }

    /// The process's own stdout (buffered) and stderr.
    pub fn stdio() -> Self {
        Console::new(
            Box::new(io::BufWriter::with_capacity(64 * 1024, io::stdout())),
            Box::new(io::stderr()),
        )
    }

    pub fn out(&mut self) -> &mut dyn Write {
        &mut *self.out
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
/// backend; `Shell` commands manage the session itself.
#[derive(Clone, Copy)]
pub enum Body {
    Io(fn(&BlockBackend, &mut Console, &[&str]) -> Status),
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
        ]
        .into_iter()
        .flat_map(|family| family.iter().copied())
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

pub fn find(word: &str) -> Option<&'static Command> {
    table()
        .iter()
        .find(|c| c.name == word || c.altname == Some(word))
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
    /// Prefix of diagnostics (`zio: Block node is read-only`).
    pub prog: &'static str,
    /// The open image is the embedded default, which `open` replaces
    /// without asking for `close` first.
    pub default_device: bool,
}

impl Shell {
    pub fn new(blk: Option<BlockBackend>, console: Console) -> Self {
        Shell {
            blk,
            console,
            prog: "zio",
            default_device: false,
        }
    }

    /// Runs one command line.
    pub fn run_line(&mut self, line: &str) -> Status {
        let argv = args::breakline(line.trim_end_matches(['\n', '\r']));
        let Some(&word) = argv.first() else {
            return Status::Ok;
        };
        let Some(cmd) = find(word) else {
            self.console.warn(&format!("command \"{word}\" not found"));
            return Status::Failed;
        };
        // qemu-io's order: an open image first, then the operand count,
        // then permissions.
        if matches!(cmd.body, Body::Io(_)) && self.blk.is_none() {
            self.console.warn("no file open, try 'help open'");
            return Status::Failed;
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
        match (cmd.body, self.blk.as_ref()) {
            (Body::Shell(f), _) => f(self, &argv),
            (Body::Io(f), Some(blk)) => {
                if cmd.writes && blk.is_read_only() {
                    self.console
                        .warn(&format!("{}: Block node is read-only", self.prog));
                    return Status::Failed;
                }
                f(blk, &mut self.console, &argv)
            }
            (Body::Io(_), None) => Status::Failed,
        }
    }
}
