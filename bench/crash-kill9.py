#!/usr/bin/env python3
"""kill -9 a zio at random moments while it writes, appends, finishes,
resets and flushes a `zoned` image, then check the image after each kill:

- every reopen succeeds (`zio -c 'zrp 0 N'` exits 0);
- no zone's write pointer claims bytes that were not written: every write
  has its own pattern byte, and every byte below the wp holds the pattern of
  the last acknowledged write that covered it (or, from an earlier run, what
  the previous check found there; or the pattern of a write that was in
  flight at the kill); a finished zone may end in unwritten (0x00) bytes;
- no write pointer falls behind data that was acknowledged and then
  covered by a completed `flush` (unless that zone was reset later).

Every command zio runs prints a line (writes their report, appends their
position with -p, zone operations a report of the zone, a flush is followed
by `length`), and zio writes each command's output before starting the
next, so the output read back after the kill is the list of operations that
completed, in order.

    bench/crash-kill9.py [--kills 1000] [--seconds 900] [--seed 1]
                         [--max-open 2 --max-active 3]

Prints its counts; exits 1 if any check failed.
"""

import argparse
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time

ZONES = 8
ZONE = 4 << 20
SECTOR = 512
HEADER = 4096


class Patterns:
    """A new pattern byte per write (1..254, wrapping), so stale data shows."""

    def __init__(self):
        self.n = 0

    def next(self):
        self.n += 1
        return (self.n - 1) % 254 + 1


PATTERNS = Patterns()


def make_script(rng, wps, n, limits=False):
    """A random command script; `wps` is the last known write pointers,
    used only to make most writes land (misses are fine: they fail)."""
    lines = []
    for _ in range(n):
        z = rng.randrange(ZONES)
        start = z * ZONE
        r = rng.random()
        if wps[z] >= start + ZONE and r < 0.70:
            r = 0.80  # a full zone: reset it instead of writing past its end
        if r < 0.45:
            length = rng.choice([512, 4096, 65536, 262144])
            lines.append(f"write -P {PATTERNS.next()} {wps[z]} {length}")
            wps[z] = min(wps[z] + length, start + ZONE)
        elif r < 0.70:
            length = rng.choice([512, 4096, 32768])
            lines.append(f"zap -p -P {PATTERNS.next()} {start} {length}")
            wps[z] = min(wps[z] + length, start + ZONE)
        elif r < 0.78:
            lines.append(f"zf {start} {ZONE}")
            lines.append(f"zrp {start} 1")
            wps[z] = start + ZONE
        elif limits and r < 0.83:
            lines.append(f"zc {start} {ZONE}")  # frees an open zone under the limits
            lines.append(f"zrp {start} 1")
        elif r < 0.88:
            lines.append(f"zrs {start} {ZONE}")
            lines.append(f"zrp {start} 1")
            wps[z] = start
        else:
            lines.append("flush")
            lines.append("length")
    return lines


WROTE = re.compile(r"^wrote (\d+)/\d+ bytes at offset (\d+)$")
ZAP = re.compile(r"^After zap done, the append sector is 0x([0-9a-f]+)$")
ZRP = re.compile(r"^start: 0x([0-9a-f]+), len 0x([0-9a-f]+), cap 0x[0-9a-f]+, wptr 0x([0-9a-f]+), zcond:(\d+)")


