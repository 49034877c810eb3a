#!/usr/bin/env bash
# Zoned block layer figures, printed:
#  1. sequential fill of a 1 GiB `zoned` image with 1 MiB writes, against
#     the same writes on a raw file (target: zoned <= 1.10 x raw);
#  2. `zone_report` of every zone of a 1,000,000-zone null device
#     (target: < 0.5 s, peak RSS < 200 MB).
#
#   bench/zoned-vs-raw.sh          # needs hyperfine and python3
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool not found (Debian: apt-get install hyperfine python3)" >&2; exit 2; }
done
cargo build --release -q --bin zio
ZIO=$(pwd)/${CARGO_TARGET_DIR:-target}/release/zio
RUNS=${RUNS:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -c '
for i in range(1024):
    print(f"write -q {i << 20} 1M")' > "$work/fill.txt"

# Each run starts from a new sparse file. Creating one frees the last one's
# page cache, which makes run times swing by hundreds of ms; as root the
# caches are dropped before every run so both sides start alike.
settle=true
if [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ]; then
    settle="sync; echo 1 > /proc/sys/vm/drop_caches"
fi
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/fill.json" \
    --prepare "sh -c '$ZIO create -f zoned -o zone_size=64M $work/z.img 1G >/dev/null; $settle'" \
    -n zoned "sh -c '$ZIO $work/z.img < $work/fill.txt'" \
    --prepare "sh -c '$ZIO create -f raw $work/r.img 1G >/dev/null; $settle'" \
    -n raw "sh -c '$ZIO -f raw $work/r.img < $work/fill.txt'" >/dev/null 2>&1
python3 - "$work/fill.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
z, w = r["zoned"], r["raw"]
print(f"1 GiB fill, 1 MiB writes, median: zoned {z['median']*1000:7.1f} ms  raw {w['median']*1000:7.1f} ms  ratio {z['median']/w['median']:.3f}")
print(f"                          best:   zoned {z['min']*1000:7.1f} ms  raw {w['min']*1000:7.1f} ms  ratio {z['min']/w['min']:.3f}")
PY
"$ZIO" -c 'zrp 16 1' "$work/z.img" | sed 's/^/  zoned image after the fill, zone 0: /'

dev="driver=null,zoned=on,size=4000000M,zone_size=4M"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$work/zrp.json" \
    --output=null -n zrp "$ZIO --image-opts -c 'zrp 0 1000000' $dev" >/dev/null 2>&1
rss=$( { /usr/bin/time -f '%M' "$ZIO" --image-opts -c 'zrp 0 1000000' "$dev" >/dev/null; } 2>&1 | tail -n 1)
lines=$("$ZIO" --image-opts -c 'zrp 0 1000000' "$dev" | wc -l)
python3 - "$work/zrp.json" "$rss" "$lines" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["results"][0]["median"]
print(f"zone_report of 1,000,000 zones: {m*1000:.1f} ms, peak RSS {int(sys.argv[2])/1024:.1f} MiB, {sys.argv[3]} lines")
PY
