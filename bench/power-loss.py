#!/usr/bin/env python3
"""Power-loss test of the zoned image: zio writes, appends, finishes, resets
and flushes a zoned image on the virtio disk of a throwaway VM (TCG), the
host SIGKILLs the whole QEMU at a random moment, and the image is checked:

- it reopens: `zio check IMG` exits 0 and `zio -r -U -c 'zrp ...'` works;
- no write pointer is behind data acknowledged before a completed flush
  (unless a reset of that zone was sent after that flush);
- every byte below a write pointer holds the pattern of the write that put
  it there (each write has its own pattern byte), so stale, discarded or
  missing data shows; a finished zone may end in anything after its data.

Design:

- The image is a zoned image in a regular host file (`zio create -f zoned`),
  attached raw: `-drive file=IMG,format=raw,if=virtio,cache=none,
  discard=unmap`. In the guest zio opens /dev/vdX, probing finds the zoned
  magic over host_device, and the block device is written buffered (zio's
  default cache mode; `--guest-nocache` for zio -n, O_DIRECT): what sits in the
  guest's page cache when QEMU dies is lost, as in a power cut. The guest's
  writeback runs every 50 ms for pages older than 100 ms (`--dirty`), so
  the disk holds a random mixture of older writes, as a busy machine's disk
  does. cache=none (O_DIRECT on the host, a volatile write cache for the
  guest) makes the guest send FLUSH for zio's fdatasync as on a real disk;
  QEMU keeps no guest data of a raw disk in its own memory, so everything
  the guest's disk completed is in the host file after the SIGKILL and
  nothing else is. (What this cannot do: lose a disk's volatile cache; a
  completed write is never lost, flushed or not.)
- Commands go to the guest over its second serial port (a unix socket on
  the host) and zio's output comes back on it, one command group at a
  time, lock step: a group is sent only when the previous one's output
  ended, and every group ends with `length`, so the host knows exactly
  which groups completed and that at most the last one sent was running.
  A flush is completed when its group's `length` came back.
- The host file is what a fresh VM's disk shows. To prove it rather than
  argue it, every boot first reopens a read-only copy of the previous
  kill's image on a second disk (`zio check`, `zio -r -U -c zrp`, md5sum of
  the disk) and the host compares that with its own check of the file; the
  last kill's image gets a boot of its own (`--verify-every N`: every Nth).
- The image carries over from kill to kill (each workload starts on what
  the previous cut left: open zones, hidden data after resets), except
  after a violation: then it is made afresh, so each violation is that
  kill's.

    bench/power-loss.py [--kills 100] [--jobs 2] [--max-delay 4] [--seed 1]

Prints one line per kill with a violation, then the summary
`kills: N, violations: V, ...`; exits 1 on any violation or failed boot.
"""

import argparse
import hashlib
import lzma
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECTOR = 512
KERNEL_CMDLINE = "console=ttyS0 quiet loglevel=0 panic=-1"
VIRTIO_MODULES = [
    ("virtio_ring", "drivers/virtio/virtio_ring.ko"),
    ("virtio", "drivers/virtio/virtio.ko"),
    ("virtio_pci_legacy_dev", "drivers/virtio/virtio_pci_legacy_dev.ko"),
    ("virtio_pci_modern_dev", "drivers/virtio/virtio_pci_modern_dev.ko"),
    ("virtio_pci", "drivers/virtio/virtio_pci.ko"),
    ("virtio_blk", "drivers/block/virtio_blk.ko"),
]

WROTE = re.compile(r"^wrote (\d+)/\d+ bytes at offset (\d+)$")
ZAP = re.compile(r"^After zap done, the append sector is 0x([0-9a-f]+)$")
ZRP = re.compile(r"^start: 0x([0-9a-f]+), len 0x([0-9a-f]+), cap 0x[0-9a-f]+, wptr 0x([0-9a-f]+), zcond:(\d+)")
FULL = 14

KINDS = [
    "reopen failed",
    "flushed data lost",
    "wp over wrong data",
    "fresh VM disagrees",
    "boot failed",
]


# --- VM ingredients ---------------------------------------------------------

