//! The VM tier's command agent: `--vm-agent SOCKET` boots a VM with no
//! device set up and serves, on the Unix socket SOCKET, commands run inside
//! it by `vm/agent` (/dev/ttyS2); `--vm-exec SOCKET -- PROG ARGS...` is the
//! client, which runs one command there and exits with its status, its
//! stdout and stderr copied to its own; `--vm-poweroff SOCKET` ends it.
//!
//! This is how a harness that cannot run in the VM (QEMU's Python `check`)
//! runs tests against its real devices: its QEMU_IO_PROG and `sudo` become
//! `--vm-exec` wrappers (`tools/qemu-iotests.sh --vm`). One command runs at
//! a time; a client waits for the ones before it. Its stdin is /dev/null
//! in the VM, and its stdout and stderr come back whole, stdout first (their
//! interleaving is lost).
//!
//! Wire format, one line per message, both hops: `RUN <base64 of the
//! NUL-terminated args>` or `POWEROFF` towards the VM; `RES <status>
//! <base64 stdout> <base64 stderr>`, `BYE` (powered off) or `ERR <text>`
//! (from the broker: the VM died, timed out or the request was bad) back.

use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{BootMode, Needs, VmOptions, single_boot};
use crate::config::Config;

/// How long the agent waits between two clients before powering off (so a
/// harness that died leaves no VM behind).
const IDLE_LIMIT: Duration = Duration::from_secs(900);

/// `--vm-agent SOCKET`: boots Linux `series` with the agent and serves
/// clients until `POWEROFF`, an idle spell of [`IDLE_LIMIT`], or the VM's
/// death. A command may take `cfg.timeout`. Returns the exit code.
pub fn agent(socket: &Path, series: &str, cfg: &Config, opts: &VmOptions) -> Result<i32> {
    let needs = Needs {
        kernel: series.to_string(),
        nullb: Vec::new(),
        configfs: false,
        nvme: None,
        scsi: None,
    };
    let (machine, mut cmd, dir) = single_boot(cfg, opts, &needs, "agent-boot", BootMode::Agent)?;

    // Clients may connect while the VM boots: they wait in the backlog.
    let clients = bind(socket)?;
    // QEMU connects to this one as the third serial port's backend. Next
    // to SOCKET, as Unix socket paths are short (108 bytes).
    let guest_path = PathBuf::from(format!("{}.guest", socket.display()));
    let guest_listener = bind(&guest_path)?;
    let log = fs::File::create(dir.join("qemu.log")).context("cannot create qemu.log")?;
    let log_err = log.try_clone().context("cannot duplicate qemu.log")?;
    let mut qemu = cmd
        .args(["-monitor", "none", "-serial", "file:console.log"])
        .args(["-serial", "file:results.log", "-chardev"])
        .arg(format!("socket,id=agent,path={}", guest_path.display()))
        .args(["-serial", "chardev:agent"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .with_context(|| format!("cannot start {}", machine.qemu.display()))?;
    let served = serve(&mut qemu, &guest_listener, &clients, cfg.timeout, opts);
    let _ = fs::remove_file(&guest_path);
    let _ = fs::remove_file(socket);
    if served.is_err() {
        let _ = qemu.kill();
    }
    let _ = qemu.wait();
    served.map(|()| 0).with_context(|| {
        format!(
            "VM agent (console: {})",
            crate::config::display_path(&dir.join("console.log"))
        )
    })
}

/// A listener at `path`, replacing a stale socket file.
fn bind(path: &Path) -> Result<UnixListener> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", path.display()));
        }
        _ => {}
    }
    UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))
}

/// Accepts on `listener` until `limit`, giving up early if QEMU exits.
fn accept_until(
    listener: &UnixListener,
    qemu: &mut Child,
    limit: Duration,
) -> Result<Option<UnixStream>> {
    listener.set_nonblocking(true)?;
    let end = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(Some(s));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("accept"),
        }
        if let Some(status) = qemu.try_wait()? {
            bail!("QEMU exited ({status})");
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One line from `r` (without its newline) within `limit`.
fn read_line(r: &mut BufReader<UnixStream>, limit: Duration) -> Result<String> {
    r.get_ref().set_read_timeout(Some(limit))?;
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => bail!("connection closed"),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            bail!("no answer within {} s", limit.as_secs())
        }
        Err(e) => Err(e.into()),
    }
}

fn send(mut w: &UnixStream, line: &str) -> io::Result<()> {
    w.write_all(format!("{line}\n").as_bytes())
}

