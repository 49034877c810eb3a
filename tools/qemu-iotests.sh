#!/usr/bin/env bash
# Runs QEMU's own qemu-iotests (`tests/qemu-iotests/check -raw`, file
# protocol) twice: once with the real qemu-io and once with QEMU_IO_PROG set
# to zio. Prints each run's pass/fail/not-run counts and time, then the tests
# that pass with qemu-io but not with zio, and the reverse, one per line.
# Fetches nothing (tools/fetch-qemu-src.sh does, from Debian's packages).
# Exit status: 0 when every test that passes with qemu-io passes with zio
# (flaky ones included; with --vm: when every selected test passes with
# both), 1 when one does not, 2 on a usage or setup error.
# CI runs the --vm form (QEMU's tests/zoned on both kernels); the whole
# -raw suite takes a few minutes and is run by hand.
#
#   tools/qemu-iotests.sh [options] [-- CHECK-ARGS...]
#     --qemu-src DIR  QEMU 10.0.2 source tree ($QEMU_SRC; default the one
#                     tools/fetch-qemu-src.sh keeps in ~/.cache/zio-qemu-src,
#                     else /work/qemu-src/qemu-10.0.2)
#     --zio PATH      zio binary ($ZIO; default target/release/zio, built
#                     with `cargo build --release` beforehand)
#     --qemu-io PATH  reference qemu-io ($QEMU_IO; default: qemu-io on PATH)
#     --results DIR   where the logs go ($RESULTS_DIR; default
#                     /tmp/qemu-iotests-results)
#     -j N            parallel tests per run ($JOBS; default 2)
#     --only qemu-io|zio   do one run only
#     --keep          keep the temp dir (scratch files) instead of removing it
#     --no-retry      don't rerun (-j1) the tests that pass in one run only;
#                     by default one that then passes is listed as flaky
#     --vm            run the tests that need a real zoned device (default:
#                     QEMU's tests/zoned) with their devices, `sudo` and the
#                     qemu-io under test inside a throwaway VM (the VM tier's
#                     agent: zio-iotests --vm-agent); check itself runs here
#     --kernel SERIES with --vm: the VM's kernel, 6.1 (default) or 6.12
#   CHECK-ARGS go to check as they are, e.g. `-- 001 002` or `-- -g quick`.
#
# With --vm, `sudo` on check's PATH is a wrapper that runs its command in
# the VM, and QEMU_IO_PROG one that runs the VM's copy of qemu-io (or of
# zio, linked there as qemu-io); both copies come from this host (zio from
# --zio, qemu-io from PATH) and are packed into the VM's initramfs by
# vm/mkinitramfs.sh. Needs vm/setup.sh and target/release/zio-iotests.
#
# Needs: the QEMU source (Debian's qemu_10.0.2+ds.orig.tar.xz, extracted),
# python3, bash, GNU sed, qemu-img, qemu-nbd, qemu-storage-daemon and
# qemu-system-x86_64 (for a missing one a stub stands in, which marks the
# tests that call it "not run", or failed when they then exit non-zero).
# The source is copied to a temp dir and a fake build dir is made there, so
# the source tree is not written to. Debian's qemu-system lacks the
# qtest accelerator, so QEMU_PROG is a wrapper that turns `-accel qtest` into
# tcg (tests relying on qtest's virtual clock still fail, in both runs).
# zio is run through a link named qemu-io: its error lines then start with
# "qemu-io: ", as the .out files expect.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=${QEMU_SRC:-}
zio=${ZIO:-$repo/target/release/zio}
qemu_io=${QEMU_IO:-$(command -v qemu-io || true)}
results=${RESULTS_DIR:-/tmp/qemu-iotests-results}
jobs=${JOBS:-2}
only=
keep=
retry=1
vm=
kernel=6.1
check_args=()

