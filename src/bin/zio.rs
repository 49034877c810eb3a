//! The `zio` binary: parses the command line, opens the image (or leaves
//! the embedded default for the shell to open when a command needs it),
//! then runs commands from `-c`, a terminal (rustyline) or a script on
//! stdin. Exit status 1 if any command failed.

#![deny(unsafe_code)]

use std::borrow::Cow;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hint, Hinter};
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config, Editor, Helper, Validator};

use zio::commands::args::{cache_mode_direct, check_discard_mode};
use zio::commands::{Command, Console, Shell, Status, find, table};
use zio_block::units::parse_size;
use zio_block::{
    OpenRequest, Verdict, check_image, creatable_formats, create_image, driver_names, open_image,
    strerror,
};

/// What `zio` opens when no image is named: a zoned null device with the
/// geometry of `modprobe null_blk zoned=1` (250 GiB, 256 MiB zones).
const DEFAULT_DEVICE: &str = "driver=null,zoned=on";

#[derive(Parser, Debug)]
#[command(
    name = "zio",
    version,
    about = "A qemu-io-style shell for zoned block devices",
    after_help = "Without IMAGE, the first command that needs one opens an in-memory zoned device\n\
                  like null_blk zoned=1 (unless an open or close came first).\n\
                  Without -c, commands are read from stdin (interactively on a terminal).\n\
                  Type 'help' at the prompt for the list of commands."
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    action: Option<Action>,
    /// Run a command (may be given several times; run in order)
    #[arg(short = 'c', long = "cmd", value_name = "CMD")]
    commands: Vec<String>,
    /// Image format (driver), e.g. raw (given twice, the last one counts)
    #[arg(
        short = 'f',
        long = "format",
        value_name = "FMT",
        conflicts_with = "image_opts",
        overrides_with = "format",
        value_parser = NameList(driver_names)
    )]
    format: Option<String>,
    /// Treat IMAGE as an option string: driver=raw,file.driver=file,file.filename=x.img
    #[arg(long = "image-opts")]
    image_opts: bool,
    /// Bypass the host page cache (O_DIRECT), short for -t none
    #[arg(short = 'n', long = "nocache")]
    nocache: bool,
    /// Cache mode, as qemu-io's: none or directsync bypass the host page
    /// cache (as -n); writeback, writethrough and unsafe use it (zio syncs
    /// only on flush, for all three). The last of -n and -t counts
    #[arg(
        short = 't',
        long = "cache",
        value_name = "MODE",
        overrides_with = "cache"
    )]
    cache: Option<String>,
    /// AIO mode: threads, native or io_uring. Accepted for qemu-io's
    /// callers; zio does blocking I/O in every mode. native needs -t none
    /// or -n, as in QEMU
    #[arg(short = 'i', long = "aio", value_name = "MODE", overrides_with = "aio")]
    aio: Option<String>,
    /// Short for -i native
    #[arg(short = 'k', long = "native-aio")]
    native_aio: bool,
    /// Discard mode: ignore/off or unmap/on. Accepted for qemu-io's
    /// callers; zio's discard command always passes the request on
    #[arg(
        short = 'd',
        long = "discard",
        value_name = "MODE",
        overrides_with = "discard"
    )]
    discard: Option<String>,
    /// Copy-on-read: accepted; no zio driver has a backing image to copy
    /// from, so reads are unchanged (as in QEMU without a backing file)
    #[arg(short = 'C', long = "copy-on-read")]
    copy_on_read: bool,
    /// Misalign buffers for O_DIRECT: accepted; zio's buffers stay aligned
    #[arg(short = 'm', long = "misalign")]
    misalign: bool,
    /// Define a QEMU object (e.g. secret): accepted and ignored, as no zio
    /// driver uses one
    #[arg(long = "object", value_name = "OBJECTDEF")]
    objects: Vec<String>,
    /// QEMU's tracing options: accepted and ignored (zio has no trace events)
    #[arg(short = 'T', long = "trace", value_name = "OPTIONS")]
    trace: Vec<String>,
    /// Write to a throwaway overlay: the image is opened read-only and
    /// stays as it was (in memory, up to a quarter of RAM)
    #[arg(short = 's', long = "snapshot")]
    snapshot: bool,
    /// Open the image read-only
    #[arg(short = 'r', long = "read-only")]
    read_only: bool,
    /// Force shared permissions: open an image in use by another process
    /// (read-only only; no lock is taken)
    #[arg(short = 'U', long = "force-share")]
    force_share: bool,
    /// Image file, block device, or (with --image-opts) an option string
    image: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Create an image, as `qemu-img create` does
    ///
    /// Formats: `zoned` (a persistent zoned device in one sparse file) and
    /// `raw`. Options of `zoned` (-o, comma-separated; sizes take suffixes):
    /// zone_size (default 256M), zone_capacity (default: zone_size),
    /// zone_nr_conv (conventional zones first, default 0), zone_max_open and
    /// zone_max_active (0: no limit, the default), zone_append_max (bytes,
    /// 0: no limit), kernel (6.1, the default, or 6.12: the host block
    /// layer it answers as), device (null_blk, the default, nvme-zns or
    /// scsi-zbc: the device family whose rules it follows).
    Create {
        /// Image format
        #[arg(
            short = 'f',
            long = "format",
            default_value = "zoned",
            value_parser = NameList(creatable_formats)
        )]
        format: String,
        /// Format options, e.g. zone_size=64M,zone_capacity=48M,zone_nr_conv=1
        #[arg(short = 'o', value_name = "OPTIONS")]
        options: Vec<String>,
        /// The file to create; an existing image is replaced only once the
        /// new one is complete, and refused while in use
        file: String,
        /// Device size, e.g. 1G
        size: String,
    },
    /// Check a zoned image, as `qemu-img check` does
    ///
    /// Verifies the header, the zone table's records (every field), the
    /// log, each zone's condition against its write pointer, the open/active
    /// counts against the limits, and the file's length. Exit status, as
    /// qemu-img check's: 0 clean (or repaired), 2 errors found, 1 not
    /// checked (no such file, in use), 63 not a zoned image (qemu-img's
    /// "format does not support checks"). The image is not modified
    /// without --repair.
    Check {
        /// Repair what can be repaired, then check again
        #[arg(long)]
        repair: bool,
        /// The zoned image
        file: String,
    },
    /// Serve an image as a Linux block device through ublk (docs/serve.md)
    ///
    /// Adds /dev/ublkbN (ublk_drv; a zoned image becomes a host-managed
    /// zoned disk, Linux 6.6+), prints its path once it is live, and serves
    /// it until SIGINT or SIGTERM; then removes it and flushes the image.
    /// The image stays locked meanwhile.
    #[cfg(feature = "serve")]
    Serve(zio_serve::ServeArgs),
    /// Print a shell completion script to stdout
    ///
    /// For example: zio completions bash > ~/.local/share/bash-completion/completions/zio
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff) to stdout, or write them all to a directory
    ///
    /// For example: zio man > ~/.local/share/man/man1/zio.1, or
    /// zio man --dir ~/.local/share/man/man1 for zio.1 and a page per
    /// subcommand (zio-create.1, zio-check.1, zio-completions.1, zio-man.1).
    Man {
        /// The page: zio (the default), or a subcommand's (create, check,
        /// completions, man)
        #[arg(value_parser = ["zio", "create", "check", "completions", "man"], default_value = "zio")]
        page: String,
        /// Write every page into DIR (which must exist) and print their paths
        #[arg(long, value_name = "DIR", conflicts_with = "page")]
        dir: Option<PathBuf>,
    },
}

