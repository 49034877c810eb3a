//! The `zio-iotests` command line: parses options, works out defaults,
//! and drives discovery, selection, the run, the report and the exit code.

use std::env;
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches, Parser};

use super::config::{Config, display_path};
use super::discover::{discover, without_out};
use super::junit;
use super::outcome::{Status, Verdict, shell_quote};
use super::report::{ColorChoice, Format, Reporter, plural};
use super::schedule::run_all;
use super::select::{Selection, Shard, select};
use super::skeleton::write_skeleton;
use super::state::{load_failed, load_times, record_run};
use super::vm::{
    DEFAULT_KERNEL, DEVICES, KERNELS, REALDEV_GROUP, VmOptions, agent, agent_exec, agent_poweroff,
    boot_order, instances, run_vm, shell,
};

/// Set by `run-iotests.sh` to its own `$0`: rerun hints name the script,
/// and the default tests directory is the `iotests` next to it.
pub const LAUNCHER_ENV: &str = "ZIO_IOTESTS_LAUNCHER";

/// Runs zio's golden-output iotests (modelled on qemu-iotests' `check`).
///
/// Exit status: 0 if nothing failed, 1 if a test failed, 2 on usage or
/// runner errors.
#[derive(Debug, Parser)]
#[command(name = "zio-iotests", version, args_override_self = true)]
pub struct Cli {
    /// Only run tests in any of these groups (`disabled` runs only if named;
    /// a group no test is in is an error). With --new: the new test's groups
    /// [default: quick,auto].
    #[arg(
        short = 'g',
        long = "group",
        value_name = "GROUP[,GROUP]",
        value_delimiter = ','
    )]
    pub groups: Vec<String>,
    /// Skip tests in any of these groups (a group no test is in is an
    /// error).
    #[arg(
        short = 'x',
        long = "exclude-group",
        value_name = "GROUP[,GROUP]",
        value_delimiter = ','
    )]
    pub exclude: Vec<String>,
    /// Run up to N tests (with --vm: N VM boots) at once [default: number
    /// of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Rewrite the .out of each test that exits 0 from its actual output
    /// (a run on another kernel writes its own NAME.out.KERNEL); a test
    /// named on the command line that has no .out yet gets one.
    #[arg(long)]
    pub bless: bool,
    /// Write a skeleton test NAME (groups from -g) into the tests directory
    /// and run nothing; `--bless NAME` then writes its NAME.out.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["bless", "failed", "dry_run", "tests"])]
    pub new: Option<String>,
    /// Print TAP version 13 instead of the human report.
    #[arg(long)]
    pub tap: bool,
    /// Also write the results as JUnit XML to FILE (for CI test reports).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run only part K of N of the selected tests (1 <= K <= N), for CI
    /// jobs that split a run; a test's part depends on its name only.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Colour the status words: auto (on a terminal, unless NO_COLOR is
    /// set), always or never. TAP output is never coloured.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Keep the scratch directories of passing tests too.
    #[arg(long)]
    pub keep: bool,
    /// List the tests that would run, one per line, and run nothing.
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// Only rerun the tests that failed when they last ran (none: says so
    /// and exits 0).
    #[arg(long)]
    pub failed: bool,
    /// Kill a test (its whole process group) after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// The tests directory [default: iotests next to run-iotests.sh].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The program under test, exported to every test as $ZIO (any CLI:
    /// the runner only runs the test scripts) [default: zio next to this
    /// runner].
    #[arg(long, visible_alias = "prog", value_name = "PATH")]
    pub zio: Option<PathBuf>,
    /// Where scratch directories, .out.bad files and state go
    /// [default: <target dir>/zio-iotests].
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// Run the `realdev` tests inside a Linux VM, against /dev/nullb0 (and
    /// an NVMe ZNS namespace) instead of emulated devices (see vm/setup.sh).
    #[arg(long)]
    pub vm: bool,
    /// Only the runs on this kernel (6.1 or 6.12; a test runs on the
    /// kernels of its `# kernels:` line, default 6.1: in the VM on that
    /// kernel, on the host against the emulation's profile of it).
    #[arg(long, value_name = "SERIES", value_parser = clap::builder::PossibleValuesParser::new(KERNELS))]
    pub kernel: Option<String>,
    /// Only the tests of this device family (null_blk, nvme-zns,
    /// scsi-zbc).
    #[arg(long, value_name = "FAMILY", value_parser = clap::builder::PossibleValuesParser::new(DEVICES))]
    pub device: Option<String>,
    /// Like --vm, with KVM instead of TCG (hangs on some hosts).
    #[arg(long)]
    pub kvm: bool,
    /// Boot the VM with the devices TEST asks for and open an interactive
    /// shell in it (on this terminal) instead of running tests.
    #[arg(long, value_name = "TEST")]
    pub vm_shell: Option<String>,
    /// Boot a VM with no device set up (kernel --kernel, default 6.1) and
    /// serve commands run inside it on the Unix socket SOCKET until
    /// --vm-poweroff or 15 idle minutes: `zio-iotests --vm-exec SOCKET --
    /// COMMAND [ARG...]` runs one and exits with its status. For harnesses
    /// that run on the host against the VM's real devices (QEMU's check).
    #[arg(long, value_name = "SOCKET", conflicts_with_all = ["vm_poweroff", "vm_shell"])]
    pub vm_agent: Option<PathBuf>,
    /// Power off the VM of the agent at SOCKET.
    #[arg(long, value_name = "SOCKET")]
    pub vm_poweroff: Option<PathBuf>,
    /// With --vm: kill a VM that has not powered off after SECS seconds
    /// (its unfinished tests fail).
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub vm_timeout: u64,
    /// Only run these tests.
    #[arg(value_name = "TEST")]
    pub tests: Vec<String>,
}