die() { echo "qemu-iotests.sh: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

while (($#)); do
    case $1 in
        --qemu-src) src=${2:?}; shift ;;
        --zio) zio=${2:?}; shift ;;
        --qemu-io) qemu_io=${2:?}; shift ;;
        --results) results=${2:?}; shift ;;
        -j) jobs=${2:?}; shift ;;
        -j*) jobs=${1#-j} ;;
        --only) only=${2:?}; shift ;;
        --keep) keep=1 ;;
        --no-retry) retry= ;;
        --vm) vm=1 ;;
        --kernel) kernel=${2:?}; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; check_args=("$@"); break ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
case $only in '' | qemu-io | zio) ;; *) die "--only takes qemu-io or zio" ;; esac
case $kernel in 6.1 | 6.12) ;; *) die "--kernel takes 6.1 or 6.12, not '$kernel'" ;; esac
if [[ -n $vm && ${#check_args[@]} -eq 0 ]]; then check_args=(zoned); fi
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "-j wants a number, not '$jobs'"

if [[ -z $src ]]; then
    src=$HOME/.cache/zio-qemu-src/qemu-10.0.2
    [[ -d $src ]] || src=/work/qemu-src/qemu-10.0.2
    [[ -d $src ]] || die "no QEMU source: run tools/fetch-qemu-src.sh (or pass --qemu-src DIR)"
fi
[[ -d $src ]] || die "no QEMU source dir $src"
src=$(cd "$src" && pwd)
[[ -f $src/tests/qemu-iotests/check && -d $src/python/qemu ]] ||
    die "$src has no tests/qemu-iotests/check or python/qemu: not a QEMU source tree"
[[ -z $only || $only == qemu-io ]] || [[ -x $zio ]] ||
    die "no zio at $zio (cargo build --release, or --zio PATH)"
[[ $only == zio || -x $qemu_io ]] || die "no qemu-io (install qemu-utils, or --qemu-io PATH)"
zio=$(realpath "$zio")
command -v python3 >/dev/null || die "python3 is needed"

# No dot in the name: tests 197 and 215 refuse a TEST_DIR outside [-_a-zA-Z0-9/].
tmp=$(mktemp -d /tmp/zio-qemu-iotests-XXXXXX)
# Unix socket paths are limited to 108 bytes: keep SOCK_DIR short.
sock=$(mktemp -d /tmp/qis-XXXXXX)
cleanup() {
    if [[ -n ${agent_pid:-} ]]; then
        "$runner" --vm-poweroff "$sock/agent" >/dev/null 2>&1 || kill "$agent_pid" 2>/dev/null
        wait "$agent_pid" 2>/dev/null || true
    fi
    rm -rf "$sock"
    if [[ -n $keep ]]; then echo "temp dir kept: $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# A private copy of what check uses (testenv.py finds python/ at
# tests/qemu-iotests/../../python), so __pycache__ and friends land there.
mkdir -p "$tmp/src/tests" "$tmp/build/tests/qemu-iotests" "$tmp/bin"
cp -a "$src/tests/qemu-iotests" "$tmp/src/tests/"
cp -a "$src/python" "$tmp/src/"
iotests=$tmp/src/tests/qemu-iotests

# Stands in for a binary that is not installed: the test that calls it is
# marked "not run" (check reads $TEST_DIR/<test>.notrun; TEST_DIR ends in
# <fmt>-<proto>-<test>).
stub() {
    cat >"$tmp/bin/$1" <<EOF
#!/usr/bin/env bash
[[ \${1:-} == -machine && \${2:-} == help ]] && exit 0
if [[ -n \${TEST_DIR:-} ]]; then
    t=\${TEST_DIR##*/}; t=\${t#*-}; t=\${t#*-}
    echo "$1 is not installed" >"\$TEST_DIR/\$t.notrun"
fi
echo "$1: not installed" >&2
exit 1
EOF
    chmod +x "$tmp/bin/$1"
    echo "warning: $1 not found; tests calling it will be 'not run' or fail" >&2
}
tool() {
    local p
    if p=$(command -v "$1"); then echo "$p"; else stub "$1" >&2; echo "$tmp/bin/$1"; fi
}
qemu_img=$(tool qemu-img)
qemu_nbd=$(tool qemu-nbd)
qsd=$(tool qemu-storage-daemon)
arch=$(uname -m)
if sys=$(command -v "qemu-system-$arch"); then
    # QEMU_PROG: qemu-system with -accel qtest / accel=qtest mapped to tcg.
    # Named like the real one, as common.filter strips "$(basename $QEMU_PROG):".
    cat >"$tmp/bin/qemu-system-$arch" <<EOF
#!/usr/bin/env bash
args=()
prev=
for a in "\$@"; do
    case \$prev in
        -accel) [[ \$a == qtest || \$a == qtest,* ]] && a=tcg\${a#qtest} ;;
        -machine | -M) a=\${a//accel=qtest/accel=tcg} ;;
    esac
    args+=("\$a")
    prev=\$a
done
exec -a "\$0" "$sys" "\${args[@]}"
EOF
    chmod +x "$tmp/bin/qemu-system-$arch"
else
    stub "qemu-system-$arch"
fi
qemu_sys=$tmp/bin/qemu-system-$arch

mkdir -p "$results"
results=$(cd "$results" && pwd)

# Variables testenv.py or the tests would take from the caller.
unset IMGOPTS IMGFMT IMGPROTO QEMU_OPTIONS QEMU_IMG_OPTIONS QEMU_NBD_OPTIONS \
    QEMU_IO_OPTIONS SAMPLE_IMG_DIR GDB_OPTIONS VALGRIND_QEMU PRINT_QEMU \
    QEMU_IOTESTS_REGEN

# run NAME IO_PROG JOBS [CHECK-ARGS...]: one check run; log, status list and
# .out.bad files go to $results/NAME{.log,.status,/}.
run() {
    local name=$1 io=$2 j=$3 rc=0 t0 t1
    shift 3
    rm -rf "${results:?}/$name" "$results/$name.log" "$results/$name.status"
    mkdir -p "$results/$name" "$tmp/scratch-$name"
    t0=$(date +%s)
    (
        cd "$tmp/build/tests/qemu-iotests"
        export QEMU_PROG=$qemu_sys QEMU_IMG_PROG=$qemu_img QEMU_IO_PROG=$io \
            QEMU_NBD_PROG=$qemu_nbd QSD_PROG=$qsd \
            TEST_DIR=$tmp/scratch-$name SOCK_DIR=$sock/$name
        exec python3 "$iotests/check" -raw -file -j "$j" --color off \
            --source-dir "$iotests" --build-dir "$PWD" "$@"
    ) >"$results/$name.log" 2>&1 </dev/null || rc=$?
    t1=$(date +%s)
    # Status lines: "NAME  pass|fail|not run  [HH:MM:SS] ..." (with -j1
    # after a "NAME  ...  [HH:MM:SS]\r" progress line).
    tr '\r' '\n' <"$results/$name.log" |
        sed -nE 's/^([^ ]+) +(pass|fail|not run) +\[.*/\1 \2/p' |
        sort -u >"$results/$name.status"
    find "$tmp/scratch-$name" -name '*.out.bad' -exec cp {} "$results/$name/" \;
    printf '%-14s %4d passed, %4d failed, %4d not run  (%dm%02ds, check exit %d)\n' \
        "$name:" "$(count "$name" pass)" "$(count "$name" fail)" \
        "$(count "$name" 'not run')" $(((t1 - t0) / 60)) $(((t1 - t0) % 60)) "$rc"
    if [[ ! -s $results/$name.status ]]; then
        echo "  no test ran; the log's end:" >&2
        tail -n 5 "$results/$name.log" >&2
    fi
}
count() { grep -c " $2\$" "$results/$1.status" || true; }
passing() { sed -n 's/ pass$//p' "$results/$1.status" | LC_ALL=C sort; }

echo "qemu-iotests from $src, results in $results"
mkdir -p "$tmp/zio-as"
ln -s "$zio" "$tmp/zio-as/qemu-io"
io_qemu=$qemu_io io_zio=$tmp/zio-as/qemu-io
if [[ -n $vm ]]; then
    runner=${ZIO_IOTESTS:-$repo/target/release/zio-iotests}
    [[ -x $runner ]] || die "no zio-iotests at $runner (cargo build --release -p zio-iotests)"
    "$runner" --zio "$zio" --dir "$repo/iotests" --kernel "$kernel" \
        --vm-agent "$sock/agent" >"$results/vm-agent.log" 2>&1 &
    agent_pid=$!
    # in_vm NAME COMMAND...: a script $tmp/vm-bin/NAME that runs COMMAND and
    # its arguments in the VM.
    mkdir -p "$tmp/vm-bin"
    in_vm() {
        local name=$1
        shift
        printf '#!/usr/bin/env bash\nexec %q --vm-exec %q -- %s "$@"\n' \
            "$runner" "$sock/agent" "$*" >"$tmp/vm-bin/$name"
        chmod +x "$tmp/vm-bin/$name"
    }
    # sudo -n CMD: CMD as root in the VM (everything is root there).
    printf '#!/usr/bin/env bash\n[[ ${1:-} == -n ]] && shift\nexec %q --vm-exec %q -- "$@"\n' \
        "$runner" "$sock/agent" >"$tmp/vm-bin/sudo"
    chmod +x "$tmp/vm-bin/sudo"
    in_vm qemu-io-vm /usr/bin/qemu-io
    in_vm zio-vm /tmp/zio-as/qemu-io
    "$runner" --vm-exec "$sock/agent" -- sh -c \
        'mkdir -p /tmp/zio-as && ln -sf /opt/zio/zio /tmp/zio-as/qemu-io && uname -r' ||
        die "the VM agent did not come up (log: $results/vm-agent.log)"
    io_qemu=$tmp/vm-bin/qemu-io-vm io_zio=$tmp/vm-bin/zio-vm
    export PATH=$tmp/vm-bin:$PATH
fi
[[ $only == zio ]] || run qemu-io "$io_qemu" "$jobs" "${check_args[@]}"
[[ $only == qemu-io ]] || run zio "$io_zio" "$jobs" "${check_args[@]}"

# compare A B: print the tests that pass with A but not with B (retried once
# with B alone when $retry is set; those passing then are printed as flaky).
compare() {
    local a=$1 b=$2 io=$3 only_a flaky=()
    mapfile -t only_a < <(LC_ALL=C comm -23 <(passing "$a") <(passing "$b"))
    if [[ -n $retry && ${#only_a[@]} -gt 0 ]]; then
        run "$b-retry" "$io" 1 "${only_a[@]}"
        mapfile -t flaky < <(passing "$b-retry")
        mapfile -t only_a < <(LC_ALL=C comm -23 <(printf '%s\n' "${only_a[@]}") \
            <(printf '%s\n' "${flaky[@]}" | sed '/^$/d'))
    fi
    echo "pass with $a, not with $b (${#only_a[@]}):"
    if [[ $a == qemu-io ]] && ((${#only_a[@]})); then status=1; fi
    printf '%s\n' "${only_a[@]}" | sed '/^$/d' | tee "$results/$a-only.txt"
    if ((${#flaky[@]})); then
        echo "  flaky (failed with $b, then passed alone with $b): ${flaky[*]}"
    fi
}
status=0
# In the VM the selection is small and must run whole: a test that fails or
# is not run (no sudo, no device) with either program fails this script.
if [[ -n $vm ]]; then
    for r in qemu-io zio; do
        [[ -z $only || $only == "$r" ]] || continue
        n=$(($(count $r fail) + $(count $r 'not run')))
        if ((n)) || [[ ! -s $results/$r.status ]]; then
            echo "with --vm every selected test must pass; with $r, $n failed or did not run"
            status=1
        fi
    done
fi
if [[ -z $only ]]; then
    compare qemu-io zio "$io_zio"
    compare zio qemu-io "$io_qemu"
fi
echo "logs: $results/{qemu-io,zio}{,-retry}.log; failing tests' output: $results/{qemu-io,zio}{,-retry}/*.out.bad"
exit $status