/// The value of a `-f`: any word (an unknown one is refused by the open or
/// the create, in QEMU's words), with the driver table's names as its
/// possible values, so `--help` lists them and the completion scripts offer
/// them (`zio -f <Tab>`).
#[derive(Clone)]
struct NameList(fn() -> Vec<&'static str>);

impl clap::builder::TypedValueParser for NameList {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            (self.0)()
                .into_iter()
                .map(clap::builder::PossibleValue::new),
        ))
    }
}

/// Stdout for the subcommands: a write that fails (the reader closed the
/// pipe) silences the rest instead of panicking, as coreutils exit quietly.
#[derive(Default)]
struct QuietStdout {
    closed: bool,
}

impl QuietStdout {
    fn line(&mut self, line: &str) {
        if !self.closed {
            let mut out = io::stdout().lock();
            self.closed = writeln!(out, "{line}").and_then(|()| out.flush()).is_err();
        }
    }
}

/// Writes `bytes` to stdout; a closed stdout is not an error (exit 0, no
/// message), any other write error is one line and status 1.
fn print_all(bytes: &[u8]) -> ExitCode {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: cannot write to stdout: {e}", program_name());
            ExitCode::FAILURE
        }
    }
}

/// The `zio man` pages, as (file name, roff): zio.1, clap's page plus
/// COMMANDS (every shell command's usage line, aliases and options, from
/// the command table the shell runs), EXIT STATUS and ENVIRONMENT; then a
/// page per subcommand (zio-create.1, ...), which zio.1's SUBCOMMANDS
/// section refers to, with its own EXIT STATUS.
fn manpages() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let mut pages = Vec::new();
    let main = clap_mangen::Man::new(cli.clone());
    let mut extra = commands_section();
    extra.push_str(EXIT_STATUS);
    extra.push_str(ENVIRONMENT);
    pages.push((main.get_filename(), with_sections(&main, &extra)?));
    for sub in cli.get_subcommands() {
        let man =
            clap_mangen::Man::new(sub.clone()).source(format!("zio {}", env!("CARGO_PKG_VERSION")));
        let extra = match sub.get_name() {
            "check" => CHECK_EXIT_STATUS,
            "create" => CREATE_EXIT_STATUS,
            _ => "",
        };
        pages.push((man.get_filename(), with_sections(&man, extra)?));
    }
    Ok(pages)
}

