#!/usr/bin/env python3
"""Kill-point sweep of the `zoned` image: every scenario of bench/zsweep.py
runs once per write-type system call zio makes on the image, killed with
SIGKILL right before that call (strace -e inject=SYSCALL:signal=KILL:when=N).
After each kill:

- the image opens (`zio -r -U -c 'zrp 0 N'` exits 0) and `zio check` exits 0;
- every byte below each zone's write pointer holds the pattern of the last
  acknowledged write that covered it (each write has its own pattern byte),
  or the in-flight command's, or (in a finished zone) 0x00/0xff;
- no write pointer sits below data covered by a completed flush, none moved
  without a command, and the in-flight command touched only its own zones;
- no byte from before a reset is at or above a write pointer, and after a
  `zf` in a fresh process none reads back.
(Repair scenarios: a rerun of `check --repair` makes the image clean. The
create scenario: the file is absent or a clean empty image.)

    bench/kill-sweep.py [--scenario NAME]... [--list] [--quiet]

Prints per scenario and in total the kill points tried and the violations,
one line per violation; exits 1 if any.
"""
import argparse, os, shutil, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zsweep as zs


def self_test(env, tmp):
    """The Nth call is not executed when SIGKILL is injected at its entry."""
    img = os.path.join(tmp, "self.img")
    zs.make_image(env, img, {})
    rc, out, err = env.run(["-c", "write -P 0x5a 1M 4k", img],
                           strace=["-e", "trace=pwrite64", "-e", "inject=pwrite64:signal=KILL:when=1"])
    if rc not in (-9, 137) or zs.read_raw(img, zs.ZONE, 4096) != bytes(4096):
        sys.exit(f"self-test: a SIGKILL injected at pwrite64 #1 did not stop it before the call (rc {rc})")


def after_kill(env, img, sc, model, steps, n_done, ops, out, v, where, info):
    kind = sc.get("kind", "zio")
    if kind == "create":
        if not os.path.exists(img):
            return
        crc, cmsg = zs.check_clean(env, img)
        rc, st, msg = zs.report(env, img)
        if crc != 0 or rc != 0 or st != zs.Model().state:
            v.append(f"{where}: the killed create left a file that is not a clean empty image "
                     f"(check exits {crc}: {cmsg})")
        return
    if kind.startswith("repair"):
        crc, cmsg = zs.check_clean(env, img)
        # 2 is "errors found" (the next repair must fix them); beyond
        # repair is only a damaged header.
        if crc == 1 or "cannot be repaired" in cmsg:
            v.append(f"{where}: a killed repair left the image unusable ({crc}): {cmsg}")
        rc, o, e = env.run(["check", "--repair", img])
        crc, cmsg = zs.check_clean(env, img)
        if crc != 0:
            v.append(f"{where}: `check --repair` after a killed repair does not make it clean ({crc}): {cmsg}")
            return
    inflight = None
    if n_done < len(ops):
        inflight = ops[n_done]
        s = steps[n_done]
        if s.done and s.state is None:
            model.apply(s)  # it printed its result: acknowledged, state unknown
    rc, st, msg = zs.report(env, img)
    if rc != 0 or st is None:
        v.append(f"{where}: the image does not open: {msg}")
        return
    crc, cmsg = zs.check_clean(env, img)
    if crc != 0:
        v.append(f"{where}: zio check exits {crc}: {cmsg}")
    ambiguous = kind == "power_cycle" and n_done == 0
    for z in range(model.conv, zs.NZ):
        wp, cond = st[z]
        mwp = model.state[z][0]
        touched = inflight is not None and z in inflight.zones()
        if z in model.uncertain:
            continue
        if touched and inflight.kind == "zrs" and wp == z * zs.ZONE and mwp != wp:
            model.reset_zone(z)
            continue
        if wp < model.flushed[z]:
            v.append(f"{where}: zone {z}: wp {wp:#x} behind flushed data ending at {model.flushed[z]:#x}")
        elif wp < mwp:
            info["acknowledged but unflushed changes lost"] += 1
        elif wp > mwp and not touched and not ambiguous:
            v.append(f"{where}: zone {z}: wp {wp:#x} moved past the acknowledged {mwp:#x} without a command")
        elif (not ambiguous and kind != "power_cycle" and cond != model.state[z][1]
              and (inflight is None or inflight.kind in ("flush", "zc", "zf", "zrs")) and not touched):
            info["acknowledged zone conditions lost"] += 1
    zs.check_data(img, model, st, inflight, v, where, dead_tail=False)
    zs.finish_dead(env, img, model, st, v, where, info)


def sweep(env, tmp, sc, quiet):
    img = os.path.join(tmp, "t.img")
    base = os.path.join(tmp, "base.img")
    model0, pat = zs.prepare(env, img, sc)
    if sc.get("kind") != "create":
        shutil.copyfile(img, base)
    ops, _ = zs.make_ops(sc["ops"], pat)
    args, stdin = zs.zio_args(sc, img, ops)
    def fresh():
        if sc.get("kind") == "create":
            if os.path.exists(img):
                os.unlink(img)
        else:
            shutil.copyfile(base, img)
    fresh()
    calls = env.trace(args, stdin)
    targets = [(n, k) for n, k, on_img, _ in calls if on_img]
    v, info = [], {k: 0 for k in ["acknowledged but unflushed changes lost",
                                  "acknowledged zone conditions lost",
                                  "zones a reset emptied that zf could not finish"]}
    for name, k in targets:
        fresh()
        where = f"{sc['name']}: kill before {name} #{k}"
        rc, out, err = env.run(args, stdin=stdin, strace=["-e", f"trace={name}", "-e",
                                                            f"inject={name}:signal=KILL:when={k}"])
        if rc not in (-9, 137):
            v.append(f"{where}: not reached (exit {rc}): the run is not deterministic")
            continue
        model = model0.copy()
        pc, out = zs.split_power_cycle(sc, ops, out)
        if pc is not None:
            model.state = pc
        steps, n_done = zs.parse_output(ops, out)
        for s in steps[:n_done]:
            model.apply(s)
        after_kill(env, img, sc, model, steps, n_done, ops, out, v, where, info)
    if not targets:
        v.append(f"{sc['name']}: no kill points found (the dry run touched no image)")
    print(f"{sc['name']}: kill points: {len(targets)}, violations: {len(v)}")
    for line in v:
        print("  " + line) if not quiet else None
    for key, n in info.items():
        if n:
            print(f"  ({key}: {n})")
    return len(targets), v


def main():
    return zs.main(__doc__, "kill-sweep", "kill points",
                   lambda env, tmp, sc, a: sweep(env, tmp, sc, a.quiet), before=self_test)


if __name__ == "__main__":
    sys.exit(main())
