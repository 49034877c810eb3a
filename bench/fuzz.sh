#!/usr/bin/env bash
# Fuzzes zio's three input parsers with zio-fuzz, 1,000,000 runs each (or
# RUNS), and prints each target's summary line:
#   TARGET: N runs, C crashes, T s (R runs/s)
# Built in release with debug assertions and overflow checks (as cargo-fuzz
# builds), in its own target dir so the normal build is left alone.
# Crashing inputs land in ./fuzz-crashes/TARGET-N.txt; exit 1 if any.
#
#   bench/fuzz.sh                 # all three targets
#   RUNS=100000 SEED=7 bench/fuzz.sh cmdline
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-1000000}
SEED=${SEED:-$RANDOM}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/fuzz}
RUSTFLAGS="${RUSTFLAGS:-} -C debug-assertions -C overflow-checks" \
    cargo build --release --quiet --bin zio-fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(cmdline image-opts zoned-header)
status=0
for t in "${targets[@]}"; do
    echo "== $t (seed $SEED)" >&2
    "$CARGO_TARGET_DIR/release/zio-fuzz" "$t" --runs "$RUNS" --seed "$SEED" || status=1
done
exit $status