/// Brokers between clients and the guest until POWEROFF or an error.
fn serve(
    qemu: &mut Child,
    guest_listener: &UnixListener,
    clients: &UnixListener,
    timeout: Duration,
    opts: &VmOptions,
) -> Result<()> {
    let guest = accept_until(guest_listener, qemu, Duration::from_secs(60))?
        .context("QEMU did not connect to the agent's serial port")?;
    let mut guest = BufReader::new(guest);
    let ready = read_line(&mut guest, opts.boot_timeout).context("waiting for the VM agent")?;
    let Some(release) = ready.strip_prefix("READY ") else {
        bail!("the VM agent said {ready:?}, not READY");
    };
    eprintln!("zio-iotests: VM agent ready (Linux {release})");
    loop {
        let Some(client) = accept_until(clients, qemu, IDLE_LIMIT)? else {
            eprintln!(
                "zio-iotests: VM agent idle for {} s: powering off",
                IDLE_LIMIT.as_secs()
            );
            send(guest.get_ref(), "POWEROFF")?;
            return wait_exit(qemu);
        };
        let mut client = BufReader::new(client);
        let request = match read_line(&mut client, Duration::from_secs(10)) {
            Ok(r) => r,
            Err(_) => continue,
        };
        if request == "POWEROFF" {
            send(guest.get_ref(), "POWEROFF")?;
            let done = wait_exit(qemu);
            let _ = send(client.get_ref(), if done.is_ok() { "BYE" } else { "ERR" });
            return done;
        }
        if !request.starts_with("RUN ") {
            let _ = send(client.get_ref(), "ERR bad request");
            continue;
        }
        send(guest.get_ref(), &request)?;
        match read_line(&mut guest, timeout) {
            Ok(answer) => {
                let _ = send(client.get_ref(), &answer);
            }
            Err(e) => {
                let _ = send(client.get_ref(), &format!("ERR the VM: {e:#}"));
                return Err(e.context("the VM agent"));
            }
        }
    }
}

/// Waits up to 60 s for QEMU to power off.
fn wait_exit(qemu: &mut Child) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        if qemu.try_wait()?.is_some() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
    bail!("the VM did not power off")
}

/// Connects to an agent at `socket`, retrying for up to `wait` while it is
/// not there yet (it binds before the VM boots).
fn connect(socket: &Path, wait: Duration) -> Result<UnixStream> {
    let end = Instant::now() + wait;
    loop {
        match UnixStream::connect(socket) {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused)
                    && Instant::now() < end =>
            {
                thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("no VM agent at {}", socket.display()));
            }
        }
    }
}

/// Sends one request and reads the answer (no time limit: the agent has
/// its own).
fn request(socket: &Path, line: &str, wait: Duration) -> Result<String> {
    let s = connect(socket, wait)?;
    send(&s, line).context("cannot send to the VM agent")?;
    let mut r = BufReader::new(s);
    let mut answer = String::new();
    r.read_line(&mut answer)
        .context("cannot read the VM agent's answer")?;
    if answer.is_empty() {
        bail!("the VM agent closed the connection without answering");
    }
    Ok(answer.trim_end_matches('\n').to_string())
}

/// `--vm-exec SOCKET -- ARGV`: runs ARGV in the agent's VM; copies its
/// output and returns its exit status.
pub fn agent_exec(socket: &Path, argv: &[String], wait: Duration) -> Result<i32> {
    if argv.is_empty() {
        bail!("--vm-exec needs a command after --");
    }
    let mut packed = Vec::new();
    for a in argv {
        if a.contains('\0') {
            bail!("an argument holds a NUL byte");
        }
        packed.extend_from_slice(a.as_bytes());
        packed.push(0);
    }
    let answer = request(socket, &format!("RUN {}", B64.encode(&packed)), wait)?;
    if let Some(why) = answer.strip_prefix("ERR") {
        bail!("VM agent: {}", why.trim());
    }
    let mut f = answer.splitn(4, ' ');
    let (Some("RES"), Some(rc), Some(out), Some(err)) = (f.next(), f.next(), f.next(), f.next())
    else {
        bail!("VM agent: malformed answer {answer:?}");
    };
    let rc: i32 = rc
        .parse()
        .with_context(|| format!("VM agent: bad status {rc:?}"))?;
    let out = B64.decode(out).context("VM agent: bad stdout")?;
    let err = B64.decode(err).context("VM agent: bad stderr")?;
    // A closed stdout (a harness that stopped reading) is not our failure.
    let _ = io::stdout()
        .write_all(&out)
        .and_then(|()| io::stdout().flush());
    let _ = io::stderr().write_all(&err);
    Ok(rc)
}

/// `--vm-poweroff SOCKET`: powers the agent's VM off.
pub fn agent_poweroff(socket: &Path) -> Result<()> {
    match request(socket, "POWEROFF", Duration::ZERO)?.as_str() {
        "BYE" => Ok(()),
        other => bail!("VM agent: {other}"),
    }
}
