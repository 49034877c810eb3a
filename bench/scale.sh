#!/usr/bin/env bash
# Costs that scale with the number of zones (issue 11): for 1M and 16M
# zones (1 TiB with 1 MiB zones, 1 TiB with 64 KiB zones) of the in-memory
# device (driver=null,zoned=on) and of a zoned image (a sparse file in a
# temporary directory), prints one line per measurement with its goal:
#   zf / zrs / zo over all zones      wall time   1M < 1 s, 16M < 15 s
#   zrp -t over all zones             wall time, peak RSS < 100 MB
#   zs                                wall time   1M < 1 s, 16M < 15 s
#   zap -t 8 -n 10000000 -q           wall time, peak RSS < 64 MiB
# Each run is cut at $TIMEOUT seconds (default 120) and then reported as
# "timeout". Usage: bench/scale.sh [1M|16M ...]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q -p zio --manifest-path "$root/Cargo.toml" || exit 1
zio=$target/release/zio
timeout=${TIMEOUT:-120}
[ -x /usr/bin/time ] || { echo "scale.sh: needs /usr/bin/time (GNU time)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/zio-scale.XXXXXX")
trap 'rm -rf "$work"' EXIT

# run LABEL GOAL_S GOAL_RSS_KB ZIO-ARGS...: one line with wall time, peak
# RSS and the goals (a goal of - is not checked); an exit status other than
# 0 (or $ok_rc) is FAILED.
run()
{
    local label=$1 goal_s=$2 goal_kb=$3
    shift 3
    local out=$work/time.out rc
    /usr/bin/time -o "$out" -f '%e %M' timeout "$timeout" "$zio" "$@" > /dev/null 2> "$work/err"
    rc=$?
    read -r secs kb < <(tail -n 1 "$out")
    local verdict=ok note=""
    if [ "$rc" = 124 ]; then
        printf '%-44s timeout (> %s s)\n' "$label" "$timeout"
        return
    fi
    local err
    err=$(head -n 1 "$work/err")
    [ "$rc" = 0 ] || note=" (exit $rc${err:+: $err})"
    [ "$rc" = 0 ] || [ "$rc" = "${ok_rc:-0}" ] || verdict=FAILED
    if [ "$goal_s" != - ] && awk -v a="$secs" -v b="$goal_s" 'BEGIN { exit !(a >= b) }'; then
        verdict=MISSED
    fi
    if [ "$goal_kb" != - ] && [ "$kb" -ge "$goal_kb" ]; then
        verdict=MISSED
    fi
    local goals=""
    [ "$goal_s" != - ] && goals="< $goal_s s"
    [ "$goal_kb" != - ] && goals="${goals:+$goals, }RSS < $((goal_kb / 1024)) MB"
    printf '%-44s %7.2f s  %8d KB peak RSS   goal %-22s %s%s\n' \
        "$label" "$secs" "$kb" "$goals" "$verdict" "$note"
}

scales=("$@")
[ ${#scales[@]} -gt 0 ] || scales=(1M 16M)
for scale in "${scales[@]}"; do
    case $scale in
    1M) zone_size=1M goal=1 nr=1048576 ;;
    16M) zone_size=64k goal=15 nr=16777216 ;;
    *) echo "scale.sh: unknown scale '$scale' (1M or 16M)" >&2; exit 1 ;;
    esac
    size=1T
    img=$work/z.img
    # Every row starts from a fresh device: a new in-memory one per process,
    # a new image per row (created outside the measurement).
    fresh() {
        [ "$dev" = image ] || return 0
        rm -f "$img"
        "$zio" create -f zoned -o "zone_size=$zone_size" "$img" "$size" > /dev/null || exit 1
    }
    for dev in null image; do
        if [ "$dev" = null ]; then
            target=(--image-opts "driver=null,zoned=on,size=$size,zone_size=$zone_size")
        else
            target=("$img")
        fi
        for cmd in zf zrs zo; do
            fresh
            run "$scale zones $dev: $cmd 0 $size" "$goal" - -c "$cmd 0 $size" "${target[@]}"
        done
        fresh
        run "$scale zones $dev: zrp -t 0 $nr" - 102400 -c "zrp -t 0 $nr" "${target[@]}"
        fresh
        run "$scale zones $dev: zs" "$goal" - -c zs "${target[@]}"
        # Zone 0 fills after its first appends; the rest fail, counted in
        # one line, and zap exits 1.
        fresh
        ok_rc=1 run "$scale zones $dev: zap -t 8 -n 10000000 -q 0 512" - 65536 \
            -c "zap -t 8 -n 10000000 -q 0 512" "${target[@]}"
    done
    rm -f "$img"
done
