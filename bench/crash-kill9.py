#!/usr/bin/env python3
"""kill -9 a zio at random moments while it writes, appends, finishes,
resets and flushes a `zoned` image, then check the image after each kill:

- every reopen succeeds (`zio -c 'zrp 0 N'` exits 0);
- no zone's write pointer claims bytes that were not written: every byte
  below it holds the zone's pattern (a finished zone may end in unwritten
  bytes after its last write);
- no write pointer falls behind data that was acknowledged and then
  covered by a completed `flush` (unless that zone was reset later).

Every command zio runs prints a line (writes their report, appends their
position with -p, zone operations a report of the zone, a flush is followed
by `length`), and zio writes each command's output before starting the
next, so the output read back after the kill is the list of operations that
completed, in order.

    bench/crash-kill9.py [--kills 1000] [--seconds 900]

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


def pattern(zone):
    return zone + 1


def make_script(rng, wps, n):
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
            lines.append(f"write -P {pattern(z)} {wps[z]} {length}")
            wps[z] = min(wps[z] + length, start + ZONE)
        elif r < 0.70:
            length = rng.choice([512, 4096, 32768])
            lines.append(f"zap -p -P {pattern(z)} {start} {length}")
            wps[z] = min(wps[z] + length, start + ZONE)
        elif r < 0.78:
            lines.append(f"zf {start} {ZONE}")
            lines.append(f"zrp {start} 1")
            wps[z] = start + ZONE
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


def acknowledged(script, output):
    """Replays the output against the script: per zone, the end of the data
    known to be written and flushed (a reset clears it). Also returns the
    zones a reset may have hit unacknowledged: zio runs one command at a
    time and writes its output before the next, so only the commands up to
    the next one that prints can have run without their output."""
    flushed = [None] * ZONES  # end of flushed data, per zone
    pending = [None] * ZONES  # end of acknowledged data since the last flush
    lines = iter(output.splitlines())
    maybe_reset = set()
    for i, cmd in enumerate(script):
        if cmd.startswith(("write", "zap", "zrp", "length")):
            line = next(lines, None)
            if line is None:
                for later in script[i - 1 : i + 1]:
                    if later.startswith("zrs"):
                        maybe_reset.add(int(later.split()[1]) // ZONE)
                break
            if line.startswith("wrote"):
                next(lines, None)  # the timing line
                m = WROTE.match(line)
                end = int(m.group(2)) + int(m.group(1))
                z = int(m.group(2)) // ZONE
                pending[z] = max(pending[z] or 0, end)
            elif line.startswith("After zap"):
                pos = int(ZAP.match(line).group(1), 16) * SECTOR
                length = int(cmd.split()[-1])
                z = pos // ZONE
                pending[z] = max(pending[z] or 0, pos + length)
            elif line.startswith("start:"):
                m = ZRP.match(line)
                z = int(m.group(1), 16) * SECTOR // ZONE
                wp = int(m.group(3), 16) * SECTOR
                if wp == z * ZONE:  # the reset completed
                    pending[z] = None
                    flushed[z] = None
                    flushed[z] = 0  # marks "reset after flush"
            elif line.endswith("MiB"):  # `length` after a completed flush
                for z in range(ZONES):
                    if pending[z] is not None:
                        flushed[z] = max(flushed[z] or 0, pending[z])
                        pending[z] = None
            # failures ("write failed: ...") acknowledge nothing
    for z in maybe_reset:
        flushed[z] = None
    return flushed


def check(zio, img, flushed, counts):
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
            f.seek(data_offset + start)
            data = f.read(wp - start)
            want = bytes([pattern(z)])
            body = data.rstrip(b"\x00") if cond == 14 else data
            if body.strip(want):
                counts["write pointers claiming unwritten bytes"] += 1
                bad = next(i for i, b in enumerate(body) if b != want[0])
                print(f"zone {z}: bytes below the write pointer {wp:#x} (cond {cond}) do not hold the pattern: "
                      f"byte {start + bad:#x} is {body[bad]:#x}, distinct {sorted(set(body))}", file=sys.stderr)
            if flushed[z] and wp < flushed[z]:
                counts["write pointers behind flushed data"] += 1
                print(f"zone {z}: write pointer {wp:#x} behind flushed data ending at {flushed[z]:#x}", file=sys.stderr)
    return wps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=900)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--zio", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "zio"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    counts = {k: 0 for k in ["kills", "commands acknowledged", "reopen failures",
                             "write pointers claiming unwritten bytes", "write pointers behind flushed data"]}
    with tempfile.TemporaryDirectory() as tmp:
        img = os.path.join(tmp, "crash.img")
        subprocess.run([args.zio, "create", "-f", "zoned", "-o", f"zone_size={ZONE}", img, str(ZONES * ZONE)],
                       check=True, capture_output=True)
        wps = [z * ZONE for z in range(ZONES)]
        t0 = time.monotonic()
        while counts["kills"] < args.kills and time.monotonic() - t0 < args.seconds:
            script = make_script(rng, list(wps), 400)
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
            flushed = acknowledged(script, output)
            got = check(args.zio, img, flushed, counts)
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