def newc(entries):
    """A newc cpio archive of (path, mode, data): data None for a directory,
    mode "link" for a symbolic link to data."""
    out = bytearray()
    ino = 1000

    def add(name, mode, data):
        nonlocal ino
        ino += 1
        nb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0]
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields))
        out.extend(nb)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for path, mode, data in entries:
        if data is None:
            add(path, 0o040755, b"")
        elif mode == "link":
            add(path, 0o120777, data.encode())
        else:
            add(path, 0o100000 | mode, data)
    add("TRAILER!!!", 0, b"")
    out.extend(b"\0" * (-len(out) % 512))
    return bytes(out)


def read_module(modules, rel):
    base = os.path.join(modules, "kernel", rel)
    for suffix, opener in [("", open), (".xz", lzma.open)]:
        if os.path.exists(base + suffix):
            with opener(base + suffix, "rb") as f:
                return f.read()
    if os.path.exists(base + ".zst"):
        return subprocess.run(["zstd", "-qdc", base + ".zst"], check=True, capture_output=True).stdout
    return None


def machine():
    """QEMU, kernel, modules: from the environment vm/setup.sh documents."""
    cache = os.environ.get("ZIO_VM_CACHE") or os.path.join(os.environ.get("HOME", ""), ".cache/zio-vm")
    qemu = os.environ.get("ZIO_VM_QEMU") or shutil.which("qemu-system-x86_64")
    kernel = os.environ.get("ZIO_VM_KERNEL") or os.path.join(cache, "vmlinuz")
    modules = os.environ.get("ZIO_VM_MODULES") or os.path.join(cache, "modules")
    missing = [what for what, ok in [
        ("qemu-system-x86_64", qemu and os.path.isfile(qemu)),
        (f"kernel {kernel}", os.path.isfile(kernel)),
        (f"modules {modules}", os.path.isdir(modules)),
    ] if not ok]
    if missing:
        sys.exit(f"power-loss: VM tier not set up (no {', '.join(missing)}): run vm/setup.sh")
    return qemu, kernel, modules


def pvh_kernel(vmlinuz, out):
    """The uncompressed ELF vmlinux inside a bzImage, which QEMU boots through
    its PVH entry (Debian's kernels have CONFIG_PVH=y): under TCG inflating
    the xz'd kernel takes longer than the whole boot after it (8 s of a 13 s
    boot here, then 2.7 s). None if the payload is not xz or gzip."""
    import zlib
    k = open(vmlinuz, "rb").read()
    for magic, make in [(b"\xfd7zXZ\x00", lzma.LZMADecompressor), (b"\x1f\x8b\x08", lambda: zlib.decompressobj(31))]:
        i = k.find(magic)
        if i < 0:
            continue
        try:
            elf = make().decompress(k[i:])
        except (lzma.LZMAError, zlib.error):
            continue
        if elf[:4] == b"\x7fELF":
            with open(out, "wb") as f:
                f.write(elf)
            return out
    return None


def ldd_libs(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
            libs.append(parts[parts.index("=>") + 1])
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])
    return libs


