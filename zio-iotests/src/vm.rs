//! The VM tier (`zio-iotests --vm`): runs the `realdev` tests inside a
//! throwaway Linux VM (qemu-system-x86_64, TCG unless `--kvm`) in which
//! /dev/nullb0 (null_blk) and, for tests that ask, an NVMe ZNS namespace
//! and a SCSI ZBC disk (scsi_debug) are real zoned block devices, on
//! Linux 6.1 or 6.12, and judges them with the same code as a
//! host run (same `.out`, `.out.bad`, diffs, report lines).
//!
//! Flow: [`instances`] makes one run per test and kernel of its
//! `# kernels:` line (6.1 by default; a run on 6.12 is `NAME@6.12` and
//! expects `NAME.out.6.12` where that exists, else `NAME.out`); [`needs`]
//! reads each test's `# nullb:` (or `# nullb-configfs:`), `# nvme:` and
//! `# scsi_debug:` lines, and runs with equal needs and kernel share one
//! boot ([`boot_order`]); the embedded `vm/mkinitramfs.sh` builds a base
//! initramfs per kernel once per run (busybox, bash, zio and their
//! libraries, that kernel's modules, the iotests, `vm/init`);
//! each boot appends its group file as a small [`cpio`] archive, runs QEMU
//! under a per-boot timeout, and [`protocol`] splits what `/init` wrote on
//! the second serial port into per-test results, which become
//! [`RunOutput`]s for [`judge`]. The end prints each boot's time.
//!
//! `--vm-shell TEST` boots the devices TEST asks for and opens an
//! interactive bash on the terminal instead (for poking at /dev/nullb0).
//!
//! A VM run keeps its scratch files apart from host runs: the CLI makes
//! its scratch root `<scratch>/vm` (test dirs, `.out.bad`, `--failed`
//! state), and boot N's files go to `<scratch>/vm/.vm/boot-N/`:
//! `console.log` (ttyS0, the kernel console, with the devices' facts),
//! `results.log` (ttyS1, the reports), `qemu.log`, and, with `--keep`, `initrd` and the ZNS backing
//! file `zns.raw`. Boots run in parallel up to `-j`.

mod agent;
mod cpio;
mod needs;
mod protocol;

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::config::{Config, display_path};
use super::discover::TestCase;
use super::exec::{Exit, RunOutput};
use super::outcome::{Status, Verdict, judge, rerun_command};
use super::scratch::Scratch;

pub use agent::{agent, agent_exec, agent_poweroff};
pub use needs::{DEFAULT_KERNEL, KERNELS, Needs, kernels};

/// The group of tests the VM tier runs.
pub const REALDEV_GROUP: &str = "realdev";
/// Default limit on one boot, from QEMU start to power-off.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a boot may take to reach /init (its READY line). Boots reach
/// it in 3 to 30 s under TCG; one that has not after this long is stuck
/// before the kernel (seen once: SeaBIOS at "Booting from ROM..."), which
/// says nothing of the tests, so it is killed and booted again, once.
const START_DEADLINE: Duration = Duration::from_secs(180);
/// The reason given when the machine lacks QEMU, the kernel or tools.
pub const NOT_SET_UP: &str = "VM tier not set up: run vm/setup.sh";

const INIT: &str = include_str!("../../vm/init");
const AGENT: &str = include_str!("../../vm/agent");
const MKINITRAMFS: &str = include_str!("../../vm/mkinitramfs.sh");
const KERNEL_CMDLINE: &str = "console=ttyS0 quiet loglevel=0 panic=-1";

/// Switches of a VM run.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Use KVM instead of TCG (hangs on some hosts; off by default).
    pub kvm: bool,
    /// Kill a boot that has not powered off after this long.
    pub boot_timeout: Duration,
    /// Guest memory, as QEMU's `-m` takes it.
    pub memory: String,
}

impl Default for VmOptions {
    fn default() -> VmOptions {
        VmOptions {
            kvm: false,
            boot_timeout: DEFAULT_BOOT_TIMEOUT,
            memory: "1G".into(),
        }
    }
}

/// Where the VM's ingredients are on this machine.
#[derive(Debug, Clone)]
pub struct Machine {
    pub qemu: PathBuf,
    /// The kernels it can boot, by series (`6.1`, `6.12`).
    pub kernels: BTreeMap<String, Kernel>,
}

