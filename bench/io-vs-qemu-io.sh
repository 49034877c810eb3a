#!/usr/bin/env bash
# Runs zio and qemu-io on the same 1 GiB raw file in one go and prints each
# time and the ratio zio/qemu-io (targets: <= 0.10 for both workloads), plus
# zio's peak RSS for `write 0 1G` (target: <= 64 MiB).
#
#   bench/io-vs-qemu-io.sh            # needs hyperfine and qemu-io on PATH
#   RUNS=10 bench/io-vs-qemu-io.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine qemu-io python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool not found (Debian: apt-get install hyperfine qemu-utils python3)" >&2; exit 2; }
done
cargo build --release -q --bin zio
ZIO=${CARGO_TARGET_DIR:-target}/release/zio
RUNS=${RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
img=$work/bench.img
truncate -s 1G "$img"
# 20,000 4 KiB writes spread over the image, the same script for both tools.
python3 -c '
for i in range(20000):
    print(f"write -q {(i * 7919 * 4096) % (1 << 30)} 4k")' > "$work/writes.txt"

measure() { # name, zio command, qemu-io command
    hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$work/$1.json" \
        -n zio "$2" -n qemu-io "$3" >/dev/null
    python3 - "$work/$1.json" "$1" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
z, q = r["zio"]["median"], r["qemu-io"]["median"]
print(f"{sys.argv[2]:<28} zio {z*1000:9.1f} ms   qemu-io {q*1000:9.1f} ms   ratio {z/q:.3f}")
PY
}

measure "20000 x write -q OFF 4k" \
    "sh -c '$ZIO -f raw $img < $work/writes.txt'" \
    "sh -c 'qemu-io -f raw $img < $work/writes.txt > /dev/null'"
measure "write 0 1G" \
    "$ZIO -f raw -c 'write 0 1G' $img" \
    "qemu-io -f raw -c 'write 0 1G' $img"
rss=$( { /usr/bin/time -f '%M' "$ZIO" -f raw -c 'write -q 0 1G' "$img"; } 2>&1 | tail -n 1)
echo "zio write 0 1G peak RSS: $((rss / 1024)) MiB ($rss KiB)"
