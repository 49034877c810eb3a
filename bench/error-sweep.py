#!/usr/bin/env python3
"""Error sweep of the `zoned` image: every scenario of bench/zsweep.py runs
once per write-type system call zio makes on the image and per errno (EIO,
ENOSPC), with that one call failing (strace -e inject=SYSCALL:error=E:when=N).
Required:

- the command that made the call prints an error (`... failed: ...`);
- the zone state right after it (the `zrp` that follows every command, same
  process) is the state before it; for a write or append, the state after
  the 255-sector requests accepted before the failing one is accepted too
  (the wp on a request or zone boundary inside the command's range, other
  zones only implicitly closed);
- a new process sees the same state as the run's last report;
- `zio check` exits 0 and every byte below each wp is what was acknowledged
  (a moved wp of a failed command must be over that command's data).
(Repair scenarios: a failed repair exits non-zero and a rerun makes the
image clean; create: a failed create exits non-zero, and leaves no file or
one that fails to open or is clean.)

    bench/error-sweep.py [--scenario NAME]... [--errno EIO] [--quiet]

Prints per scenario and in total the error points tried and the violations,
one line per violation; exits 1 if any.
"""
import argparse, collections, errno as E, os, shutil, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zsweep as zs


def partial_ok(op, before, after):
    if op.kind not in ("write", "zap"):
        return False
    changed = [z for z in range(zs.NZ) if before[z][0] != after[z][0]]
    for z in range(zs.NZ):
        if z in changed:
            wp = after[z][0]
            if wp < before[z][0] or z not in op.zones():
                return False
            base = op.off if op.kind == "write" else before[z][0]
            if (wp - base) % zs.REQ and wp % zs.ZONE:
                return False
        elif before[z][1] != after[z][1] and not (before[z][1] == 2 and after[z][1] == 4) \
                and z not in op.zones():
            return False
    return True


def sweep(env, tmp, sc, errnos, quiet):
    img = os.path.join(tmp, "t.img")
    base = os.path.join(tmp, "base.img")
    kind = sc.get("kind", "zio")
    model0, pat = zs.prepare(env, img, sc)
    if kind != "create":
        shutil.copyfile(img, base)
    ops, _ = zs.make_ops(sc["ops"], pat)
    args, stdin = zs.zio_args(sc, img, ops)

    def fresh():
        if kind == "create":
            if os.path.exists(img):
                os.unlink(img)
        else:
            shutil.copyfile(base, img)
    # The states a run without faults reports, step by step: a fault that
    # the store absorbs (e.g. a failed hole punch done by writing zeros
    # instead) may let a command succeed, but only with this result.
    clean = [None] * len(ops)
    if sc.get("kind") not in ("create",) and not sc.get("kind", "").startswith("repair"):
        fresh()
        _, out = env.run(args, stdin=stdin)[:2]
        _, rest = zs.split_power_cycle(sc, ops, out)
        steps, n = zs.parse_output(ops, rest)
        clean = [st.state for st in steps[:n]] + [None] * (len(ops) - n)
    fresh()
    calls = env.trace(args, stdin)
    targets = [(n, k, before) for n, k, on_img, before in calls if on_img]
    v = []
    tried = 0
    if not targets:
        v.append(f"{sc['name']}: no error points found (the dry run touched no image)")
    for name, k, out_before in targets:
        for en in errnos:
            tried += 1
            fresh()
            where = f"{sc['name']}: {en} on {name} #{k}"
            rc, out, err = env.run(args, stdin=stdin, strace=["-e", f"trace={name}", "-e",
                                                                f"inject={name}:error={en}:when={k}"])
            one(env, img, sc, kind, model0, ops, out_before, rc, out, err, v, where, clean)
    print(f"{sc['name']}: error points: {tried}, violations: {len(v)}")
    if not quiet:
        for line in v:
            print("  " + line)
    return tried, v


def one(env, img, sc, kind, model0, ops, out_before, rc, out, err, v, where, clean):
    if kind == "create":
        if rc == 0:
            v.append(f"{where}: the failed create exits 0")
        if os.path.exists(img):
            orc, st, msg = zs.report(env, img)
            crc, cmsg = zs.check_clean(env, img)
            if orc == 0 and st is not None and crc != 0:
                v.append(f"{where}: a failed create left an image that opens but is not clean: {cmsg}")
        return
    if kind.startswith("repair"):
        crc, cmsg = zs.check_clean(env, img)
        if rc == 0 and crc != 0:
            v.append(f"{where}: the failed repair exits 0 but the image is not clean: {cmsg}")
        env.run(["check", "--repair", img])
        crc, cmsg = zs.check_clean(env, img)
        if crc != 0:
            v.append(f"{where}: a rerun of check --repair does not make it clean ({crc}): {cmsg}")
            return
    model = model0.copy()
    pc, out_rest = zs.split_power_cycle(sc, ops, out)
    if pc is not None:
        model.state = pc
    idx = None
    if not kind.startswith("repair"):
        _, pc_before = zs.split_power_cycle(sc, ops, out_before)
        if kind == "power_cycle" and zs.split_power_cycle(sc, ops, out_before)[0] is None:
            idx = -1  # during the power-cycle open
            if rc == 0:
                v.append(f"{where}: the power-cycle open hit the error but zio exits 0")
        else:
            idx = zs.parse_output(ops, pc_before)[1]
        steps, n_done = zs.parse_output(ops, out_rest)
        if idx >= 0 and n_done != len(ops):
            v.append(f"{where}: the run did not finish (exit {rc}): {err.strip()[:200]}")
            return
        for i, s in enumerate(steps[:n_done]):
            before = list(model.state)
            if i == idx and not s.failed:
                if s.state != clean[i]:
                    v.append(f"{where}: `{s.op}` hit the error, did not fail, and left another state "
                             f"than a run without faults (printed {s.lines[:1]})")
            elif i == idx:
                if s.state != before and not partial_ok(s.op, before, s.state):
                    diff = [f"zone {z} {before[z][0]:#x}/{before[z][1]} -> {s.state[z][0]:#x}/{s.state[z][1]}"
                            for z in range(zs.NZ) if before[z] != s.state[z]]
                    v.append(f"{where}: the failed `{s.op}` changed the zones: {', '.join(diff)}")
            model.apply(s)
    orc, st, msg = zs.report(env, img)
    if orc != 0 or st is None:
        v.append(f"{where}: the image does not open afterwards: {msg}")
        return
    if not kind.startswith("repair") and idx is not None and idx >= 0 and st != model.state:
        diff = [f"zone {z} {model.state[z][0]:#x}/{model.state[z][1]} -> {st[z][0]:#x}/{st[z][1]}"
                for z in range(zs.NZ) if model.state[z] != st[z]]
        v.append(f"{where}: a reopen differs from the run's last report: {', '.join(diff)}")
    crc, cmsg = zs.check_clean(env, img)
    if crc != 0:
        v.append(f"{where}: zio check exits {crc}: {cmsg}")
    zs.check_data(img, model, st, None, v, where, dead_tail=False)
    zs.finish_dead(env, img, model, st, v, where, collections.Counter())


def main():
    def add(ap):
        ap.add_argument("--errno", action="append", default=[], help="EIO, ENOSPC (default both)")
    return zs.main(__doc__, "error-sweep", "error points",
                   lambda env, tmp, sc, a: sweep(env, tmp, sc, a.errno or ["EIO", "ENOSPC"], a.quiet),
                   add_args=add)


if __name__ == "__main__":
    sys.exit(main())