def build_initrd(zio, modules, out):
    """The VM's initramfs, uncompressed (nothing to inflate at boot): static
    busybox and its applets, zio and its libraries, vm/power-loss-init as
    /init, the virtio modules. vm/mkinitramfs.sh's image would work too (the
    init and modules appended as a second archive), but it carries bash,
    qemu-io and their libraries, null_blk and the NVMe stack: 2.5x the bytes
    for nothing this test runs."""
    busybox = os.environ.get("ZIO_VM_BUSYBOX", "/bin/busybox")
    if not os.access(busybox, os.X_OK):
        sys.exit(f"power-loss: no busybox at {busybox} (vm/setup.sh installs busybox-static)")
    files = {}  # path in the image -> (mode, data)
    dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "opt", "opt/zio",
            "lib", "lib/modules", "lib/modules/power"}

    def add_file(path, mode, data):
        path = path.lstrip("/")
        parts = path.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
        files[path] = (mode, data)

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    add_file("bin/busybox", 0o755, read(busybox))
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True).stdout.split()
    links = [a for a in applets if os.path.basename(a) != "busybox"]
    add_file("opt/zio/zio", 0o755, read(zio))
    for lib in ldd_libs(zio):
        add_file(lib, 0o755, read(os.path.realpath(lib)))
    add_file("init", 0o755, read(os.path.join(ROOT, "vm", "power-loss-init")))
    builtin_path = os.path.join(modules, "modules.builtin")
    builtin = read(builtin_path).decode() if os.path.exists(builtin_path) else ""
    order = []
    for name, rel in VIRTIO_MODULES:
        data = read_module(modules, rel)
        if data is None:
            if "/" + os.path.basename(rel) in builtin:
                continue
            sys.exit(f"power-loss: module {rel} not found in {modules}")
        add_file(f"lib/modules/power/{name}.ko", 0o644, data)
        order.append(name)
    add_file("lib/modules/power/order", 0o644, ("\n".join(order) + "\n").encode())
    entries = [(d, 0, None) for d in sorted(dirs)]
    entries += [(p, m, d) for p, (m, d) in sorted(files.items())]
    entries += [(a.lstrip("/"), "link", "/bin/busybox") for a in links if a.lstrip("/") not in files]
    with open(out, "wb") as f:
        f.write(newc(entries))


# --- the model of what the image may hold -----------------------------------

class Write:
    __slots__ = ("off", "len", "pat", "blob", "durable")

    def __init__(self, off, length, pat=None, blob=None):
        self.off, self.len, self.pat, self.blob = off, length, pat, blob
        self.durable = False

    def expected(self, lo, hi):
        if self.blob is not None:
            return self.blob[lo - self.off:hi - self.off]
        return bytes([self.pat]) * (hi - lo)


class Epoch:
    """A zone's life from one reset (or from the state a kill left) on."""

    def __init__(self, reset_sent, base=None):
        self.reset_durable = reset_sent is None  # the base epoch is on disk
        self.writes = [] if base is None else [base]
        self.finish = False  # a finish sent (may have happened)
        self.finish_durable = False
        if base is not None:
            for w in self.writes:
                w.durable = True


class Zone:
    def __init__(self, z, size, wp, cond, blob):
        self.z, self.start, self.end = z, z * size, (z + 1) * size
        base = Write(self.start, wp - self.start, blob=blob) if wp > self.start else None
        self.epochs = [Epoch(None, base)]
        if cond == FULL:
            self.epochs[0].finish = self.epochs[0].finish_durable = True
        self.wp = wp  # the write pointer as the host knows it (lock step)

    def candidates(self):
        first = max(i for i, e in enumerate(self.epochs) if e.reset_durable)
        return list(enumerate(self.epochs))[first:]


class Model:
    """Per zone, what the guest was told and what it acknowledged."""

    def __init__(self, zones, zone_size, state):
        self.zone_size = zone_size
        self.zones = [Zone(z, zone_size, wp, cond, blob) for z, (wp, cond, blob) in enumerate(state)]
        self.pending_epochs = []  # epochs whose reset completed since the last flush
        self.pending_writes = []
        self.pending_finishes = []

    def flushed(self):
        for w in self.pending_writes:
            w.durable = True
        for e in self.pending_epochs:
            e.reset_durable = True
        for e in self.pending_finishes:
            e.finish_durable = True
        self.pending_writes, self.pending_epochs, self.pending_finishes = [], [], []