/// `man`'s page with the roff `extra` sections inserted before VERSION.
fn with_sections(man: &clap_mangen::Man, extra: &str) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    man.render(&mut page)?;
    let page = String::from_utf8_lossy(&page).into_owned();
    let page = match page.find("\n.SH VERSION") {
        Some(i) => format!("{}\n{}{}", &page[..i], extra, &page[i + 1..]),
        None => format!("{page}{extra}"),
    };
    Ok(page.into_bytes())
}

/// zio.1's COMMANDS section: each shell command's usage line (the one
/// `help` prints, which is also what its parser accepts), aliases, one-line
/// description and options.
fn commands_section() -> String {
    let mut cmds = String::from(
        ".SH COMMANDS\nCommands given with \\fB\\-c\\fR or typed at the prompt; \\fBhelp\\fR \\fIcommand\\fR explains one.\n",
    );
    for c in table() {
        cmds.push_str(".TP\n\\fB");
        cmds.push_str(&roff_escape(c.name));
        cmds.push_str("\\fR");
        if let Some(a) = c.args.filter(|a| !a.is_empty()) {
            cmds.push(' ');
            cmds.push_str(&roff_escape(a));
        }
        if let Some(alt) = c.altname {
            cmds.push_str(&format!(" (alias \\fB{}\\fR)", roff_escape(alt)));
        }
        cmds.push('\n');
        cmds.push_str(&roff_escape(c.oneline));
        cmds.push('\n');
        for (flag, desc) in command_flags(c) {
            cmds.push_str(&format!(
                ".br\n\\fB{}\\fR {}\n",
                roff_escape(&flag),
                roff_escape(&desc)
            ));
        }
    }
    cmds
}

