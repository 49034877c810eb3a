#!/usr/bin/env bash
# Zone appends from T = 2, 4, 8 threads into the same zone, 100,000 each
# (N=... to change), on the in-memory zoned device and on a zoned image.
# `zap -V` stamps every append with its number and checks afterwards that
# each landed whole at its own position, none overlap, and the write pointer
# moved by exactly what landed; it prints the counts, and zio exits 1 on
# any violation (so does this script).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin zio
ZIO=$(pwd)/${CARGO_TARGET_DIR:-target}/release/zio
N=${N:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in 2 4 8; do
    start=$(date +%s%N)
    "$ZIO" --image-opts -c "zap -t $t -n $N -V 0 4k" driver=null,zoned=on,size=8G,zone_size=1G |
        sed "s/^/null,  T=$t: /"
    "$ZIO" create -f zoned -o zone_size=1G "$work/z.img" 8G > /dev/null
    "$ZIO" -c "zap -t $t -n $N -V 1G 4k" -c 'flush' "$work/z.img" | sed "s/^/image, T=$t: /"
    "$ZIO" -c "zrp 1G 1" "$work/z.img" | sed "s/^/image, T=$t, reopened: /"
    end=$(date +%s%N)
    echo "T=$t: $(( (end - start) / 1000000 )) ms for both devices"
done