def check_epoch(zone, epoch, wp, data):
    """None if the disk's zone (write pointer `wp`, bytes `data` below it) can be
    this epoch's state after a power cut, else why not."""
    need = zone.start
    for w in epoch.writes:
        if w.durable:
            need = max(need, w.off + w.len)
    if epoch.finish_durable:
        need = zone.end
    if wp < need:
        return "flushed data lost", f"wp {wp:#x} behind flushed data ending at {need:#x}"
    covered = zone.start
    for w in sorted(epoch.writes, key=lambda w: w.off):
        lo, hi = w.off, min(w.off + w.len, wp)
        if lo >= wp:
            break
        if lo != covered:
            break
        got = data[lo - zone.start:hi - zone.start]
        want = w.expected(lo, hi)
        if got != want:
            bad = next(i for i in range(len(got)) if got[i] != want[i])
            what = f"pattern {w.pat:#x}" if w.blob is None else f"{want[bad]:#x} as the previous cut left it"
            ndiff = sum(1 for a, b in zip(got, want) if a != b)
            return "wp over wrong data", (
                f"wp {wp:#x}: byte {lo + bad:#x} is {got[bad]:#x}, not {what} "
                f"(write {w.off:#x}+{w.len:#x}{', flushed' if w.durable else ''}; "
                f"{ndiff} of {len(got)} bytes differ, found {sorted(set(got))[:6]})")
        covered = hi
    if wp > covered and not epoch.finish:
        return "wp over wrong data", f"wp {wp:#x} above the written data ending at {covered:#x} (no finish sent)"
    return None


# --- one boot ---------------------------------------------------------------

class Boot:
    def __init__(self, args, qemu, kernel, initrd, work, no, img, prev, mode):
        self.dir = os.path.join(work, f"boot-{no}")
        os.makedirs(self.dir, exist_ok=True)
        self.sock_path = os.path.join(self.dir, "ctl.sock")
        if os.path.exists(self.sock_path):
            os.remove(self.sock_path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.sock_path)
        self.listener.listen(1)
        append = f"{KERNEL_CMDLINE} pl_zones={args.zones} pl_mode={mode} pl_dirty={args.dirty}"
        if prev:
            append += " pl_prev=1"
        if args.guest_nocache:
            append += " pl_nocache=1"
        cmd = [qemu, "-accel", "tcg", "-m", args.memory, "-smp", "1", "-nodefaults", "-display", "none",
               "-no-reboot", "-monitor", "none", "-nic", "none",
               "-kernel", kernel, "-initrd", initrd, "-append", append,
               "-serial", "file:" + os.path.join(self.dir, "console.log"),
               "-chardev", f"socket,id=ctl,path={self.sock_path}", "-serial", "chardev:ctl"]
        if img:
            cmd += ["-drive", f"file={img},format=raw,if=none,id=work,cache={args.qemu_cache},discard=unmap",
                    "-device", "virtio-blk-pci,drive=work,serial=work"]
        if prev:
            cmd += ["-drive", f"file={prev},format=raw,if=none,id=prev,cache={args.qemu_cache},readonly=on",
                    "-device", "virtio-blk-pci,drive=prev,serial=prev"]
        self.t0 = time.monotonic()
        self.qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(os.path.join(self.dir, "qemu.log"), "w"),
                                     stderr=subprocess.STDOUT)
        self.listener.settimeout(30)
        self.conn, _ = self.listener.accept()
        self.buf = b""
        self.log = open(os.path.join(self.dir, "ctl.log"), "wb")

    def line(self, deadline):
        """The next line from the guest, or None at the deadline / EOF."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.conn.settimeout(left)
            try:
                chunk = self.conn.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                return None
            self.log.write(chunk)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace").rstrip("\r")

    def send(self, text):
        self.log.write(b">>> " + text.encode())
        self.conn.sendall(text.encode())

    def kill(self):
        self.qemu.send_signal(signal.SIGKILL)
        self.qemu.wait()
        self.close()

    def wait(self, timeout):
        try:
            self.qemu.wait(timeout)
        except subprocess.TimeoutExpired:
            self.qemu.kill()
            self.qemu.wait()
        self.close()

    def close(self):
        self.conn.close()
        self.listener.close()
        self.log.close()


def read_verify(boot, deadline):
    """The fresh VM's view of the prev disk, up to READY/DONE."""
    got = {"check": [], "zrp": [], "check_rc": None, "zrp_rc": None, "md5": None, "devcheck": [],
           "devcheck_rc": None, "times": {}}
    while True:
        line = boot.line(deadline)
        if line is None:
            return got, "no READY from the guest (see console.log)"
        if line.startswith("PL CHECK-RC "):
            got["check_rc"] = int(line.split()[2])
        elif line.startswith("PL CHECK "):
            got["check"].append(line[9:])
        elif line.startswith("PL ZRP-RC "):
            got["zrp_rc"] = int(line.split()[2])
        elif line.startswith("PL ZRP "):
            got["zrp"].append(line[7:])
        elif line.startswith("PL DEVCHECK-RC "):
            got["devcheck_rc"] = int(line.split()[2])
        elif line.startswith("PL DEVCHECK "):
            got["devcheck"].append(line[12:])
        elif line.startswith("PL T "):
            got["times"][line.split()[2]] = time.monotonic()
        elif line.startswith("PL MD5 "):
            got["md5"] = line.split()[2]
        elif line.startswith(("PL READY", "PL DONE")):
            return got, None
        elif line.startswith("PL FAIL"):
            return got, line