def acknowledged(script, output, expect):
    """Replays the output against the script: per zone, the end of the data
    known to be written and flushed (a reset clears it). Also returns the
    zones a reset may have hit unacknowledged: zio runs one command at a
    time and writes its output before the next, so only the commands up to
    the next one that prints can have run without their output. `expect`
    (per zone a bytearray of the expected bytes, None where unknown) is
    brought up to date with the acknowledged writes, and the in-flight
    writes are returned as (lo, hi, pattern)."""
    flushed = [None] * ZONES  # end of flushed data, per zone
    pending = [None] * ZONES  # end of acknowledged data since the last flush
    all_lines = output.splitlines()
    if not output.endswith("\n"):
        all_lines = all_lines[:-1]  # a torn last line tells nothing
    lines = iter(all_lines)
    pos_ = [0]

    def nxt(it=None, default=None):
        if pos_[0] >= len(all_lines):
            return default
        pos_[0] += 1
        return all_lines[pos_[0] - 1]
    maybe_reset = set()
    inflight = []
    for i, cmd in enumerate(script):
        if not cmd.startswith(("write", "zap", "zrp", "length")):
            # a zone operation or flush prints only when it fails
            if pos_[0] < len(all_lines) and " failed: " in all_lines[pos_[0]]:
                pos_[0] += 1
            continue
        if True:
            line = nxt()
            if line is None:
                for later in script[i - 1 : i + 1]:
                    if later.startswith("zrs"):
                        maybe_reset.add(int(later.split()[1]) // ZONE)
                    if later.startswith(("write", "zap")):
                        w = later.split()
                        pat, off, n = int(w[-3]), int(w[-2]), int(w[-1])
                        if later.startswith("zap"):  # lands anywhere in the zone
                            off, n = off, ZONE
                        inflight.append((off, min(off + n, (off // ZONE + 1) * ZONE), pat))
                break
            if line.startswith("wrote"):
                nxt()  # the timing line
                m = WROTE.match(line)
                end = int(m.group(2)) + int(m.group(1))
                for z in range(int(m.group(2)) // ZONE, (end - 1) // ZONE + 1):
                    pending[z] = max(pending[z] or 0, min(end, (z + 1) * ZONE))
                paint(expect, int(m.group(2)), end, int(cmd.split()[2]))
            elif line.startswith("After zap"):
                pos = int(ZAP.match(line).group(1), 16) * SECTOR
                length = int(cmd.split()[-1])
                z = pos // ZONE
                pending[z] = max(pending[z] or 0, pos + length)
                paint(expect, pos, pos + length, int(cmd.split()[3]))
            elif line.startswith("start:"):
                m = ZRP.match(line)
                z = int(m.group(1), 16) * SECTOR // ZONE
                wp = int(m.group(3), 16) * SECTOR
                if wp == z * ZONE:  # the reset completed
                    pending[z] = None
                    flushed[z] = 0  # marks "reset after flush"
                    expect[z] = bytearray(ZONE)
                    known[z] = bytearray(ZONE)
                    hidden[z] = set()
            elif line.endswith("MiB"):  # `length` after a completed flush
                for z in range(ZONES):
                    if pending[z] is not None:
                        flushed[z] = max(flushed[z] or 0, pending[z])
                        pending[z] = None
            # failures ("write failed: ...") acknowledge nothing
    for z in maybe_reset:
        flushed[z] = None
    return flushed, maybe_reset, inflight


# known[z][i] is 1 where expect[z][i] is known (written and acknowledged, or
# found by a previous check)
known = [bytearray(ZONE) for _ in range(ZONES)]
# hidden[z]: patterns of writes in flight at an earlier kill that may sit
# above the wp (data down, record not) and show once the zone is finished
hidden = [set() for _ in range(ZONES)]


def paint(expect, lo, hi, pat):
    while lo < hi:  # a write may cross into the next zone
        z = lo // ZONE
        end = min(hi, (z + 1) * ZONE)
        a, b = lo - z * ZONE, end - z * ZONE
        expect[z][a:b] = bytes([pat]) * (b - a)
        known[z][a:b] = b"\x01" * (b - a)
        lo = end


def check(zio, img, flushed, counts, expect, maybe_reset, inflight):
    r = subprocess.run([zio, "-c", f"zrp 0 {ZONES}", img], capture_output=True, text=True)
    if r.returncode != 0:
        counts["reopen failures"] += 1
        print("reopen failed:", r.stdout, r.stderr, file=sys.stderr)
        return None
    zones = [ZRP.match(l) for l in r.stdout.splitlines()]
    wps, conds = [], []
    with open(img, "rb") as f:
        head = f.read(HEADER)
        data_offset = struct.unpack_from("<Q", head, 80)[0]
        for z, m in enumerate(zones):
            start = z * ZONE
            wp = int(m.group(3), 16) * SECTOR
            cond = int(m.group(4))
            wps.append(wp)
            conds.append(cond)
            if z in maybe_reset and wp == start:
                expect[z] = bytearray(ZONE)
                known[z] = bytearray(ZONE)
                hidden[z] = set()
            f.seek(data_offset + start)
            data = f.read(wp - start)
            data += bytes(wp - start - len(data))
            n = len(data)
            exp, kn = expect[z][:n], known[z][:n]
            bad = None
            if data != exp or kn.count(0):
                flight = bytearray(n)  # in-flight patterns allowed per byte
                for lo, hi, pat in inflight:
                    if lo // ZONE == z:
                        a, b = lo - start, min(hi - start, n)
                        if a < b:
                            flight[a:b] = bytes([pat]) * (b - a)
                unwritten_ok = cond == 14
                for i in range(n):
                    if kn[i] and data[i] == exp[i]:
                        continue
                    if flight[i] and data[i] == flight[i]:
                        continue
                    if not kn[i] and unwritten_ok and (data[i] == 0 or data[i] in hidden[z]):
                        continue
                    bad = i
                    break
            if bad is not None:
                counts["write pointers claiming unwritten bytes"] += 1
                want = f"{exp[bad]:#x}" if kn[bad] else "nothing (never acknowledged)"
                print(f"zone {z}: bytes below the write pointer {wp:#x} (cond {cond}) are not what was "
                      f"acknowledged: byte {start + bad:#x} is {data[bad]:#x}, want {want}", file=sys.stderr)
            if flushed[z] and wp < flushed[z]:
                counts["write pointers behind flushed data"] += 1
                print(f"zone {z}: write pointer {wp:#x} behind flushed data ending at {flushed[z]:#x}", file=sys.stderr)
            for lo, hi, pat in inflight:
                if lo // ZONE == z:
                    hidden[z].add(pat)
            # what is there now is the baseline of the next run
            expect[z] = bytearray(data) + bytearray(ZONE - n)
            known[z] = bytearray(b"\x01" * n) + bytearray(ZONE - n)
    return wps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=900)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-open", type=int, default=0, help="zone_max_open of the image (0: no limit)")
    ap.add_argument("--max-active", type=int, default=0, help="zone_max_active of the image (0: no limit)")
    ap.add_argument("--zio", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "zio"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    counts = {k: 0 for k in ["kills", "commands acknowledged", "reopen failures",
                             "write pointers claiming unwritten bytes", "write pointers behind flushed data"]}
    with tempfile.TemporaryDirectory() as tmp:
        img = os.path.join(tmp, "crash.img")
        opts = f"zone_size={ZONE},zone_max_open={args.max_open},zone_max_active={args.max_active}"
        subprocess.run([args.zio, "create", "-f", "zoned", "-o", opts, img, str(ZONES * ZONE)],
                       check=True, capture_output=True)
        wps = [z * ZONE for z in range(ZONES)]
        expect = [bytearray(ZONE) for _ in range(ZONES)]
        limits = bool(args.max_open or args.max_active)
        t0 = time.monotonic()
        while counts["kills"] < args.kills and time.monotonic() - t0 < args.seconds:
            script = make_script(rng, list(wps), 400, limits)
            out_path = os.path.join(tmp, "out")
            with open(out_path, "w") as out:
                p = subprocess.Popen([args.zio, img], stdin=subprocess.PIPE, stdout=out,
                                     stderr=subprocess.DEVNULL, text=True)
                p.stdin.write("\n".join(script) + "\n")
                p.stdin.flush()
                time.sleep(rng.uniform(0, 0.03))
                p.send_signal(signal.SIGKILL)
                p.wait()
                p.stdin.close()
            counts["kills"] += 1
            output = open(out_path).read()
            counts["commands acknowledged"] += output.count("\n")
            flushed, maybe_reset, inflight = acknowledged(script, output, expect)
            got = check(args.zio, img, flushed, counts, expect, maybe_reset, inflight)
            if got is not None:
                wps = got
        elapsed = time.monotonic() - t0
    for k, v in counts.items():
        print(f"{k}: {v}")
    print(f"elapsed: {elapsed:.1f} s")
    bad = counts["reopen failures"] + counts["write pointers claiming unwritten bytes"] + counts["write pointers behind flushed data"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