/// One bootable kernel: its image and its `lib/modules/<version>`.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub vmlinuz: PathBuf,
    pub modules: PathBuf,
}

impl Machine {
    /// Finds QEMU, the kernels and their modules, busybox and cpio; the
    /// error is the `not run` reason. Environment: `ZIO_VM_QEMU`,
    /// `ZIO_VM_CACHE` (default `$HOME/.cache/zio-vm`, where vm/setup.sh
    /// links `kernels/<series>/vmlinuz` and `.../modules`),
    /// `ZIO_VM_KERNEL` and `ZIO_VM_MODULES` (one kernel instead, of series
    /// `ZIO_VM_KERNEL_SERIES`, default 6.1), `ZIO_VM_BUSYBOX`.
    pub fn find() -> Result<Machine, String> {
        let missing = |what: String| format!("{NOT_SET_UP} ({what})");
        let qemu = match env::var_os("ZIO_VM_QEMU") {
            Some(q) => PathBuf::from(q),
            None => in_path("qemu-system-x86_64")
                .ok_or_else(|| missing("no qemu-system-x86_64 in PATH".into()))?,
        };
        let cache = env::var_os("ZIO_VM_CACHE")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cache/zio-vm")))
            .unwrap_or_else(|| PathBuf::from(".cache/zio-vm"));
        let mut kernels = BTreeMap::new();
        if env::var_os("ZIO_VM_KERNEL").is_some() || env::var_os("ZIO_VM_MODULES").is_some() {
            let series = env::var("ZIO_VM_KERNEL_SERIES").unwrap_or_else(|_| DEFAULT_KERNEL.into());
            let k = Kernel {
                vmlinuz: env::var_os("ZIO_VM_KERNEL")
                    .map(PathBuf::from)
                    .unwrap_or_default(),
                modules: env::var_os("ZIO_VM_MODULES")
                    .map(PathBuf::from)
                    .unwrap_or_default(),
            };
            if !k.vmlinuz.is_file() {
                return Err(missing(format!("no kernel {}", k.vmlinuz.display())));
            }
            if !k.modules.is_dir() {
                return Err(missing(format!("no modules {}", k.modules.display())));
            }
            kernels.insert(series, k);
        } else {
            for series in KERNELS {
                let dir = cache.join("kernels").join(series);
                let mut k = Kernel {
                    vmlinuz: dir.join("vmlinuz"),
                    modules: dir.join("modules"),
                };
                if *series == DEFAULT_KERNEL && !k.vmlinuz.is_file() {
                    // vm/setup.sh before kernels/ existed.
                    k = Kernel {
                        vmlinuz: cache.join("vmlinuz"),
                        modules: cache.join("modules"),
                    };
                }
                if k.vmlinuz.is_file() && k.modules.is_dir() {
                    kernels.insert(series.to_string(), k);
                }
            }
            if kernels.is_empty() {
                return Err(missing(format!(
                    "no kernel in {}",
                    cache.join("kernels").display()
                )));
            }
        }
        let busybox = env::var_os("ZIO_VM_BUSYBOX")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/bin/busybox"));
        if !qemu.is_file() {
            return Err(missing(format!("no {}", qemu.display())));
        }
        if !busybox.is_file() {
            return Err(missing(format!("no busybox {}", busybox.display())));
        }
        for tool in ["cpio", "gzip", "ldd", "xz"] {
            if in_path(tool).is_none() {
                return Err(missing(format!("no {tool} in PATH")));
            }
        }
        Ok(Machine { qemu, kernels })
    }
}

fn in_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The device family a test runs on: `scsi-zbc` with a `# scsi_debug:`
/// line, `nvme-zns` with a `# nvme:` line, else `null_blk`.
pub const DEVICES: &[&str] = &["null_blk", "nvme-zns", "scsi-zbc"];

fn device_of(needs: &Needs) -> &'static str {
    if needs.scsi.is_some() {
        "scsi-zbc"
    } else if needs.nvme.is_some() {
        "nvme-zns"
    } else {
        "null_blk"
    }
}