def host_check(args, img):
    """(reasons, state, facts): zio check and zrp of the host file, its data,
    and the facts a fresh VM must agree with."""
    reasons = []
    chk = subprocess.run([args.zio, "check", img], capture_output=True, text=True)
    zrp = subprocess.run([args.zio, "-r", "-U", "-c", f"zrp 0 {args.zones}", img], capture_output=True, text=True)
    facts = {"check_rc": chk.returncode, "zrp": zrp.stdout.splitlines(), "zrp_rc": zrp.returncode,
             "md5": hashlib.md5(open(img, "rb").read()).hexdigest()}
    if chk.returncode != 0:
        first = next((l for l in (chk.stdout + chk.stderr).splitlines() if l.strip()), "")
        reasons.append(("reopen failed", f"zio check exit {chk.returncode}: {first.strip()}"))
    zones = [ZRP.match(l) for l in zrp.stdout.splitlines()]
    if zrp.returncode != 0 or len(zones) != args.zones or not all(zones):
        reasons.append(("reopen failed", f"zrp exit {zrp.returncode}: {(zrp.stdout + zrp.stderr).strip()[:200]}"))
        return reasons, None, facts
    state = []
    with open(img, "rb") as f:
        data_offset = struct.unpack_from("<Q", f.read(4096), 80)[0]
        for z, m in enumerate(zones):
            wp = int(m.group(3), 16) * SECTOR
            f.seek(data_offset + z * args.zone_size)
            state.append((wp, int(m.group(4)), f.read(wp - z * args.zone_size)))
    return reasons, state, facts


def compare_fresh(expect, got):
    diffs = []
    if got["check_rc"] != expect["check_rc"]:
        diffs.append(f"zio check exit {got['check_rc']} in the VM, {expect['check_rc']} on the host")
    if got["zrp"] != expect["zrp"] or got["zrp_rc"] != expect["zrp_rc"]:
        diffs.append(f"zone report differs (VM {got['zrp'][:2]}..., host {expect['zrp'][:2]}...)")
    if got["md5"] != expect["md5"]:
        diffs.append(f"disk md5 {got['md5']} in the VM, file md5 {expect['md5']}")
    return diffs