const EXIT_STATUS: &str = r".SH EXIT STATUS
.TP
0
Every command succeeded.
.TP
1
A command failed (the others still ran), the image could not be opened, or
an option's value was refused (\fB\-t\fR, \fB\-i\fR, \fB\-d\fR).
.TP
2
The command line could not be parsed (an unknown option, a missing value).
.PP
\fBzio check\fR and \fBzio create\fR have their own; see \fBzio\-check\fR(1)
and \fBzio\-create\fR(1).
";

const ENVIRONMENT: &str = r".SH ENVIRONMENT
.TP
\fBXDG_STATE_HOME\fR
The interactive shell keeps its history in \fI$XDG_STATE_HOME/zio/history\fR.
.TP
\fBHOME\fR
Without \fBXDG_STATE_HOME\fR, the history is \fI$HOME/.local/state/zio/history\fR.
.TP
\fBZIO_PROGRESS\fR
\fB0\fR, \fBoff\fR or \fBnever\fR: no progress bars, even when stderr is a
terminal (where long commands draw one after a second).
";

const CHECK_EXIT_STATUS: &str = r".SH EXIT STATUS
As \fBqemu\-img check\fR's:
.TP
0
No errors were found, or all were repaired.
.TP
1
The image could not be checked (no such file, the image in use).
.TP
2
Errors were found (\fB\-\-repair\fR repairs all but a damaged header).
.TP
63
The file is not a zoned image (no zoned header magic).
";

const CREATE_EXIT_STATUS: &str = r".SH EXIT STATUS
.TP
0
The image was created.
.TP
1
It was not (the error is printed; an existing FILE is left as it was).
.TP
2
The command line could not be parsed.
";

/// `zio man [PAGE]` prints one page; `zio man --dir DIR` writes them all
/// and prints their paths.
fn man(page: &str, dir: Option<&std::path::Path>) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("{}: {e}", program_name());
        ExitCode::FAILURE
    };
    let pages = match manpages() {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let Some(dir) = dir else {
        let name = match page {
            "zio" => "zio.1".to_string(),
            sub => format!("zio-{sub}.1"),
        };
        return match pages.iter().find(|(n, _)| *n == name) {
            Some((_, roff)) => print_all(roff),
            None => fail(&format!("no manual page {name}")),
        };
    };
    let mut out = QuietStdout::default();
    for (name, roff) in &pages {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, roff) {
            return fail(&format!(
                "cannot write {}: {}",
                path.display(),
                strerror(&e)
            ));
        }
        out.line(&path.display().to_string());
    }
    ExitCode::SUCCESS
}

/// Text safe inside a roff line: backslashes and hyphens escaped, and no
/// line starting with a control character.
fn roff_escape(s: &str) -> String {
    let e = s.replace('\\', "\\e").replace('-', "\\-");
    if e.starts_with(['.', '\'']) {
        format!("\\&{e}")
    } else {
        e
    }
}

/// `zio create`: one line as qemu-img prints it, or one error line. The
/// format's create hook checks the options and the geometry first, then
/// builds the image in a temporary file that replaces FILE only once
/// complete, so a failed or killed create leaves FILE as it was, and one
/// that another process holds open is refused.
fn create(format: &str, options: &[String], file: &str, size: &str) -> Result<String, String> {
    let size = parse_size(size).map_err(|e| format!("Invalid image size '{size}': {e}"))?;
    create_image(format, &options.join(","), file, size)
}

/// O_DIRECT or not, from -n and -t as qemu-io reads them: the last one
/// given counts; an unknown -t mode is refused.
fn cache_direct(cli: &Cli, matches: &ArgMatches) -> Result<bool, String> {
    let by_t = cli.cache.as_deref().map(cache_mode_direct).transpose()?;
    // A flag left out still has its default value, at an index of its own.
    let last = |id: &str| {
        (matches.value_source(id) == Some(ValueSource::CommandLine))
            .then(|| matches.indices_of(id).and_then(|i| i.max()))
            .flatten()
    };
    Ok(match (by_t, last("cache"), last("nocache")) {
        (Some(direct), Some(t), Some(n)) if t > n => direct,
        (_, _, Some(_)) => true,
        (Some(direct), _, None) => direct,
        (None, _, None) => false,
    })
}

