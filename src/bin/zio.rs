//! The `zio` binary: parses the command line, opens the image (or the
//! embedded default), then runs commands from `-c`, a terminal (rustyline)
//! or a script on stdin. Exit status 1 if any command failed.

use std::io::{self, BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Editor, Helper, Highlighter, Hinter, Validator};

use zio::blocklayer::emulated::take_zone_config;
use zio::blocklayer::{OpenRequest, OptionMap, open_image, zoned, zoned_check};
use zio::commands::{Console, Shell, Status, table};
use zio::units::parse_size;

/// What `zio` opens when no image is named: a zoned null device with the
/// geometry of `modprobe null_blk zoned=1` (250 GiB, 256 MiB zones).
const DEFAULT_DEVICE: &str = "driver=null,zoned=on";

#[derive(Parser, Debug)]
#[command(
    name = "zio",
    version,
    about = "A qemu-io-style shell for zoned block devices",
    after_help = "Without IMAGE, zio opens an in-memory zoned device like null_blk zoned=1.\n\
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
    /// Image format (driver), e.g. raw
    #[arg(
        short = 'f',
        long = "format",
        value_name = "FMT",
        conflicts_with = "image_opts"
    )]
    format: Option<String>,
    /// Treat IMAGE as an option string: driver=raw,file.driver=file,file.filename=x.img
    #[arg(long = "image-opts")]
    image_opts: bool,
    /// Bypass the host page cache (O_DIRECT)
    #[arg(short = 'n', long = "nocache")]
    nocache: bool,
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
    /// 0: no limit).
    Create {
        /// Image format
        #[arg(short = 'f', long = "format", default_value = "zoned")]
        format: String,
        /// Format options, e.g. zone_size=64M,zone_capacity=48M,zone_nr_conv=1
        #[arg(short = 'o', value_name = "OPTIONS")]
        options: Vec<String>,
        /// The file to create (replaced if it exists)
        file: String,
        /// Device size, e.g. 1G
        size: String,
    },
    /// Check a zoned image, as `qemu-img check` does
    ///
    /// Verifies the header and zone table checksums, each zone's condition
    /// against its write pointer, the open/active counts against the limits,
    /// and the file's length. Exit status: 0 clean, 1 problems found that
    /// --repair fixes (or fixed), 2 corrupt beyond repair. The image is not
    /// modified without --repair.
    Check {
        /// Repair what can be repaired, then check again
        #[arg(long)]
        repair: bool,
        /// The zoned image
        file: String,
    },
}

/// `zio create`: one line as qemu-img prints it, or one error line.
fn create(format: &str, options: &[String], file: &str, size: &str) -> Result<String, String> {
    let size = parse_size(size).map_err(|e| format!("Invalid image size '{size}': {e}"))?;
    let mut opts = OptionMap::parse(&options.join(","))?;
    match format {
        "zoned" => {
            let cfg = take_zone_config(&mut opts, size)?;
            opts.finish("format", "zoned")?;
            zoned::create(file, &cfg)?;
            Ok(format!(
                "Formatting '{file}', fmt=zoned size={size} zone_size={} zone_capacity={} zone_nr_conv={} zone_max_open={} zone_max_active={} zone_append_max={}",
                cfg.zone_size,
                cfg.zone_capacity.unwrap_or(cfg.zone_size),
                cfg.nr_conv,
                cfg.max_open,
                cfg.max_active,
                cfg.zone_append_max
            ))
        }
        "raw" => {
            opts.finish("format", "raw")?;
            std::fs::File::create(file)
                .and_then(|f| f.set_len(size))
                .map_err(|e| format!("Could not create '{file}': {e}"))?;
            Ok(format!("Formatting '{file}', fmt=raw size={size}"))
        }
        other => Err(format!(
            "Unknown image format '{other}' (zio creates zoned and raw images)"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Action::Check { repair, file }) = &cli.action {
        let mut say = |l: &str| println!("{l}");
        let verdict = zoned_check::check(file, *repair, &mut say);
        if *repair && verdict == zoned_check::Verdict::Repairable {
            say("Double checking the fixed image now...");
            let again = zoned_check::check(file, false, &mut say);
            if again != zoned_check::Verdict::Clean {
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
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("zio: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut console = Console::stdio();
    let mut req = OpenRequest {
        target: cli.image.clone(),
        format: cli.format.clone(),
        image_opts: cli.image_opts,
        read_only: cli.read_only,
        nocache: cli.nocache,
        force_share: cli.force_share,
        options: None,
    };
    if cli.image.is_none() && !cli.image_opts {
        console.warn(&format!(
            "zio: no image given, using the embedded default: an in-memory zoned device like null_blk zoned=1 ({DEFAULT_DEVICE})"
        ));
        req.target = Some(DEFAULT_DEVICE.to_string());
        req.image_opts = true;
    }
    let blk = match open_image(&req) {
        Ok(b) => b,
        Err(e) => {
            console.warn(&format!("zio: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let mut shell = Shell::new(Some(blk), console);
    shell.default_device = cli.image.is_none() && !cli.image_opts;
    let failed = if !cli.commands.is_empty() {
        run_lines(&mut shell, cli.commands.iter().map(|s| Ok(s.clone())))
    } else if io::stdin().is_terminal() {
        interactive(&mut shell)
    } else {
        run_lines(&mut shell, io::stdin().lock().lines())
    };
    shell.console.flush();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs lines until they run out or `quit`; true if any command failed.
fn run_lines(shell: &mut Shell, lines: impl Iterator<Item = io::Result<String>>) -> bool {
    let mut failed = false;
    for line in lines {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                shell.console.warn(&format!("zio: reading commands: {e}"));
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

/// Completes the command word with command names and aliases.
#[derive(Helper, Hinter, Highlighter, Validator)]
struct CommandCompleter;

impl Completer for CommandCompleter {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = &line[..pos];
        if head.trim_start().contains(' ') {
            return Ok((pos, Vec::new()));
        }
        let start = head.len() - head.trim_start().len();
        let word = &head[start..];
        let mut names: Vec<String> = table()
            .iter()
            .flat_map(|c| std::iter::once(c.name).chain(c.altname))
            .filter(|n| n.starts_with(word))
            .map(|n| format!("{n} "))
            .collect();
        names.sort();
        names.dedup();
        Ok((start, names))
    }
}

fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("zio").join("history"))
}

fn interactive(shell: &mut Shell) -> bool {
    let mut rl: Editor<CommandCompleter, DefaultHistory> = match Editor::new() {
        Ok(rl) => rl,
        Err(e) => {
            shell
                .console
                .warn(&format!("zio: cannot start the line editor: {e}"));
            return run_lines(shell, io::stdin().lock().lines());
        }
    };
    rl.set_helper(Some(CommandCompleter));
    let history = history_path();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let mut failed = false;
    loop {
        shell.console.flush();
        match rl.readline("zio> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                match shell.run_line(&line) {
                    Status::Ok => {}
                    Status::Failed => failed = true,
                    Status::Quit => break,
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                shell.console.warn(&format!("zio: reading commands: {e}"));
                failed = true;
                break;
            }
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = rl.save_history(h);
    }
    failed
}