/// One VM run per test and kernel of its `# kernels:` line, keeping those
/// of `kernel` and `device` when given. A run on the default kernel keeps
/// the test's name; one on another kernel is `NAME@6.12`. A run expects
/// `NAME.out.<kernel>` where that file exists (the kernels rightly
/// differ), else `NAME.out`. A test whose header cannot be read stays, to
/// fail with the reason.
pub fn instances(
    tests: Vec<TestCase>,
    kernel: Option<&str>,
    device: Option<&str>,
) -> Vec<TestCase> {
    let mut out = Vec::new();
    for test in tests {
        let script = fs::read(&test.script).map(|t| String::from_utf8_lossy(&t).into_owned());
        let Ok(script) = script else {
            out.push(test);
            continue;
        };
        let Ok(kernels) = needs::kernels(&script) else {
            out.push(test);
            continue;
        };
        for k in kernels {
            if kernel.is_some_and(|want| want != k) {
                continue;
            }
            let needs = Needs::of(&script, &k);
            if let (Some(want), Ok(n)) = (device, &needs)
                && device_of(n) != want
            {
                continue;
            }
            let mut run = test.clone();
            if k != DEFAULT_KERNEL {
                run.name = format!("{}@{k}", test.name);
            }
            let own = test
                .expected
                .with_file_name(format!("{}.out.{k}", test.name));
            if own.is_file() {
                run.expected = own;
            }
            out.push(run);
        }
    }
    out
}

/// `tests` reordered so that tests with equal needs are adjacent (groups in
/// order of their first test, tests in their own order), as they will run.
pub fn boot_order(tests: Vec<TestCase>) -> Vec<TestCase> {
    let mut keys: Vec<Result<Needs, String>> = Vec::new();
    let mut groups: Vec<Vec<TestCase>> = Vec::new();
    for test in tests {
        let needs = needs_of(&test);
        match keys.iter().position(|k| *k == needs) {
            Some(i) => groups[i].push(test),
            None => {
                keys.push(needs);
                groups.push(vec![test]);
            }
        }
    }
    groups.into_iter().flatten().collect()
}

fn needs_of(test: &TestCase) -> Result<Needs, String> {
    let text = fs::read(&test.script)
        .map_err(|e| format!("cannot read {}: {e}", test.script.display()))?;
    Needs::of(&String::from_utf8_lossy(&text), test.kernel())
}

/// Runs `tests` (already in [`boot_order`]) in VMs, up to `jobs` boots at
/// once, and calls `on_verdict(index, verdict)` in test order. Returns all
/// verdicts.
pub fn run_vm(
    tests: &[TestCase],
    cfg: &Config,
    opts: &VmOptions,
    jobs: usize,
    mut on_verdict: impl FnMut(usize, &Verdict),
) -> Vec<Verdict> {
    let mut verdicts = Vec::with_capacity(tests.len());
    let machine = match Machine::find() {
        Ok(m) => m,
        Err(reason) => {
            for t in tests {
                let v = not_run(&t.name, &reason);
                on_verdict(verdicts.len(), &v);
                verdicts.push(v);
            }
            return verdicts;
        }
    };
    let vm_dir = cfg.scratch_root.join(".vm");
    // One base initramfs per kernel the runs use (the modules differ).
    let mut bases = BTreeMap::new();
    for t in tests {
        let k = t.kernel();
        if bases.contains_key(k) {
            continue;
        }
        let Some(kernel) = machine.kernels.get(k) else {
            continue;
        };
        match build_base(kernel, k, cfg, &vm_dir) {
            Ok(base) => {
                bases.insert(k.to_string(), base);
            }
            Err(e) => {
                for t in tests {
                    let v = runner_failure(cfg, &t.name, format!("VM setup failed: {e:#}"));
                    on_verdict(verdicts.len(), &v);
                    verdicts.push(v);
                }
                return verdicts;
            }
        }
    }

    let groups = boot_groups(tests);
    let ctx = BootContext {
        machine: &machine,
        cfg,
        opts,
        bases: &bases,
        vm_dir: &vm_dir,
        boots: groups.len(),
        times: std::sync::Mutex::new(Vec::new()),
    };
    let workers = jobs.clamp(1, groups.len().max(1));
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Vec<Verdict>)>();
    thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, groups, ctx) = (&next, &groups, &ctx);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(group) = groups.get(i) else { break };
                    if tx.send((i, ctx.run_group(i + 1, group))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Groups are contiguous in `tests`, so group order is test order.
        let mut pending = BTreeMap::new();
        let mut next_group = 0;
        for (i, group_verdicts) in rx {
            pending.insert(i, group_verdicts);
            while let Some(vs) = pending.remove(&next_group) {
                next_group += 1;
                for v in vs {
                    on_verdict(verdicts.len(), &v);
                    verdicts.push(v);
                }
            }
        }
    });
    if !cfg.keep {
        for base in bases.values() {
            let _ = fs::remove_file(base);
        }
    }
    let mut times = ctx.times.into_inner().unwrap_or_else(|e| e.into_inner());
    times.sort_by_key(|t| t.0);
    if !times.is_empty() {
        let total: f64 = times.iter().map(|t| t.2).sum();
        eprintln!(
            "zio-iotests: VM boots: {} in {total:.1} s of VM time",
            times.len()
        );
        for (no, what, secs) in &times {
            eprintln!("zio-iotests:   boot {no}: {secs:6.1} s  {what}");
        }
    }
    verdicts
}