/// Checks the qemu-io options zio accepts without acting on them (-i, -k,
/// -d), worded as qemu-io refuses them; `device` names the image for the
/// open error that native AIO without O_DIRECT is.
fn check_accepted(cli: &Cli, direct: bool, device: &str) -> Result<(), String> {
    let aio = match cli.aio.as_deref() {
        None if cli.native_aio => "native",
        None => "threads",
        Some(m @ ("threads" | "native" | "io_uring")) => m,
        Some(mode) => return Err(format!("Invalid aio option: {mode}")),
    };
    if let Some(mode) = cli.discard.as_deref() {
        check_discard_mode(mode)?;
    }
    if aio == "native" && !direct {
        return Err(format!(
            "can't open device {device}: aio=native was specified, but it requires cache.direct=on, which was not specified."
        ));
    }
    Ok(())
}

/// The prefix of error lines: the name zio was invoked by (so a link named
/// qemu-io prints `qemu-io: `, as qemu-io does), else `zio`.
fn program_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::env::args_os()
            .next()
            .map(PathBuf::from)
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "zio".to_string())
    })
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(Action::Completions { shell }) = &cli.action {
        let mut cmd = Cli::command();
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut cmd, "zio", &mut script);
        return print_all(&script);
    }
    if let Some(Action::Man { page, dir }) = &cli.action {
        return man(page, dir.as_deref());
    }
    #[cfg(feature = "serve")]
    if let Some(Action::Serve(args)) = &cli.action {
        return zio_serve::main(args, program_name());
    }
    if let Some(Action::Check { repair, file }) = &cli.action {
        // A reader that goes away (`zio check IMG | head -1`) does not cut
        // a repair short: the check runs to its end, unheard.
        let mut out = QuietStdout::default();
        let mut say = |l: &str| out.line(l);
        let verdict = check_image(file, *repair, &mut say);
        if verdict == Verdict::Repaired {
            say("Double checking the fixed image now...");
            let again = check_image(file, false, &mut say);
            if again != Verdict::Clean {
                return ExitCode::from(2);
            }
        }
        return ExitCode::from(verdict.exit_code());
    }
    if let Some(Action::Create {
        format,
        options,
        file,
        size,
    }) = &cli.action
    {
        return match create(format, options, file, size) {
            Ok(line) => {
                QuietStdout::default().line(&line);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", program_name());
                ExitCode::FAILURE
            }
        };
    }
    let mut console = Console::stdio();
    console.prog = program_name();
    let direct = match cache_direct(&cli, &matches) {
        Ok(d) => d,
        Err(e) => {
            console.warn(&format!("{}: {e}", program_name()));
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = check_accepted(&cli, direct, cli.image.as_deref().unwrap_or("")) {
        console.warn(&format!("{}: {e}", program_name()));
        return ExitCode::FAILURE;
    }
    let mut req = OpenRequest {
        target: cli.image.clone(),
        format: cli.format.clone(),
        image_opts: cli.image_opts,
        read_only: cli.read_only,
        nocache: direct,
        force_share: cli.force_share,
        snapshot: cli.snapshot,
        options: None,
    };
    let mut shell = if cli.image.is_none() && !cli.image_opts {
        // Opened by the first command that needs an image (Shell).
        req.target = Some(DEFAULT_DEVICE.to_string());
        req.image_opts = true;
        let mut shell = Shell::new(None, console);
        shell.pending_default = Some(req);
        shell
    } else {
        match open_image(&req) {
            Ok(blk) => {
                let mut shell = Shell::new(Some(blk), console);
                shell.open_req = Some(req);
                shell
            }
            Err(e) => {
                console.warn(&format!("{}: {e}", program_name()));
                return ExitCode::FAILURE;
            }
        }
    };
    let failed = if !cli.commands.is_empty() {
        run_lines(&mut shell, cli.commands.iter().map(|s| Ok(s.clone())), None)
    } else if io::stdin().is_terminal() {
        interactive(&mut shell)
    } else {
        // Invoked as qemu-io, zio prompts on a pipe too, as qemu-io does
        // (QEMU's Python tests wait for the prompt); as zio it does not.
        let prompt = (program_name() == "qemu-io").then_some("qemu-io> ");
        run_lines(&mut shell, io::stdin().lock().lines(), prompt)
    };
    shell.console.flush();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs lines until they run out or `quit`; true if any command failed.
/// With a `prompt`, it is printed (and flushed) before each line is read,
/// and once more before the end of input is seen.
fn run_lines(
    shell: &mut Shell,
    mut lines: impl Iterator<Item = io::Result<String>>,
    prompt: Option<&str>,
) -> bool {
    let mut failed = false;
    loop {
        if let Some(p) = prompt {
            let _ = shell.console.out().write_all(p.as_bytes());
            shell.console.flush();
        }
        let Some(line) = lines.next() else { break };
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                shell
                    .console
                    .warn(&format!("{}: reading commands: {e}", program_name()));
                return true;
            }
        };
        let status = shell.run_line(&line);
        // Each command's output is out before the next command starts, so
        // a reader of the stream (or a crash) sees whole, acknowledged
        // results. Commands without output cost nothing here.
        shell.console.flush();
        match status {
            Status::Ok => {}
            Status::Failed => failed = true,
            Status::Quit => break,
        }
    }
    failed
}

