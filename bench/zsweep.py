#!/usr/bin/env python3
"""Shared code of bench/kill-sweep.py and bench/error-sweep.py: the
scenarios, the strace plumbing, the parser of zio's output and the checks
of a `zoned` image against what zio acknowledged.

A scenario is a small list of operations run as ONE zio process (with -c,
or as a stdin script). Every operation is followed by `zrp 0 NZ`, a report
of all zones: zio writes each command's output before it starts the next,
so the output read back tells which operations completed, what they
printed and the zone state after each of them.

Kill points and error points are the write-type system calls the zio
process makes on the image (pwrite64, pwritev, pwritev2, write, fallocate,
ftruncate, fsync, fdatasync, sync_file_range, rename*): a dry run under
`strace -y` lists them (a `write` to stdout is counted, so the Nth `write`
is targeted correctly, but never chosen as a target), then each one is hit
in its own run with `strace -e inject=SYSCALL:signal=KILL:when=N` (or
`error=EIO`/`error=ENOSPC`). stdlib only.
"""

import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ZONE = 1 << 20
NZ = 8
SIZE = NZ * ZONE
SECTOR = 512
REQ = 255 * SECTOR  # the engine splits writes into 255-sector requests
WRITE_SYSCALLS = ["pwrite64", "pwritev", "pwritev2", "write", "fallocate", "ftruncate",
                  "fsync", "fdatasync", "sync_file_range", "rename", "renameat", "renameat2"]
FILL = b"\x00\xff"  # what unwritten bytes of a finished zone may hold

M = ZONE


# --- scenarios --------------------------------------------------------------
#
# An operation is a tuple: ("write", off, len) and ("zap", zone_off, len)
# get their own pattern byte; ("zo"|"zc"|"zf"|"zrs", off, len); ("flush",).
# Keys: opts (create options), ops, stdin (feed as a script), setup (ops run
# first in an unkilled process), kind: "zio" (default), "power_cycle",
# "repair-truncate", "repair-record", "create".

def _w(off, n):
    return ("write", off, n)


SCENARIOS = [
    dict(name="write-one", ops=[_w(M, 4096)]),
    dict(name="write-several", ops=[_w(M, 4096), _w(M + 4096, 65536), _w(2 * M, 8192),
                                    _w(0, 4096), _w(0, 4096), _w(M + 69632, 512)]),
    dict(name="write-several-stdin", stdin=True,
         ops=[_w(M, 4096), _w(M + 4096, 65536), _w(2 * M, 8192), _w(0, 8192), _w(4096, 4096)]),
    dict(name="write-crossing", ops=[_w(M, M - 65536), _w(2 * M - 65536, 131072), _w(2 * M + 65536, 4096)]),
    dict(name="write-big-split", ops=[_w(M, 524288), _w(M + 524288, 307200), _w(0, 262144)]),
    dict(name="zone-append", ops=[("zap", M, 4096), ("zap", M, 65536), ("zap", 2 * M, 512),
                                  ("zap", 2 * M, 204800), ("zap", M, 4096)]),
    dict(name="implicit-close-open1", opts="zone_max_open=1",
         ops=[_w(M, 4096), _w(2 * M, 4096), _w(3 * M, 4096), ("zo", M, M), _w(M + 4096, 4096),
              _w(2 * M + 4096, 4096)]),
    dict(name="implicit-close-open1-stdin", opts="zone_max_open=1", stdin=True,
         ops=[_w(2 * M, 4096), ("zo", M, M), _w(M, 4096), _w(3 * M, 4096)]),
    dict(name="implicit-close-open2-active3", opts="zone_max_open=2,zone_max_active=3",
         ops=[_w(M, 4096), _w(2 * M, 4096), _w(3 * M, 4096), _w(4 * M, 4096), ("zc", M, M),
              ("zf", M, M), _w(4 * M, 4096), ("zo", 5 * M, M), _w(2 * M + 4096, 4096)]),
    dict(name="explicit-one", ops=[("zo", M, M), _w(M, 4096), ("zc", M, M), ("zo", M, M),
                                   ("zf", M, M), ("zrs", M, M), _w(M, 8192)]),
    dict(name="explicit-all", ops=[_w(M, 4096), _w(3 * M, 4096), ("zo", M, 7 * M), ("zc", M, 7 * M),
                                   ("zf", M, 7 * M), ("zrs", M, 7 * M), _w(M, 4096)]),
    dict(name="explicit-all-limits", opts="zone_max_open=2,zone_max_active=3",
         ops=[_w(M, 4096), _w(3 * M, 4096), ("zo", 5 * M, M), ("zc", M, 7 * M),
              ("zf", M, 7 * M), ("zrs", M, 7 * M), _w(2 * M, 4096)]),
    dict(name="reset-then-finish", ops=[_w(M, 65536), _w(2 * M, 4096), ("zrs", M, M), ("zf", M, M),
                                        ("zrs", 2 * M, M), ("zf", 2 * M, M), _w(3 * M, 4096),
                                        _w(4 * M, 4096), ("zrs", M, 7 * M), ("zf", M, 7 * M)]),
    dict(name="flush", ops=[_w(M, 4096), ("flush",), _w(M + 4096, 4096), ("flush",), ("zrs", M, M),
                            ("flush",), _w(M, 4096)]),
    dict(name="power-cycle", kind="power_cycle",
         setup=[("zo", M, M), _w(2 * M, 4096), _w(3 * M, 8192), ("zo", 4 * M, M), _w(4 * M, 4096)],
         ops=[_w(3 * M + 8192, 4096)]),
    dict(name="repair-truncate", kind="repair-truncate", setup=[_w(M, 8192), _w(0, 4096), ("flush",)], ops=[]),
    dict(name="repair-record", kind="repair-record", setup=[_w(M, 8192), _w(2 * M, 4096), ("flush",)], ops=[]),
    dict(name="create", kind="create", ops=[]),
]


