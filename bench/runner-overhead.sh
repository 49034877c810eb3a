#!/usr/bin/env bash
# Measures the iotests runner itself (not zio):
#  1. per-test overhead: 50 tests that only echo, run with -j 1
#     (target: <= 20 ms per test, bash start-up included);
#  2. parallel speed-up: 10 tests that each sleep 0.2 s, -j 2 vs -j 1
#     (target: >= 1.6x).
# Each figure is the best of 3 runs. Usage: bench/runner-overhead.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q -p zio -p zio-iotests --manifest-path "$root/Cargo.toml"
runner=$target/release/zio-iotests
zio=$target/release/zio

work=$(mktemp -d "${TMPDIR:-/tmp}/zio-runner-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# make_suite DIR COUNT BODY: COUNT tests t00.. whose script runs BODY.
make_suite()
{
    mkdir -p "$1"
    for ((i = 0; i < $2; i++)); do
        name=$(printf 't%02d' "$i")
        printf '#!/usr/bin/env bash\n# group: quick\necho "QA output created by %s"\n%s\n' \
            "$name" "$3" > "$1/$name"
        printf 'QA output created by %s\n' "$name" > "$1/$name.out"
    done
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# best_ms CMD...: fastest of 3 runs of CMD, in milliseconds.
best_ms()
{
    local best= start elapsed
    for _ in 1 2 3; do
        start=$(now_ms)
        "$@" > /dev/null
        elapsed=$(( $(now_ms) - start ))
        if [ -z "$best" ] || [ "$elapsed" -lt "$best" ]; then best=$elapsed; fi
    done
    echo "$best"
}

run() { "$runner" --zio "$zio" --scratch "$work/scratch" "$@"; }

bash_only()
{
    local t
    for t in "$1"/t*[0-9]; do bash "$t" > /dev/null; done
}

make_suite "$work/trivial" 50 ''
make_suite "$work/sleepy" 10 'sleep 0.2'

trivial=$(best_ms run --dir "$work/trivial" -j 1)
baseline=$(best_ms bash_only "$work/trivial")
serial=$(best_ms run --dir "$work/sleepy" -j 1)
parallel=$(best_ms run --dir "$work/sleepy" -j 2)

awk -v t="$trivial" -v b="$baseline" -v s="$serial" -v p="$parallel" 'BEGIN {
    printf "trivial tests, -j 1:     %d ms for 50 tests = %.1f ms/test (target <= 20)\n", t, t / 50
    printf "same scripts, bash loop: %d ms for 50 tests = %.1f ms/test (no runner, for scale)\n", b, b / 50
    printf "0.2 s tests, -j 1:       %d ms for 10 tests\n", s
    printf "0.2 s tests, -j 2:       %d ms for 10 tests\n", p
    printf "speed-up -j 2 vs -j 1:   %.2fx (target >= 1.6)\n", s / p
}'

# The real suite, for scale: its wall time is bounded below by its longest
# test (throttle sleeps on purpose), so -j 2 gains less than on even tests.
suite1=$(best_ms run -j 1)
suite2=$(best_ms run -j 2)
awk -v a="$suite1" -v b="$suite2" 'BEGIN {
    printf "iotests suite, -j 1:     %d ms\n", a
    printf "iotests suite, -j 2:     %d ms (%.2fx)\n", b, a / b
}'