/// Line editing help at the prompt: Tab completes command names and
/// aliases, the options of the command being typed (from its extended
/// help), command names after `help`, and paths after `open`; the usage of
/// the typed command is hinted (dimmed) after the cursor.
#[derive(Helper, Validator)]
struct LineHelper {
    files: FilenameCompleter,
}

impl LineHelper {
    fn new() -> Self {
        LineHelper {
            files: FilenameCompleter::new(),
        }
    }
}

/// The options of a command with a description each: the ` -X, -- text`
/// lines of its extended help, else the letters of its usage string.
fn command_flags(c: &Command) -> Vec<(String, String)> {
    let mut flags: Vec<(String, String)> = Vec::new();
    if let Some(help) = c.help {
        let mut last: Option<usize> = None;
        for line in help.lines() {
            let t = line.trim_start();
            let b = t.as_bytes();
            if b.len() >= 3
                && b[0] == b'-'
                && b[1].is_ascii_alphabetic()
                && t[2..].starts_with(", --")
            {
                let desc = t[6.min(t.len())..].trim().to_string();
                flags.push((t[..2].to_string(), desc));
                last = Some(flags.len() - 1);
            } else if line.starts_with("        ") && !t.is_empty() {
                // A description continued on the next line.
                if let Some(i) = last {
                    flags[i].1.push(' ');
                    flags[i].1.push_str(t);
                }
            } else {
                last = None;
            }
        }
    }
    if flags.is_empty()
        && let Some(args) = c.args
    {
        // "[-abC] [-P pattern]": every letter of a word in brackets after '-'.
        for word in args.split(|ch: char| ch.is_whitespace() || ch == '[' || ch == ']') {
            if let Some(letters) = word.strip_prefix('-') {
                for l in letters.chars().filter(char::is_ascii_alphabetic) {
                    flags.push((format!("-{l}"), String::new()));
                }
            }
        }
    }
    flags.sort_by(|a, b| a.0.cmp(&b.0));
    flags.dedup_by(|a, b| a.0 == b.0);
    flags
}

/// Command names and aliases starting with `word`, sorted.
fn names_starting(word: &str) -> Vec<&'static str> {
    let mut names: Vec<&str> = table()
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.altname))
        .filter(|n| n.starts_with(word))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn plain(s: String) -> Pair {
    Pair {
        display: s.trim_end().to_string(),
        replacement: s,
    }
}