/// `--vm-shell`: boots a VM with the devices `test` asks for and gives an
/// interactive shell on this terminal (QEMU's serial console; `exit`
/// powers off, Ctrl-A X kills QEMU). Returns QEMU's exit status.
pub fn shell(test: &TestCase, cfg: &Config, opts: &VmOptions) -> Result<i32> {
    let needs = needs_of(test).map_err(anyhow::Error::msg)?;
    eprintln!("zio-iotests: VM shell with {needs} (exit to power off, Ctrl-A X to kill)");
    let (machine, mut cmd, _) = single_boot(cfg, opts, &needs, "shell", BootMode::Shell)?;
    let status = cmd
        .args(["-serial", "mon:stdio", "-serial", "file:results.log"])
        .status()
        .with_context(|| format!("cannot start {}", machine.qemu.display()))?;
    Ok(status.code().unwrap_or(1))
}

/// A boot of its own, outside a test run (`--vm-shell`, `--vm-agent`): the
/// machine, the QEMU command that boots `needs` in `mode`, and the boot's
/// directory `.vm/NAME` in the scratch root.
fn single_boot(
    cfg: &Config,
    opts: &VmOptions,
    needs: &Needs,
    name: &str,
    mode: BootMode,
) -> Result<(Machine, Command, PathBuf)> {
    let machine = Machine::find().map_err(anyhow::Error::msg)?;
    let kernel = machine
        .kernels
        .get(&needs.kernel)
        .with_context(|| format!("no {} kernel: run vm/setup.sh", needs.kernel))?;
    let vm_dir = cfg.scratch_root.join(".vm");
    let base = build_base(kernel, &needs.kernel, cfg, &vm_dir)?;
    let dir = vm_dir.join(name);
    let bases = BTreeMap::from([(needs.kernel.clone(), base)]);
    let ctx = BootContext {
        machine: &machine,
        cfg,
        opts,
        bases: &bases,
        vm_dir: &vm_dir,
        boots: 1,
        times: std::sync::Mutex::new(Vec::new()),
    };
    let (cmd, _) = prepare_boot(&ctx, &dir, needs, &[], mode)?;
    Ok((machine, cmd, dir))
}

/// Consecutive tests with equal needs: one boot each.
fn boot_groups(tests: &[TestCase]) -> Vec<(Result<Needs, String>, &[TestCase])> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < tests.len() {
        let needs = needs_of(&tests[start]);
        let mut end = start + 1;
        while end < tests.len() && needs_of(&tests[end]) == needs {
            end += 1;
        }
        groups.push((needs, &tests[start..end]));
        start = end;
    }
    groups
}

/// What every boot of one run shares.
struct BootContext<'a> {
    machine: &'a Machine,
    cfg: &'a Config,
    opts: &'a VmOptions,
    /// The base initramfs of each kernel in use.
    bases: &'a BTreeMap<String, PathBuf>,
    vm_dir: &'a Path,
    boots: usize,
    /// `(boot number, what it booted, seconds)` of each boot, for the
    /// summary.
    times: std::sync::Mutex<Vec<(usize, String, f64)>>,
}