def by_names(names):
    if not names:
        return SCENARIOS
    out = [s for s in SCENARIOS if s["name"] in names]
    missing = set(names) - {s["name"] for s in out}
    if missing:
        sys.exit(f"unknown scenario(s): {', '.join(sorted(missing))}")
    return out


def create_opts(sc):
    o = "zone_size=1M,zone_nr_conv=1"
    if sc.get("opts"):
        o += "," + sc["opts"]
    return o


class Op:
    def __init__(self, t, pattern):
        self.kind = t[0]
        self.off = t[1] if len(t) > 1 else 0
        self.len = t[2] if len(t) > 2 else 0
        self.pattern = pattern

    def cmd(self):
        if self.kind == "write":
            return f"write -P {self.pattern:#x} {self.off} {self.len}"
        if self.kind == "zap":
            return f"zap -p -P {self.pattern:#x} {self.off} {self.len}"
        if self.kind == "flush":
            return "flush"
        return f"{self.kind} {self.off} {self.len}"

    def zones(self):
        if self.kind == "flush":
            return []
        return list(range(self.off // ZONE, min(NZ, (self.off + max(self.len, 1) - 1) // ZONE + 1)))

    def __str__(self):
        return self.cmd()


def make_ops(tuples, first_pattern=1):
    ops, p = [], first_pattern
    for t in tuples:
        pat = 0
        if t[0] in ("write", "zap"):
            pat = p
            p += 1
            assert p < 0xff
        ops.append(Op(t, pat))
    return ops, p


def commands(ops):
    out = []
    for op in ops:
        out += [op.cmd(), f"zrp 0 {NZ}"]
    return out


# --- output parsing -----------------------------------------------------------

ZRP = re.compile(r"^start: 0x([0-9a-f]+), len 0x[0-9a-f]+, cap 0x[0-9a-f]+, wptr 0x([0-9a-f]+), zcond:(\d+)")
WROTE = re.compile(r"^wrote (\d+)/\d+ bytes at offset (\d+)$")
ZAP = re.compile(r"^After zap done, the append sector is 0x([0-9a-f]+)$")


def parse_report(lines):
    st = []
    for l in lines:
        m = ZRP.match(l)
        if not m:
            return None
        st.append((int(m.group(2), 16) * SECTOR, int(m.group(3))))
    return st


class Step:
    """What the output says about one operation: done (its marker report
    came out, or it printed its own success line), failed (it printed a
    failure line), its own lines and the zone state after it."""

    def __init__(self, op):
        self.op = op
        self.lines = []
        self.done = False
        self.failed = False
        self.state = None
        self.zap_pos = None
        self.wrote = None


def parse_output(ops, text):
    """Returns (steps, n_done): one Step per op; steps[n_done:] did not
    complete (steps[n_done] may have been running)."""
    lines = text.split("\n")
    complete_text = text.endswith("\n")
    if not complete_text:
        lines = lines[:-1]  # a torn last line tells nothing
    elif lines and lines[-1] == "":
        lines = lines[:-1]
    steps = [Step(op) for op in ops]
    i = 0
    n_done = 0
    for s in steps:
        # the op's own lines: everything up to the report
        while i < len(lines) and not lines[i].startswith("start: "):
            s.lines.append(lines[i])
            i += 1
        for l in s.lines:
            if " failed: " in l or l.startswith("zio: "):
                s.failed = True
            m = WROTE.match(l)
            if m:
                s.wrote = (int(m.group(2)), int(m.group(1)))
            m = ZAP.match(l)
            if m:
                s.zap_pos = int(m.group(1), 16) * SECTOR
        if s.wrote or s.zap_pos is not None or s.failed:
            s.done = True  # it printed its result, so it finished
        if i + NZ <= len(lines):
            st = parse_report(lines[i:i + NZ])
            if st is not None:
                s.state = st
                s.done = True
                i += NZ
                n_done += 1
                continue
        break
    return steps, n_done


# --- processes -------------------------------------------------------------------

class Env:
    def __init__(self, zio, tmp):
        self.zio = zio
        self.tmp = tmp
        self.strace = shutil.which("strace")

    def run(self, args, stdin=None, strace=None, timeout=60):
        """Runs zio ARGS (under strace with the given -e options); returns
        (returncode, stdout, stderr). returncode -9 / 137: killed."""
        argv = [self.zio] + args
        if strace:
            argv = [self.strace, "-f", "-qq", "-o", "/dev/null"] + strace + argv
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                           errors="replace")
        return r.returncode, r.stdout, r.stderr

    def trace(self, args, stdin=None):
        """A dry run under strace -y: the write-type calls, in order, as
        (syscall, nth-of-its-name, touches_image, stdout_text_before)."""
        tf = os.path.join(self.tmp, "trace")
        argv = [self.strace, "-f", "-y", "-xx", "-s", "65536", "-o", tf,
                "-e", "trace=" + ",".join(WRITE_SYSCALLS), self.zio] + args
        subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
        calls, counts, out = [], {}, []
        pids = set()
        line_re = re.compile(r"^(\d+)\s+(\w+)\((.*)$")
        for l in open(tf, errors="replace"):
            m = line_re.match(l)
            if not m:
                continue
            pid, name, rest = m.groups()
            if name not in WRITE_SYSCALLS:
                continue
            pids.add(pid)
            counts[name] = counts.get(name, 0) + 1
            fdm = re.match(r"(-?\d+)<((?:\\x[0-9a-f]{2})*)>", rest)
            path = unhex(fdm.group(2)).decode(errors="replace") if fdm else ""
            img = path.endswith(".img") or (name.startswith("rename") and ".img" in unhex(
                "".join(re.findall(r"\\x[0-9a-f]{2}", rest))).decode(errors="replace"))
            calls.append((name, counts[name], img, "".join(out)))
            if name == "write" and fdm and fdm.group(1) == "1":
                s = re.match(r'\d+<[^>]*>, "((?:\\x[0-9a-f]{2})*)"', rest)
                if s:
                    out.append(unhex(s.group(1)).decode(errors="replace"))
        if len(pids) > 1:
            print(f"warning: the dry run has {len(pids)} threads; strace's when= counts per thread",
                  file=sys.stderr)
        return calls


def unhex(s):
    return bytes.fromhex(s.replace("\\x", ""))


def header_data_offset(img):
    with open(img, "rb") as f:
        return struct.unpack_from("<Q", f.read(4096), 80)[0]


def read_raw(img, off, n):
    with open(img, "rb") as f:
        f.seek(header_data_offset(img) + off)
        d = f.read(n)
    return d + bytes(n - len(d))


def report(env, img, extra=None):
    args = ["-r", "-U", "-c", f"zrp 0 {NZ}", img] if extra is None else extra
    rc, out, err = env.run(args)
    st = parse_report(out.strip("\n").split("\n")) if rc == 0 else None
    return rc, st, (out + err).strip().replace("\n", " | ")


def check_clean(env, img):
    rc, out, err = env.run(["check", img])
    return rc, (out + err).strip().replace("\n", " | ")


# --- the model of what must be in the image ------------------------------------

class Model:
    """Per zone: the layers of data zio acknowledged (lo, hi, allowed bytes),
    in order; the state (wp, cond) per the last report; the patterns that a
    reset made dead; the end of data covered by a completed flush."""

    def __init__(self, conv=1):
        self.conv = conv
        self.layers = [[] for _ in range(NZ)]
        self.state = [(z * ZONE if z >= conv else (z + 1) * ZONE, 1 if z >= conv else 0) for z in range(NZ)]
        self.dead = [set() for _ in range(NZ)]
        self.reset_seen = [False] * NZ
        self.pending = [0] * NZ  # acknowledged data end since the last flush
        self.flushed = [0] * NZ
        self.uncertain = set()  # zones whose content the harness cannot know (repair)

    def copy(self):
        m = Model(self.conv)
        m.layers = [list(l) for l in self.layers]
        m.state = list(self.state)
        m.dead = [set(d) for d in self.dead]
        m.reset_seen = list(self.reset_seen)
        m.pending = list(self.pending)
        m.flushed = list(self.flushed)
        m.uncertain = set(self.uncertain)
        return m

    def add(self, lo, hi, allowed):
        while lo < hi:
            z = lo // ZONE
            end = min(hi, (z + 1) * ZONE)
            self.layers[z].append((lo, end, allowed))
            lo = end

    def reset_zone(self, z):
        for lo, hi, a in self.layers[z]:
            self.dead[z] |= set(a) - set(FILL)
        self.layers[z] = []
        self.reset_seen[z] = True
        self.pending[z] = 0
        self.flushed[z] = 0

    def apply(self, step):
        """Applies a completed step (its report is known)."""
        op, before = step.op, list(self.state)
        after = step.state
        if op.kind == "write" or op.kind == "zap":
            pat = bytes([op.pattern])
            if op.kind == "write" and step.wrote:
                lo, n = step.wrote
                self.add(lo, lo + n, pat)
                for z in op.zones():
                    if z >= self.conv:
                        self.pending[z] = max(self.pending[z], min(lo + n, (z + 1) * ZONE))
            elif op.kind == "zap" and step.zap_pos is not None:
                self.add(step.zap_pos, step.zap_pos + op.len, pat)
                z = step.zap_pos // ZONE
                self.pending[z] = max(self.pending[z], step.zap_pos + op.len)
            elif after is not None:
                # failed: whatever its moved write pointers claim is its data
                for z in range(self.conv, NZ):
                    if after[z][0] > before[z][0] and before[z][1] != 14:
                        self.add(before[z][0], after[z][0], pat)
                if op.kind == "write":
                    for z in op.zones():
                        if z < self.conv:  # partial overwrite: old or new
                            lo, hi = max(op.off, z * ZONE), min(op.off + op.len, (z + 1) * ZONE)
                            self.union(lo, hi, pat)
        elif op.kind == "zf" and after is not None:
            for z in op.zones():
                if z >= self.conv and after[z][1] == 14 and before[z][0] < after[z][0]:
                    self.add(before[z][0], after[z][0], FILL)
        elif op.kind == "zrs" and after is not None:
            for z in op.zones():
                if z >= self.conv and after[z][0] == z * ZONE:
                    self.reset_zone(z)
        elif op.kind == "flush" and not step.failed:
            for z in range(NZ):
                self.flushed[z] = max(self.flushed[z], self.pending[z])
        if after is not None:
            self.state = after

    def union(self, lo, hi, extra):
        """Bytes in [lo, hi) may also hold `extra` (a possibly landed write)."""
        for z in range(lo // ZONE, (hi - 1) // ZONE + 1):
            a, b = max(lo, z * ZONE), min(hi, (z + 1) * ZONE)
            exp = self.paint(z)
            for rlo, rhi, allowed in runs(exp, z, a, b, self):
                self.layers[z].append((rlo, rhi, bytes(sorted(set(allowed) | set(extra)))))

    def paint(self, z):
        return paint(self.layers[z], z, self.conv)


def paint(layers, z, conv):
    """The allowed bytes per byte of zone z as (bytearray of ids, id->bytes)."""
    ids = {b"": 0}
    table = [b"\x00" if z < conv else b""]
    exp = bytearray(ZONE)
    for lo, hi, allowed in layers:
        k = ids.get(allowed)
        if k is None:
            k = ids[allowed] = len(table)
            table.append(allowed)
            assert k < 256
        exp[lo - z * ZONE:hi - z * ZONE] = bytes([k]) * (hi - lo)
    return exp, table


RUN = re.compile(rb"(.)\1*", re.S)


def runs(painted, z, a, b, _model=None):
    exp, table = painted
    base = z * ZONE
    for m in RUN.finditer(exp, a - base, b - base):
        yield base + m.start(), base + m.end(), table[exp[m.start()]]


def check_data(img, model, state, inflight, violations, where, dead_tail=True):
    """Every byte below each zone's write pointer holds what was
    acknowledged (or what the in-flight op may have written); no dead
    (pre-reset) byte at or above the wp."""
    for z in range(NZ):
        wp, cond = state[z]
        if z in model.uncertain:
            layers = [(z * ZONE, (z + 1) * ZONE, FILL)]
        else:
            layers = list(model.layers[z])
        if inflight is not None and z in inflight.zones() and inflight.kind in ("write", "zap"):
            pat = bytes([inflight.pattern])
            if inflight.kind == "write":
                lo, hi = max(inflight.off, z * ZONE), min(inflight.off + inflight.len, (z + 1) * ZONE)
            else:
                lo, hi = model.state[z][0], (z + 1) * ZONE
            painted = paint(layers, z, model.conv)
            layers += [(a, b, bytes(sorted(set(al) | set(pat)))) for a, b, al in runs(painted, z, lo, hi)]
        if inflight is not None and z in inflight.zones() and inflight.kind == "zf" and cond == 14:
            layers.append((model.state[z][0], (z + 1) * ZONE, FILL))
        top = wp if z >= model.conv else (z + 1) * ZONE
        if cond == 14 and z >= model.conv:
            top = (z + 1) * ZONE
        data = read_raw(img, z * ZONE, ZONE)
        painted = paint(layers, z, model.conv)
        for a, b, allowed in runs(painted, z, z * ZONE, top):
            chunk = data[a - z * ZONE:b - z * ZONE]
            bad = chunk.translate(None, allowed)
            if bad:
                pos = a + next(i for i, c in enumerate(chunk) if c not in allowed)
                what = "holds no data" if not allowed else f"should be {allowed.hex()}"
                violations.append(f"{where}: zone {z} (wp {wp:#x}, cond {cond}): byte {pos:#x} reads "
                                  f"{data[pos - z * ZONE]:#04x}, {what}")
                break
        dead = model.dead[z]
        if dead_tail and dead and z >= model.conv:
            tail = data[top - z * ZONE:]
            found = sorted(set(tail) & dead)
            if found:
                pos = top + next(i for i, c in enumerate(tail) if c in dead)
                violations.append(f"{where}: zone {z}: pre-reset byte {data[pos - z * ZONE]:#04x} at {pos:#x} "
                                  f"(at or above wp {wp:#x}) would come back on finish")



def finish_dead(env, img, model, st, v, where, info):
    """Finishes every zone a reset emptied, in a fresh process, and reads
    it: no pre-reset byte may show."""
    for z in range(model.conv, NZ):
        if model.dead[z] and st[z][1] != 14:
            rc, o, e = env.run(["-c", f"zf {z * ZONE} {ZONE}", img])
            if rc != 0:
                info["zones a reset emptied that zf could not finish"] += 1
                tail = read_raw(img, z * ZONE, ZONE)[st[z][0] - z * ZONE:]
                found = sorted(set(tail) & model.dead[z])
                if found:
                    v.append(f"{where}: zone {z}: pre-reset bytes {', '.join(hex(b) for b in found)} "
                             f"at or above the wp {st[z][0]:#x} (would come back on a finish)")
                continue
            tail = read_raw(img, z * ZONE, ZONE)
            found = sorted(set(tail) & model.dead[z])
            if found:
                v.append(f"{where}: zone {z}: after reset, kill, zf the pre-reset bytes "
                         f"{', '.join(hex(b) for b in found)} read back")


def image_size(sc):
    return SIZE


def make_image(env, img, sc):
    if os.path.exists(img):
        os.unlink(img)
    rc, out, err = env.run(["create", "-f", "zoned", "-o", create_opts(sc), img, str(image_size(sc))])
    if rc != 0:
        sys.exit(f"zio create failed: {out}{err}")


def prepare(env, img, sc):
    """Creates the image and runs the scenario's setup; returns the model
    after the setup and the first free pattern byte."""
    model = Model()
    pat = 1
    if sc.get("kind") == "create":
        return model, pat
    make_image(env, img, sc)
    if sc.get("setup"):
        ops, pat = make_ops(sc["setup"], pat)
        rc, out, err = env.run(sum([["-c", c] for c in commands(ops)], []) + [img])
        steps, n = parse_output(ops, out)
        if n != len(ops):
            sys.exit(f"{sc['name']}: the setup did not complete: {out}{err}")
        for s in steps:
            model.apply(s)
    kind = sc.get("kind", "zio")
    if kind == "repair-truncate":
        os.truncate(img, header_data_offset(img) + 2 * ZONE)
    elif kind == "repair-record":
        with open(img, "r+b") as f:  # corrupt the record of zone 5 (empty)
            f.seek(4096 + 6 * 32)
            f.write(b"\x5a")
        model.uncertain.add(5)
    return model, pat


def zio_args(sc, img, ops):
    """The argv (after `zio`) and stdin of the scenario's process."""
    kind = sc.get("kind", "zio")
    if kind == "create":
        return ["create", "-f", "zoned", "-o", create_opts(sc), img, str(image_size(sc))], None
    if kind.startswith("repair"):
        return ["check", "--repair", img], None
    target = [img]
    if kind == "power_cycle":
        target = ["--image-opts", f"driver=zoned,power_cycle=on,file.filename={img}"]
    cmds = [f"zrp 0 {NZ}"] + commands(ops) if kind == "power_cycle" else commands(ops)
    if sc.get("stdin"):
        return target, "\n".join(cmds) + "\n"
    return sum([["-c", c] for c in cmds], []) + target, None


def split_power_cycle(sc, ops, out):
    """A power-cycle run starts with a report of the state it opened: strip
    it, returning (state or None, rest)."""
    if sc.get("kind") != "power_cycle":
        return None, out
    lines = out.split("\n")
    if len(lines) > NZ and parse_report(lines[:NZ]):
        return parse_report(lines[:NZ]), "\n".join(lines[NZ:])
    return None, ""


def main(doc, prog, what, sweep, add_args=None, before=None):
    """The command line both sweeps share: --scenario/--skip/--list/--quiet/
    --zio plus `add_args(parser)`; runs `sweep(env, tmp, scenario, args)`
    (returns (points, violations)) over the chosen scenarios after
    `before(env, tmp)`, prints the counts and returns the exit status."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", default=[])
    ap.add_argument("--skip", action="append", default=[])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="counts only, no violation lines")
    ap.add_argument("--zio", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "zio"))
    if add_args:
        add_args(ap)
    a = ap.parse_args()
    if a.list:
        print("\n".join(s["name"] for s in SCENARIOS))
        return 0
    if not shutil.which("strace"):
        print(f"{prog}: strace not found", file=sys.stderr)
        return 77
    t0 = time.monotonic()
    total, bad = 0, []
    with tempfile.TemporaryDirectory() as tmp:
        env = Env(os.path.abspath(a.zio), tmp)
        if before:
            before(env, tmp)
        for sc in by_names(a.scenario):
            if sc["name"] in a.skip:
                continue
            n, v = sweep(env, tmp, sc, a)
            total += n
            bad += v
    print(f"total: {what}: {total}, violations: {len(bad)}")
    print(f"elapsed: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 1 if bad else 0