/// How long `--vm-exec` waits for its agent to come up (it binds its
/// socket before the VM boots, so this covers a boot).
const EXEC_WAIT: Duration = Duration::from_secs(600);

/// Entry point of the `zio-iotests` binary.
///
/// `zio-iotests --vm-exec SOCKET -- COMMAND [ARG...]` is parsed here, not by
/// clap: everything after `--` is the command, whatever it looks like. It
/// runs COMMAND in the VM of the `--vm-agent` at SOCKET, prints its stdout
/// and stderr and exits with its status.
pub fn main() -> ExitCode {
    let args: Vec<String> = env::args().collect();
    if args.get(1).map(String::as_str) == Some("--vm-exec") {
        let result = match (args.get(2), args.get(3).map(String::as_str)) {
            (Some(socket), Some("--")) => agent_exec(Path::new(socket), &args[4..], EXEC_WAIT),
            _ => Err(anyhow::anyhow!(
                "usage: zio-iotests --vm-exec SOCKET -- COMMAND [ARG...]"
            )),
        };
        return match result {
            Ok(rc) => ExitCode::from(rc.clamp(0, 255) as u8),
            Err(e) => {
                eprintln!("zio-iotests: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let cli = parse_args();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zio-iotests: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The command line, with usage and help naming the launcher
/// (`./run-iotests.sh`) when started through it.
fn parse_args() -> Cli {
    let mut command = Cli::command();
    if let Some(launcher) = env::var(LAUNCHER_ENV).ok().filter(|l| !l.is_empty()) {
        command = command.bin_name(launcher);
    }
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

/// Runs what `cli` asks for and returns the exit code.
pub fn run(cli: &Cli) -> Result<ExitCode> {
    if let Some(socket) = &cli.vm_poweroff {
        agent_poweroff(socket)?;
        return Ok(ExitCode::SUCCESS);
    }
    if cli.bless && env::var_os("CI").is_some() {
        bail!("--bless refused: CI is set, and CI must not rewrite expected output");
    }
    let shard = cli.shard.as_deref().map(str::parse::<Shard>).transpose()?;
    let defaults = Defaults::from_env()?;
    let dir = cli.dir.clone().unwrap_or_else(|| defaults.dir.clone());
    // How to bless test NAME of this run: the rerun command with --bless.
    let bless_hint = |name: &str| {
        let zio = cli.zio.clone().unwrap_or_else(|| defaults.zio.clone());
        let prefix = defaults.rerun_prefix(&zio, &dir);
        format!("{prefix} --bless {}", shell_quote(name))
    };
    if let Some(name) = &cli.new {
        let script = write_skeleton(&dir, name, &nonempty(&cli.groups))?;
        emit(&format!(
            "wrote {}; edit it, then write its .out with: {}\n",
            display_path(&script),
            bless_hint(name)
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let vm = cli.vm || cli.kvm || cli.vm_shell.is_some() || cli.vm_agent.is_some();
    let mut scratch = cli
        .scratch
        .clone()
        .unwrap_or_else(|| defaults.scratch.clone());
    if vm {
        // VM results (.out.bad, --failed state) stay apart from host ones.
        scratch.push("vm");
    }

    if let Some(socket) = &cli.vm_agent {
        let zio = cli.zio.clone().unwrap_or_else(|| defaults.zio.clone());
        let mut cfg = Config::new(&zio, &dir, &scratch)?;
        cfg.timeout = Duration::from_secs(cli.timeout);
        let opts = VmOptions {
            kvm: cli.kvm,
            boot_timeout: Duration::from_secs(cli.vm_timeout),
            ..VmOptions::default()
        };
        let series = cli.kernel.as_deref().unwrap_or(DEFAULT_KERNEL);
        return Ok(ExitCode::from(
            agent(socket, series, &cfg, &opts)?.clamp(0, 255) as u8,
        ));
    }
    if let Some(name) = &cli.vm_shell {
        let test = discover(&dir)?
            .into_iter()
            .find(|t| &t.name == name)
            .with_context(|| format!("no such test: {name}"))?;
        let zio = cli.zio.clone().unwrap_or_else(|| defaults.zio.clone());
        let mut cfg = Config::new(&zio, &dir, &scratch)?;
        cfg.keep = cli.keep;
        let opts = VmOptions {
            kvm: cli.kvm,
            ..VmOptions::default()
        };
        return Ok(ExitCode::from(
            shell(&test, &cfg, &opts)?.clamp(0, 255) as u8
        ));
    }
    // A VM run on another kernel is named NAME@KERNEL (as rerun hints
    // print it): the test is NAME, and only that run is kept below.
    let base_name = |n: &str| n.split_once('@').map_or(n, |(b, _)| b).to_string();
    let mut names: Vec<String> = cli.tests.iter().map(|n| base_name(n)).collect();
    names.dedup();
    let selection = Selection {
        names,
        groups: nonempty(&cli.groups),
        exclude: nonempty(&cli.exclude),
    };
    let mut found = discover(&dir)?;
    for name in &selection.names {
        if found.iter().any(|t| &t.name == name) {
            continue;
        }
        // A script without its .out yet: `--bless NAME` writes it.
        match without_out(&dir, name)? {
            Some(test) if cli.bless => found.push(test),
            Some(_) => bail!(
                "{name} has no {name}.out yet: `{}` writes it from a run",
                bless_hint(name)
            ),
            None => {}
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let mut tests = select(found, &selection)?;
    if vm {
        if let Some(t) = tests
            .iter()
            .find(|t| selection.names.contains(&t.name) && !t.in_group(REALDEV_GROUP))
        {
            bail!(
                "{} is not in group {REALDEV_GROUP}; --vm runs only {REALDEV_GROUP} tests",
                t.name
            );
        }
        let selected = tests.len();
        tests.retain(|t| t.in_group(REALDEV_GROUP));
        if tests.is_empty() {
            bail!(
                "no tests selected: --vm runs only tests in group {REALDEV_GROUP}, and none of the {} selected is",
                plural(selected, "test")
            );
        }
    }
    // One run per test and kernel of its `# kernels:` line, on the host
    // (against the emulation's profile) as in the VM.
    let selected = tests.len();
    let mut runs = instances(tests, cli.kernel.as_deref(), cli.device.as_deref());
    // NAME selects every run of NAME; NAME@KERNEL only that one.
    runs.retain(|r| {
        cli.tests.is_empty()
            || cli.tests.contains(&r.name)
            || cli.tests.contains(&base_name(&r.name))
    });
    if let Some(name) = cli
        .tests
        .iter()
        .find(|n| n.contains('@') && !runs.iter().any(|r| &&r.name == n))
    {
        bail!(
            "no such test run: {name} (a test runs on the kernels of its `# kernels:` line, default {DEFAULT_KERNEL})"
        );
    }
    if runs.is_empty() {
        let on: Vec<String> = [
            cli.kernel.as_ref().map(|k| format!("on kernel {k}")),
            cli.device.as_ref().map(|d| format!("on device family {d}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        bail!(
            "no tests selected: none of the {} selected runs {}",
            plural(selected, "test"),
            on.join(" ")
        );
    }
    tests = runs;
    if vm {
        tests = boot_order(tests);
    }
    // From here an empty selection was asked for (a shard that holds no
    // test, no failures to rerun): it is said plainly, and is no error.
    let mut empty_because = None;
    if let Some(shard) = shard {
        let selected = tests.len();
        tests.retain(|t| shard.holds(&t.name));
        if tests.is_empty() {
            empty_because = Some(format!(
                "shard {}/{} holds none of the {} selected",
                shard.index,
                shard.count,
                plural(selected, "test run")
            ));
        }
    }
    if cli.failed && empty_because.is_none() {
        let failed = load_failed(&scratch)?;
        tests.retain(|t| failed.contains(&t.name));
        if tests.is_empty() {
            empty_because = Some("no selected test failed when it last ran".to_string());
        }
    }
    let suite = match shard {
        Some(s) => format!("iotests (shard {}/{})", s.index, s.count),
        None => "iotests".to_string(),
    };
    let classname = if vm { "iotests.vm" } else { "iotests" };
    let junit_file = |verdicts: &[Verdict]| -> Result<()> {
        match &cli.junit {
            Some(path) => fs::write(path, junit::render(&suite, classname, verdicts))
                .with_context(|| format!("cannot write {}", path.display())),
            None => Ok(()),
        }
    };
    if let Some(why) = empty_because {
        if cli.dry_run {
            eprintln!("zio-iotests: nothing to run: {why}");
        } else {
            junit_file(&[])?;
            emit(&match cli.tap {
                true => format!("TAP version 13\n1..0 # SKIP nothing to run: {why}\n"),
                false => format!("Nothing to run: {why}\n"),
            });
        }
        return Ok(ExitCode::SUCCESS);
    }
    if cli.dry_run {
        emit(
            &tests
                .iter()
                .map(|t| format!("{}\n", t.name))
                .collect::<String>(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    let format = if cli.tap { Format::Tap } else { Format::Human };
    let names = || tests.iter().map(|t| t.name.as_str());
    let color = cli.color.enabled(
        io::stdout().is_terminal(),
        env::var_os("NO_COLOR").as_deref(),
    );
    let reporter = Reporter::new(format, names())
        .with_color(color)
        .with_previous(names(), &load_times(&scratch)?);
    // A JUnit file that cannot be written fails now, not after the run.
    junit_file(&[])?;

    let zio = cli.zio.clone().unwrap_or_else(|| defaults.zio.clone());
    let mut cfg = Config::new(&zio, &dir, &scratch)?;
    cfg.timeout = Duration::from_secs(cli.timeout);
    cfg.bless = cli.bless;
    cfg.keep = cli.keep;
    cfg.rerun_prefix = defaults.rerun_prefix(&cfg.zio, &cfg.tests_dir);
    if vm {
        cfg.rerun_prefix += if cli.kvm { " --kvm" } else { " --vm" };
    }

    emit(&reporter.header());
    let jobs = cli.jobs.map_or_else(default_jobs, |j| j as usize);
    let verdicts = if vm {
        let opts = VmOptions {
            kvm: cli.kvm,
            boot_timeout: Duration::from_secs(cli.vm_timeout),
            ..VmOptions::default()
        };
        run_vm(&tests, &cfg, &opts, jobs, |i, v| {
            emit(&reporter.verdict(i, v))
        })
    } else {
        run_all(&tests, &cfg, jobs, |i, v| emit(&reporter.verdict(i, v)))
    };
    emit(&reporter.summary(&verdicts));

    record_run(&cfg.scratch_root, &verdicts)?;
    junit_file(&verdicts)?;
    Ok(if verdicts.iter().any(|v| v.runner_error) {
        ExitCode::from(2)
    } else if verdicts.iter().any(|v| v.status == Status::Fail) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Defaults that depend on where the runner binary and its launcher are.
struct Defaults {
    launcher: Option<String>,
    exe: PathBuf,
    zio: PathBuf,
    dir: PathBuf,
    scratch: PathBuf,
}

impl Defaults {
    fn from_env() -> Result<Defaults> {
        let exe = env::current_exe().context("cannot find the runner's own path")?;
        let launcher = env::var(LAUNCHER_ENV).ok().filter(|l| !l.is_empty());
        let dir = match &launcher {
            Some(l) => Path::new(l).with_file_name("iotests"),
            None => PathBuf::from("iotests"),
        };
        // target/{debug,release}/zio-iotests -> target/zio-iotests
        let profile_dir = exe.parent().unwrap_or(Path::new("."));
        let in_target = matches!(
            profile_dir.file_name().and_then(|n| n.to_str()),
            Some("debug" | "release")
        );
        let scratch = match profile_dir.parent() {
            Some(target) if in_target => target.join("zio-iotests"),
            _ => env::temp_dir().join("zio-iotests"),
        };
        Ok(Defaults {
            zio: exe.with_file_name("zio"),
            launcher,
            exe,
            dir,
            scratch,
        })
    }

    /// How the user started the runner: the launcher, else this binary.
    fn launcher_name(&self) -> String {
        match &self.launcher {
            Some(l) => l.clone(),
            None => display_path(&self.exe),
        }
    }

    /// The command that reruns a test: the launcher, plus `--zio`/`--dir`
    /// when this run used non-default ones.
    fn rerun_prefix(&self, zio: &Path, tests_dir: &Path) -> String {
        let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
        let mut words = vec![self.launcher_name()];
        if !same(zio, &self.zio) {
            words.extend(["--zio".into(), display_path(zio)]);
        }
        if !same(tests_dir, &self.dir) {
            words.extend(["--dir".into(), display_path(tests_dir)]);
        }
        words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn nonempty(list: &[String]) -> Vec<String> {
    list.iter().filter(|s| !s.is_empty()).cloned().collect()
}

fn default_jobs() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// Writes report text to stdout; a closed stdout must not abort the run.
fn emit(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