impl Completer for LineHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let words: Vec<&str> = head.split_whitespace().collect();
        let typing_new = head.ends_with(char::is_whitespace);
        // The word under the cursor and where it starts.
        let (word, word_start) = if typing_new || words.is_empty() {
            ("", pos)
        } else {
            let w = words[words.len() - 1];
            (w, pos - w.len())
        };
        let index = if typing_new {
            words.len()
        } else {
            words.len().saturating_sub(1)
        };
        if index == 0 {
            let names = names_starting(word)
                .into_iter()
                .map(|n| plain(format!("{n} ")))
                .collect();
            return Ok((word_start, names));
        }
        let Some(cmd) = find(words[0]) else {
            return Ok((pos, Vec::new()));
        };
        if word.starts_with('-') {
            let flags = command_flags(cmd)
                .into_iter()
                .filter(|(f, _)| f.starts_with(word))
                .map(|(f, d)| Pair {
                    display: if d.is_empty() {
                        f.clone()
                    } else {
                        format!("{f}  {d}")
                    },
                    replacement: format!("{f} "),
                })
                .collect();
            return Ok((word_start, flags));
        }
        match cmd.name {
            "help" if index == 1 => {
                let names = names_starting(word)
                    .into_iter()
                    .map(|n| plain(n.to_string()))
                    .collect();
                Ok((word_start, names))
            }
            "open" => {
                // Not the value of an option that takes one.
                let prev = if typing_new {
                    words.last()
                } else {
                    words.get(words.len() - 2)
                };
                if prev.is_some_and(|p| matches!(*p, "-o" | "-t" | "-d")) {
                    return Ok((pos, Vec::new()));
                }
                self.files.complete(line, pos, ctx)
            }
            _ => Ok((pos, Vec::new())),
        }
    }
}

/// What the prompt shows after the cursor: the rest of a command name
/// (Right arrow takes it), or the usage of the typed command (display
/// only).
struct LineHint {
    display: String,
    completion: Option<String>,
}

impl Hint for LineHint {
    fn display(&self) -> &str {
        &self.display
    }

    fn completion(&self) -> Option<&str> {
        self.completion.as_deref()
    }
}

/// The hint for `line` with the cursor at `pos` (at its end).
fn hint_for(line: &str, pos: usize) -> Option<LineHint> {
    if pos < line.len() || line.trim().is_empty() {
        return None;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() == 1 && !line.ends_with(char::is_whitespace) {
        // A unique command name this word starts: hint its rest.
        let word = words[0];
        let names = names_starting(word);
        let canonical: Vec<&str> = names
            .iter()
            .filter_map(|n| find(n))
            .map(|c| c.name)
            .collect();
        if names.len() == 1
            || (!canonical.is_empty() && canonical.iter().all(|n| *n == canonical[0]))
        {
            let name = if names.len() == 1 {
                names[0]
            } else {
                canonical[0]
            };
            if name.len() > word.len() && name.starts_with(word) {
                let rest = name[word.len()..].to_string();
                return Some(LineHint {
                    display: rest.clone(),
                    completion: Some(rest),
                });
            }
        }
        return None;
    }
    if words.len() == 1 {
        let c = find(words[0])?;
        let args = c.args.filter(|a| !a.is_empty())?;
        return Some(LineHint {
            display: args.to_string(),
            completion: None,
        });
    }
    None
}

impl Hinter for LineHelper {
    type Hint = LineHint;

    fn hint(&self, line: &str, pos: usize, _ctx: &rustyline::Context<'_>) -> Option<LineHint> {
        hint_for(line, pos)
    }
}

impl Highlighter for LineHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        // Dim, so the hint does not read as typed text.
        Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
    }
}

fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("zio").join("history"))
}