impl BootContext<'_> {
    /// Boots group number `no` (1-based) and returns its tests' verdicts,
    /// in order.
    fn run_group(
        &self,
        no: usize,
        (needs, group): &(Result<Needs, String>, &[TestCase]),
    ) -> Vec<Verdict> {
        let (cfg, boots) = (self.cfg, self.boots);
        let needs = match needs {
            Ok(n) => n,
            Err(reason) => {
                return group
                    .iter()
                    .map(|t| fail(cfg, &t.name, reason.clone()))
                    .collect();
            }
        };
        if !self.machine.kernels.contains_key(&needs.kernel) {
            let reason = format!(
                "{NOT_SET_UP} (no Linux {} kernel: vm/setup.sh installs it)",
                needs.kernel
            );
            return group.iter().map(|t| not_run(&t.name, &reason)).collect();
        }
        let runnable: Vec<&TestCase> = group
            .iter()
            .filter(|t| is_vm_safe_name(t.script_name()))
            .collect();
        let boot_dir = self.vm_dir.join(format!("boot-{no}"));
        let mut run = None;
        if !runnable.is_empty() {
            let names: Vec<&str> = runnable.iter().map(|t| t.script_name()).collect();
            eprintln!(
                "zio-iotests: VM boot {no}/{boots}: {needs}: {}",
                names.join(" ")
            );
            let started = Instant::now();
            let outcome = boot(self, &boot_dir, needs, &runnable);
            let took = started.elapsed().as_secs_f64();
            if let Ok(mut times) = self.times.lock() {
                times.push((no, needs.to_string(), took));
            }
            match &outcome {
                Err(e) => eprintln!("zio-iotests: VM boot {no}/{boots}: failed: {e:#}"),
                // The device facts (`INFO`: sizes, limits, null_blk's
                // configfs features) stay in console.log: on the terminal
                // they drowned the results.
                Ok(r) => eprintln!(
                    "zio-iotests: VM boot {no}/{boots}: {} in {took:.1} s",
                    if r.timed_out { "killed" } else { "powered off" },
                ),
            }
            if !cfg.keep {
                let _ = fs::remove_file(boot_dir.join("initrd"));
                let _ = fs::remove_file(boot_dir.join("zns.raw"));
            }
            run = Some(outcome);
        }
        group
            .iter()
            .map(|t| match &run {
                _ if !is_vm_safe_name(t.script_name()) => fail(
                    cfg,
                    &t.name,
                    "test name not usable in the VM (letters, digits, ._+- only)".into(),
                ),
                Some(Ok(run)) => verdict_of(t, cfg, self.opts, &boot_dir, run),
                Some(Err(e)) => runner_failure(cfg, &t.name, format!("VM boot failed: {e:#}")),
                None => unreachable!("a group with a runnable test was booted"),
            })
            .collect()
    }
}

/// Test names go into a shell word list inside the VM.
fn is_vm_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
}

/// Writes the embedded scripts to `vm_dir` and builds the base initramfs
/// of kernel `series`.
fn build_base(kernel: &Kernel, series: &str, cfg: &Config, vm_dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(vm_dir).with_context(|| format!("cannot create {}", vm_dir.display()))?;
    let script = vm_dir.join("mkinitramfs.sh");
    fs::write(&script, MKINITRAMFS)
        .with_context(|| format!("cannot write {}", script.display()))?;
    fs::write(vm_dir.join("init"), INIT)
        .with_context(|| format!("cannot write {}", vm_dir.display()))?;
    fs::write(vm_dir.join("agent"), AGENT)
        .with_context(|| format!("cannot write {}", vm_dir.display()))?;
    let base = vm_dir.join(format!("base-{series}.cpio.gz"));
    let out = Command::new("bash")
        .arg(&script)
        .arg(&base)
        .arg(&cfg.zio)
        .arg(&cfg.tests_dir)
        .arg(&kernel.modules)
        .stdin(Stdio::null())
        .output()
        .context("cannot run bash")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("mkinitramfs.sh: {}", stderr.trim());
    }
    for line in stderr.lines() {
        eprintln!("zio-iotests: {line}");
    }
    Ok(base)
}