class Worker:
    """One chain of kills on one image; `run` does kill after kill."""

    def __init__(self, args, ctx, no, rng):
        self.args, self.ctx, self.no, self.rng = args, ctx, no, rng
        self.dir = os.path.join(ctx["work"], f"w{no}")
        os.makedirs(self.dir, exist_ok=True)
        self.img = os.path.join(self.dir, "zoned.img")
        self.prev = os.path.join(self.dir, "prev.img")
        self.prev_facts = None  # what the host saw in prev.img, for the fresh VM
        self.prev_kill = None
        self.state = None
        self.pat = 0
        self.boot_no = 0
        self.causes = ctx["causes"]

    def fresh_image(self):
        if os.path.exists(self.img):
            os.remove(self.img)
        subprocess.run([self.args.zio, "create", "-f", "zoned", "-o", f"zone_size={self.args.zone_size}",
                        self.img, str(self.args.zones * self.args.zone_size)], check=True, capture_output=True)
        self.state = [(z * self.args.zone_size, 1, b"") for z in range(self.args.zones)]

    def next_pat(self):
        self.pat = self.pat % 255 + 1
        return self.pat

    def group(self, model):
        """The next command group (text) and how to apply its output."""
        rng, zs = self.rng, self.args.zone_size
        zone = model.zones[rng.randrange(len(model.zones))]
        room = zone.end - zone.wp
        r = rng.random()
        if room == 0 and r < 0.70:
            r = 0.80
        if r < 0.45:
            length = min(rng.choice([512, 4096, 65536, 262144]), room) or 512
            p = self.next_pat()
            return f"write -P {p} {zone.wp} {length}\n", ("write", zone, zone.wp, length, p)
        if r < 0.70:
            length = min(rng.choice([512, 4096, 32768]), room) or 512
            p = self.next_pat()
            return f"zap -p -P {p} {zone.start} {length}\n", ("zap", zone, zone.wp, length, p)
        if r < 0.78:
            return f"zf {zone.start} {zs}\nzrp {zone.start} 1\n", ("finish", zone)
        if r < 0.88:
            return f"zrs {zone.start} {zs}\nzrp {zone.start} 1\n", ("reset", zone)
        return "flush\n", ("flush",)

    def sent(self, model, what):
        """A group was sent: what it may do, before its output is known."""
        kind = what[0]
        if kind in ("write", "zap"):
            _, zone, off, length, p = what
            w = Write(off, length, p)
            zone.epochs[-1].writes.append(w)
            return w
        if kind == "finish":
            zone = what[1]
            e = zone.epochs[-1]
            prior, e.finish = e.finish, True
            return (e, prior)
        if kind == "reset":
            zone = what[1]
            e = Epoch(reset_sent=True)
            zone.epochs.append(e)
            return e
        return None

    def acked(self, model, what, obj, lines):
        """A group's output came back: what it did."""
        kind = what[0]
        if kind == "write":
            m = WROTE.match(lines[0]) if lines else None
            zone = what[1]
            if m:
                model.pending_writes.append(obj)
                zone.wp = obj.off + obj.len
            else:
                zone.epochs[-1].writes.remove(obj)
        elif kind == "zap":
            m = ZAP.match(lines[0]) if lines else None
            zone = what[1]
            if m:
                obj.off = int(m.group(1), 16) * SECTOR
                model.pending_writes.append(obj)
                zone.wp = obj.off + obj.len
            else:
                zone.epochs[-1].writes.remove(obj)
        elif kind in ("finish", "reset"):
            zone = what[1]
            m = ZRP.match(lines[-1]) if lines else None
            wp = int(m.group(3), 16) * SECTOR if m else None
            if kind == "finish":
                e, prior = obj
                if wp == zone.end:
                    zone.wp = wp
                    model.pending_finishes.append(e)
                else:
                    e.finish = prior
            else:
                if wp == zone.start:
                    zone.wp = wp
                    model.pending_epochs.append(obj)
                else:
                    zone.epochs.remove(obj)
        elif kind == "flush":
            if not any(l.startswith("flush failed") for l in lines):
                model.flushed()

    def run_boot(self, mode, kill_no):
        """One boot: verify the prev disk if any, then (work mode) the workload
        until the kill. Returns (reasons, stats)."""
        args = self.args
        self.boot_no += 1
        prev = self.prev if self.prev_facts is not None else None
        boot = Boot(args, self.ctx["qemu"], self.ctx["kernel"], self.ctx["initrd"], self.dir, self.boot_no,
                    self.img if mode == "work" else None, prev, mode)
        reasons, stats = [], {"groups": 0, "acked": 0, "flushes": 0, "boot": None, "ready": None, "verify": None,
                              "delay": 0.0, "notes": []}
        got, err = read_verify(boot, boot.t0 + args.boot_timeout)
        stats["ready"] = time.monotonic() - boot.t0
        if "disks" in got["times"]:
            stats["boot"] = got["times"]["disks"] - boot.t0
        if "verified" in got["times"]:
            stats["verify"] = got["times"]["verified"] - got["times"]["disks"]
        if err:
            boot.kill()
            return [("boot failed", f"boot {boot.dir}: {err}")], stats, None
        if prev is not None:
            if got["devcheck_rc"] != self.prev_facts["check_rc"]:
                first = next((l for l in got["devcheck"] if l.strip()), "")
                stats["notes"].append(f"zio check on the block device exit {got['devcheck_rc']}, on the "
                                      f"file {self.prev_facts['check_rc']}: {first.strip()}")
            diffs = compare_fresh(self.prev_facts, got)
            if diffs:
                reasons.append(("fresh VM disagrees", f"kill {self.prev_kill}: " + "; ".join(diffs)))
            self.prev_facts = None
        if mode == "verify":
            boot.wait(30)
            return reasons, stats, None
        model = Model(args.zones, args.zone_size, self.state)
        delay = self.rng.uniform(0, args.max_delay)
        stats["delay"] = delay
        deadline = time.monotonic() + delay
        sentinel = None
        while True:
            text, what = self.group(model)
            boot.send(text + "length\n")
            obj = self.sent(model, what)
            stats["groups"] += 1
            lines, done = [], False
            while True:
                line = boot.line(deadline)
                if line is None:
                    break
                if sentinel is None and re.fullmatch(r"[0-9.]+ [KMGTPE]?i?B", line):
                    sentinel = line
                if line == sentinel:
                    done = True
                    break
                lines.append(line)
            if not done:
                break
            stats["acked"] += 1
            if what[0] == "flush":
                stats["flushes"] += 1
            self.acked(model, what, obj, lines)
        boot.kill()
        return reasons, stats, model

    def judge(self, model):
        reasons, state, facts = host_check(self.args, self.img)
        if state is not None and model is not None:
            for zone, (wp, cond, data) in zip(model.zones, state):
                why = []
                for i, e in reversed(zone.candidates()):
                    r = check_epoch(zone, e, wp, data)
                    if r is None:
                        why = []
                        break
                    why.append((i, r))
                if why:
                    kind = why[0][1][0]
                    text = f"zone {zone.z} (cond {cond}): {why[0][1][1]}"
                    older_zeros = [r for _, r in why[1:] if "found [0])" in r[1]]
                    if older_zeros:
                        cause = "a reset's discard reached the disk before its record"
                    elif "found [0" in why[0][1][1] or "above the written data" in why[0][1][1]:
                        cause = "a record reached the disk before its data"
                    else:
                        cause = None
                    if cause:
                        text += f" => {cause}"
                        with self.ctx["lock"]:
                            self.causes[cause] = self.causes.get(cause, 0) + 1
                    if len(why) > 1:
                        text += f" [and {len(why) - 1} older epoch(s) ruled out: " + "; ".join(
                            r[1] for _, r in why[1:]) + "]"
                    reasons.append((kind, text))
        return reasons, state, facts

    def run(self, kills, report):
        self.fresh_image()
        for k in kills:
            reasons, stats, model = self.run_boot("work", k)
            if model is not None:
                more, state, facts = self.judge(model)
                reasons += more
            else:
                state, facts = None, None
            if facts is not None and (k % self.args.verify_every == 0 or k == kills[-1]):
                shutil.copyfile(self.img, self.prev)
                self.prev_facts, self.prev_kill = facts, k
            bad = [r for r in reasons if r[0] != "fresh VM disagrees"]
            if bad or state is None:
                self.fresh_image()
            else:
                self.state = state
            report(k, reasons, stats)
        if self.prev_facts is not None:
            reasons, stats, _ = self.run_boot("verify", kills[-1])
            report(None, reasons, stats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2, help="VMs at once (each its own image)")
    ap.add_argument("--max-delay", type=float, default=4.0,
                    help="kill at a random moment 0..SECS after the workload starts")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--zones", type=int, default=8)
    ap.add_argument("--zone-size", type=int, default=4 << 20)
    ap.add_argument("--memory", default="256M")
    ap.add_argument("--verify-every", type=int, default=1,
                    help="reopen every Nth kill's image in a fresh VM (the next boot does it)")
    ap.add_argument("--guest-nocache", action="store_true",
                    help="zio -n (O_DIRECT) in the guest instead of buffered writes through its page cache")
    ap.add_argument("--qemu-cache", default="none", help="the virtio drive's cache= (none or directsync)")
    ap.add_argument("--dirty", default="5:10",
                    help="guest vm.dirty_writeback_centisecs:dirty_expire_centisecs")
    ap.add_argument("--no-pvh", action="store_true", help="boot the compressed kernel as it is (slow under TCG)")
    ap.add_argument("--boot-timeout", type=float, default=120)
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (images, logs)")
    ap.add_argument("--zio", default=os.path.join(ROOT, "target", "release", "zio"))
    args = ap.parse_args()
    args.zio = os.path.abspath(args.zio)
    if not os.access(args.zio, os.X_OK):
        sys.exit(f"power-loss: no zio at {args.zio} (cargo build --release)")
    qemu, kernel, modules = machine()
    work = args.keep or tempfile.mkdtemp(prefix="zio-power-loss-")
    os.makedirs(work, exist_ok=True)
    t_start = time.monotonic()
    initrd = os.path.join(work, "initrd")
    build_initrd(args.zio, modules, initrd)
    if not args.no_pvh:
        kernel = pvh_kernel(kernel, os.path.join(work, "vmlinux")) or kernel
    ctx = {"qemu": qemu, "kernel": kernel, "initrd": initrd, "work": work, "causes": {},
           "lock": threading.Lock()}
    counts = {k: 0 for k in KINDS}
    totals = {"kills": 0, "violations": 0, "groups sent": 0, "groups acknowledged": 0, "flushes completed": 0}
    boots, delays, verifies, readies, notes = [], [], [], [], {}
    lock = threading.Lock()

    def report(k, reasons, stats):
        with lock:
            if k is not None:
                totals["kills"] += 1
                totals["groups sent"] += stats["groups"]
                totals["groups acknowledged"] += stats["acked"]
                totals["flushes completed"] += stats["flushes"]
                delays.append(stats["delay"])
            if stats["boot"] is not None:
                boots.append(stats["boot"])
            if stats["verify"] is not None:
                verifies.append(stats["verify"])
            if stats["ready"] is not None:
                readies.append(stats["ready"])
            for n in stats["notes"]:
                notes[n.split(":")[0]] = notes.get(n.split(":")[0], 0) + 1
                if notes[n.split(":")[0]] == 1:
                    print(f"note (not counted as a violation, shown once): {n}", flush=True)
            kinds = sorted({r[0] for r in reasons})
            for kind in kinds:
                counts[kind] += 1
            if any(kind != "boot failed" for kind in kinds):
                totals["violations"] += 1
            label = f"kill {k}" if k is not None else "final verify"
            for kind, text in reasons:
                print(f"{label}: {kind}: {text}", flush=True)
            if not reasons and os.environ.get("PL_VERBOSE"):
                print(f"{label}: ok ({stats['acked']}/{stats['groups']} groups, {stats['flushes']} flushes, "
                      f"delay {stats['delay']:.2f} s)", flush=True)

    jobs = max(1, min(args.jobs, args.kills))
    workers = [Worker(args, ctx, j, random.Random(args.seed * 1000 + j)) for j in range(jobs)]
    shares = [list(range(j + 1, args.kills + 1, jobs)) for j in range(jobs)]
    threads = [threading.Thread(target=w.run, args=(s, report)) for w, s in zip(workers, shares) if s]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t_start
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    summary = [f"{k}: {v}" for k, v in totals.items()] + [f"{k}: {v}" for k, v in counts.items()]
    def mean_max(name, xs):
        if xs:
            summary.append(f"{name}: {sum(xs) / len(xs):.2f} s mean, {max(xs):.2f} s max")
    mean_max("boot", boots)
    mean_max("fresh-VM reopen", verifies)
    mean_max("start to workload", readies)
    mean_max("workload until kill", delays)
    for n, c in ctx["causes"].items():
        summary.append(f"zones where {n}: {c}")
    for n, c in notes.items():
        summary.append(f"{n}: {c}")
    summary.append(f"elapsed: {elapsed:.1f} s")
    print(", ".join(summary))
    return 1 if totals["violations"] or counts["boot failed"] or totals["kills"] < args.kills else 0


if __name__ == "__main__":
    sys.exit(main())