/// The interactive session: rustyline's prompt, with history in
/// `history_path()` (each line saved as it is entered), a one-line hint
/// first (at a terminal), and Ctrl-C (SIGINT) cancelling the running
/// command instead of ending zio.
fn interactive(shell: &mut Shell) -> bool {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .build();
    let mut rl: Editor<LineHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(rl) => rl,
        Err(e) => {
            shell.console.warn(&format!(
                "{}: cannot start the line editor: {e}",
                program_name()
            ));
            return run_lines(shell, io::stdin().lock().lines(), None);
        }
    };
    rl.set_helper(Some(LineHelper::new()));
    let history = history_path();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
    }
    // At the prompt rustyline reads Ctrl-C as a key (the terminal is in
    // raw mode); while a command runs it is SIGINT, which now only sets
    // the flag long commands ask (Console::stop_early).
    let sigint =
        signal_hook::flag::register(signal_hook::consts::SIGINT, shell.console.interrupt.flag());
    if let Err(e) = sigint {
        shell.console.warn(&format!(
            "{}: Ctrl-C will end zio: cannot catch it: {e}",
            program_name()
        ));
    }
    if io::stderr().is_terminal() {
        shell.console.warn(&format!(
            "{}: type 'help' for commands, Ctrl-D to quit",
            program_name()
        ));
    }
    let mut failed = false;
    'session: loop {
        shell.console.flush();
        let text = match rl.readline("zio> ") {
            Ok(text) => text,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                shell
                    .console
                    .warn(&format!("{}: reading commands: {e}", program_name()));
                failed = true;
                break;
            }
        };
        // A bracketed paste comes as one text with newlines in it: each of
        // its lines is a command of its own, run in order.
        for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
            if line.trim().is_empty() {
                continue;
            }
            let _ = rl.add_history_entry(line);
            if let Some(h) = &history {
                let _ = rl.append_history(h);
            }
            shell.console.interrupt.take();
            let status = shell.run_line(line);
            shell.console.flush();
            if shell.console.interrupt.take() {
                // The rest of a paste goes with the interrupted command, as
                // the terminal drops what was typed ahead on Ctrl-C.
                shell
                    .console
                    .warn(&format!("\n{}: interrupted", program_name()));
                failed = true;
                break;
            }
            match status {
                Status::Ok => {}
                Status::Failed => failed = true,
                Status::Quit => break 'session,
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_usage_and_the_rest_of_a_unique_name() {
        let h = hint_for("read ", 5).unwrap();
        assert_eq!(h.display(), find("read").unwrap().args.unwrap());
        assert_eq!(h.completion(), None);
        let h = hint_for("zone_rep", 8).unwrap();
        assert_eq!((h.display(), h.completion()), ("ort", Some("ort")));
        assert!(hint_for("rea", 3).is_none(), "read and readv");
        assert!(hint_for("flush ", 6).is_none(), "no operands");
        assert!(hint_for("read 0", 6).is_none());
        assert!(hint_for("read ", 2).is_none(), "cursor inside the line");
    }

    #[test]
    fn flags_come_from_the_extended_help() {
        let read = command_flags(find("read").unwrap());
        let names: Vec<&str> = read.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, ["-C", "-P", "-l", "-p", "-q", "-r", "-s", "-v"]);
        assert!(read[1].1.contains("pattern"));
        let open = command_flags(find("o").unwrap());
        let names: Vec<&str> = open.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            ["-C", "-U", "-d", "-k", "-n", "-o", "-r", "-s", "-t"]
        );
        // A continued description is joined.
        assert!(
            open.iter()
                .any(|(f, d)| f == "-t" && d.ends_with("unsafe)"))
        );
    }

    #[test]
    fn roff_text_is_escaped() {
        assert_eq!(roff_escape("[-Cq] off"), "[\\-Cq] off");
        assert_eq!(roff_escape(".x\\"), "\\&.x\\e");
    }

    #[test]
    fn man_page_has_the_commands_before_version() {
        let pages = manpages().unwrap();
        assert_eq!(pages[0].0, "zio.1");
        let page = String::from_utf8(pages[0].1.clone()).unwrap();
        assert!(page.contains(".TH zio 1"));
        let commands = page.find(".SH COMMANDS").unwrap();
        assert!(commands < page.find(".SH VERSION").unwrap());
        assert!(page.contains("\\fBzone_report\\fR"));
    }
}