/// What one boot produced.
struct BootRun {
    report: protocol::BootReport,
    timed_out: bool,
    /// QEMU's exit status, if it exited on its own.
    qemu_status: Option<i32>,
}

fn boot(ctx: &BootContext<'_>, dir: &Path, needs: &Needs, tests: &[&TestCase]) -> Result<BootRun> {
    let mut retried = false;
    loop {
        let (mut cmd, nonce) = prepare_boot(ctx, dir, needs, tests, BootMode::Tests)?;
        cmd.args(["-monitor", "none"]).args([
            "-serial",
            "file:console.log",
            "-serial",
            "file:results.log",
        ]);
        let log = fs::File::create(dir.join("qemu.log")).context("cannot create qemu.log")?;
        let log_err = log.try_clone().context("cannot duplicate qemu.log")?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("cannot start {}", ctx.machine.qemu.display()))?;
        let results = || {
            let text = fs::read(dir.join("results.log")).unwrap_or_default();
            protocol::parse(&String::from_utf8_lossy(&text), &nonce)
        };
        let started = || results().ready.is_some();
        let start = (!retried).then_some((START_DEADLINE, &started as &dyn Fn() -> bool));
        let (qemu_status, ended) = wait_or_kill(child, ctx.opts.boot_timeout, start)?;
        if ended == Ended::NotStarted {
            eprintln!(
                "zio-iotests: {}: no /init after {} s (stuck before the kernel ran); booting again",
                dir.display(),
                START_DEADLINE.as_secs()
            );
            retried = true;
            continue;
        }
        return Ok(BootRun {
            report: results(),
            timed_out: ended != Ended::Exited,
            qemu_status,
        });
    }
}

/// What /init does once the devices are up (`SHELL_MODE` in its group
/// file).
#[derive(Clone, Copy, PartialEq, Eq)]
enum BootMode {
    /// Runs the group's tests and reports them on ttyS1.
    Tests = 0,
    /// An interactive bash on the console (`--vm-shell`).
    Shell = 1,
    /// No devices; `/agent` serves commands on ttyS2 (`--vm-agent`).
    Agent = 2,
}

/// The kernel command line, plus `ZIO_VM_APPEND` (e.g. `loglevel=7` to
/// see boot messages in console.log).
fn kernel_cmdline() -> String {
    match env::var("ZIO_VM_APPEND") {
        Ok(extra) if !extra.trim().is_empty() => format!("{KERNEL_CMDLINE} {}", extra.trim()),
        _ => KERNEL_CMDLINE.to_string(),
    }
}

/// Makes `dir` afresh with the boot's initrd (base + group file) and ZNS
/// backing file, and returns the QEMU command without its serial ports,
/// and the nonce of the boot's report lines.
fn prepare_boot(
    ctx: &BootContext<'_>,
    dir: &Path,
    needs: &Needs,
    tests: &[&TestCase],
    mode: BootMode,
) -> Result<(Command, String)> {
    let (machine, cfg, opts) = (ctx.machine, ctx.cfg, ctx.opts);
    let kernel = machine
        .kernels
        .get(&needs.kernel)
        .with_context(|| format!("no Linux {} kernel", needs.kernel))?;
    let base = ctx
        .bases
        .get(&needs.kernel)
        .with_context(|| format!("no initramfs for Linux {}", needs.kernel))?;
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let nonce = nonce();
    let names: Vec<&str> = tests.iter().map(|t| t.script_name()).collect();
    let group = format!(
        "NONCE={nonce}\nNULLB_PARAMS='{}'\nNULLB_CONFIGFS={}\nNVME={}\nSCSI_PARAMS='{}'\nTEST_TIMEOUT={}\nTESTS='{}'\nSHELL_MODE={}\n",
        needs.nullb_params().join(" "),
        u8::from(needs.configfs),
        u8::from(needs.nvme.is_some()),
        needs.scsi.as_deref().unwrap_or_default().join(" "),
        cfg.timeout.as_secs().max(1),
        names.join(" "),
        mode as u8,
    );
    let mut initrd = fs::read(base).with_context(|| format!("cannot read {}", base.display()))?;
    cpio::pad4(&mut initrd);
    initrd.extend(cpio::newc(&[
        cpio::Entry {
            path: "etc",
            data: None,
        },
        cpio::Entry {
            path: "etc/zio-vm",
            data: None,
        },
        cpio::Entry {
            path: "etc/zio-vm/group",
            data: Some(group.as_bytes()),
        },
    ]));
    write_file(&dir.join("initrd"), &initrd)?;
    if let Some(zns) = &needs.nvme {
        let raw = dir.join("zns.raw");
        let f =
            fs::File::create(&raw).with_context(|| format!("cannot create {}", raw.display()))?;
        f.set_len(zns.size)
            .with_context(|| format!("cannot size {}", raw.display()))?;
    }
    let mut cmd = Command::new(&machine.qemu);
    cmd.current_dir(dir)
        .args(["-accel", if opts.kvm { "kvm" } else { "tcg" }])
        .args(["-m", &opts.memory, "-smp", "2"])
        .args(["-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .args(["-initrd", "initrd", "-append"])
        .arg(kernel_cmdline())
        .args(needs.qemu_args("zns.raw"));
    Ok((cmd, nonce))
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    let mut f =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// How a QEMU run ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ended {
    /// On its own.
    Exited,
    /// Killed at the timeout.
    TimedOut,
    /// Killed at the start deadline: it had not started.
    NotStarted,
}

/// Waits for QEMU; at the timeout kills it, and with `start` =
/// (deadline, started) also at the deadline unless `started()` says by
/// then that it started. Returns its exit status (None when killed by a
/// signal) and how it ended.
fn wait_or_kill(
    mut child: std::process::Child,
    timeout: Duration,
    start: Option<(Duration, &dyn Fn() -> bool)>,
) -> Result<(Option<i32>, Ended)> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    let ended = match start.filter(|(d, _)| *d < timeout) {
        Some((deadline, started)) => match rx.recv_timeout(deadline) {
            Ok(()) => Ended::Exited,
            Err(_) if !started() => Ended::NotStarted,
            Err(_) => rx
                .recv_timeout(timeout - deadline)
                .map_or(Ended::TimedOut, |()| Ended::Exited),
        },
        None => rx
            .recv_timeout(timeout)
            .map_or(Ended::TimedOut, |()| Ended::Exited),
    };
    if ended != Ended::Exited {
        // The waiter thread owns the child; signal it by pid (it cannot
        // have been reaped, since the waiter has not returned).
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let status = waiter
        .join()
        .map_err(|_| anyhow::anyhow!("QEMU waiter thread panicked"))?
        .context("cannot wait for QEMU")?;
    Ok((status.code(), ended))
}

/// A nonce for one boot's report lines.
fn nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", nanos & 0xffff_ffff_ffff, std::process::id())
}

/// The verdict of `test` from its boot's report.
fn verdict_of(
    test: &TestCase,
    cfg: &Config,
    opts: &VmOptions,
    boot_dir: &Path,
    run: &BootRun,
) -> Verdict {
    let console = display_path(&boot_dir.join("console.log"));
    let Some(report) = run.report.test(test.script_name()) else {
        let why = if let Some(msg) = &run.report.setup_fail {
            format!("VM setup failed: {}", msg.trim())
        } else if run.timed_out {
            format!(
                "VM killed after {} s (boot timeout) before the test finished; see {console}",
                opts.boot_timeout.as_secs()
            )
        } else if run.report.ready.is_none() {
            format!(
                "VM did not start /init (QEMU exit status {}); see {console} and qemu.log",
                run.qemu_status
                    .map_or_else(|| "none".to_string(), |c| c.to_string())
            )
        } else {
            format!("VM stopped before the test finished; see {console}")
        };
        return fail(cfg, &test.name, why);
    };
    if let Some(why) = &report.damaged {
        return fail(
            cfg,
            &test.name,
            format!("test output garbled on the VM's serial port: {why}"),
        );
    }
    match record(test, cfg, report).and_then(|run| judge(test, run, cfg)) {
        Ok(v) => v,
        Err(e) => runner_failure(cfg, &test.name, format!("runner error: {e:#}")),
    }
}

/// Lays out the VM's result in the test's scratch files, as a host run
/// leaves them, and returns it for [`judge`].
fn record(test: &TestCase, cfg: &Config, report: &protocol::TestReport) -> Result<RunOutput> {
    let scratch = Scratch::new(&cfg.scratch_root, &test.name);
    scratch.prepare()?;
    write_file(&scratch.log, &report.output)?;
    Ok(RunOutput {
        exit: match report.exit {
            protocol::VmExit::Code(c) => Exit::Code(c),
            protocol::VmExit::TimedOut => Exit::TimedOut(cfg.timeout),
        },
        output: String::from_utf8_lossy(&report.output).into_owned(),
        notrun: report.notrun.clone(),
        elapsed: report.elapsed,
        scratch,
    })
}

fn not_run(name: &str, reason: &str) -> Verdict {
    Verdict {
        name: name.to_string(),
        status: Status::NotRun,
        reason: reason.to_string(),
        elapsed: Duration::ZERO,
        diff: String::new(),
        bad_file: None,
        rerun: None,
        blessed: false,
        runner_error: false,
    }
}

fn fail(cfg: &Config, name: &str, reason: String) -> Verdict {
    Verdict {
        name: name.to_string(),
        status: Status::Fail,
        reason,
        elapsed: Duration::ZERO,
        diff: String::new(),
        bad_file: None,
        rerun: Some(rerun_command(cfg, name)),
        blessed: false,
        runner_error: false,
    }
}

fn runner_failure(cfg: &Config, name: &str, reason: String) -> Verdict {
    Verdict {
        runner_error: true,
        ..fail(cfg, name, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(secs: &str) -> std::process::Child {
        Command::new("sleep").arg(secs).spawn().unwrap()
    }

    #[test]
    fn a_run_that_has_not_started_by_the_deadline_is_killed_early() {
        let t0 = Instant::now();
        let (status, ended) = wait_or_kill(
            sleeper("30"),
            Duration::from_secs(20),
            Some((Duration::from_millis(200), &|| false)),
        )
        .unwrap();
        assert_eq!((status, ended), (None, Ended::NotStarted));
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_started_run_goes_on_to_its_end_or_its_timeout() {
        let (status, ended) = wait_or_kill(
            sleeper("1"),
            Duration::from_secs(20),
            Some((Duration::from_millis(200), &|| true)),
        )
        .unwrap();
        assert_eq!((status, ended), (Some(0), Ended::Exited));
        let (status, ended) = wait_or_kill(
            sleeper("30"),
            Duration::from_millis(600),
            Some((Duration::from_millis(200), &|| true)),
        )
        .unwrap();
        assert_eq!((status, ended), (None, Ended::TimedOut));
        // Exiting before the deadline is an end, not a missed start.
        let (_, ended) = wait_or_kill(
            sleeper("0"),
            Duration::from_secs(20),
            Some((Duration::from_secs(5), &|| false)),
        )
        .unwrap();
        assert_eq!(ended, Ended::Exited);
    }

    fn case(dir: &Path, name: &str, header: &str) -> TestCase {
        let script = dir.join(name);
        fs::write(
            &script,
            format!("#!/usr/bin/env bash\n# group: realdev\n{header}"),
        )
        .unwrap();
        TestCase {
            name: name.into(),
            expected: dir.join(format!("{name}.out")),
            script,
            groups: vec![REALDEV_GROUP.into()],
        }
    }

    #[test]
    fn equal_needs_are_adjacent_in_first_seen_order() {
        let dir = env::temp_dir().join(format!("zio-vm-order-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let a = "# nullb: zoned=1 gb=1\n";
        let b = "# nullb: zoned=1 gb=2\n";
        let tests = vec![
            case(&dir, "t1", a),
            case(&dir, "t2", b),
            case(&dir, "t3", a),
            case(&dir, "t4", &format!("{a}# nvme: zns\n")),
            case(&dir, "t5", b),
        ];
        let ordered = boot_order(tests);
        let names: Vec<&str> = ordered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["t1", "t3", "t2", "t5", "t4"]);
        let groups = boot_groups(&ordered);
        let sizes: Vec<usize> = groups.iter().map(|(_, g)| g.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn vm_safe_names() {
        assert!(is_vm_safe_name("realdev-smoke"));
        assert!(is_vm_safe_name("001_a.b+c"));
        assert!(!is_vm_safe_name("a b"));
        assert!(!is_vm_safe_name("a'b"));
        assert!(!is_vm_safe_name(""));
    }
}
