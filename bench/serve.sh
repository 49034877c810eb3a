#!/usr/bin/env bash
# `zio serve` against null_blk, in one boot of the VM tier (Linux 6.12,
# the kernel with ublk_drv): fio on /dev/ublkbN served from zio's in-memory
# zoned emulation (driver=null,zoned=on) and on /dev/nullb0
# (memory_backed=1), both 1 GiB of 4 MiB zones, no open/active limits
# (fio --zonemode=zbd). Three jobs, each on each device: 4k sequential
# writes at QD1 (psync) and at QD16 (io_uring), then 4k random reads at
# QD16 (io_uring) of what the writes left (--size=128M: the VM has 1 GiB
# of memory for both devices' data). Prints the IOPS of each side and
# zio's ratio to null_blk (the goal: >= 0.5). The "floor" column is ublk's
# own cost: the same jobs on a plain (not zoned) `zio serve` of null-co,
# which keeps no data, so a request is little more than its round trip
# through ublk_drv and the user copy. Needs vm/setup.sh done.
#
#   bench/serve.sh                   # RUNTIME=5 s a job, QUEUES=1, DEPTH=64
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RUNTIME=${RUNTIME:-5}
QUEUES=${QUEUES:-1}
DEPTH=${DEPTH:-64}
. "$root/bench/vm-bench.sh"
vm_bench serve-bench <<SCRIPT
#!/usr/bin/env bash
# group: realdev serve
# kernels: 6.12
# nullb: zoned=1 gb=1 zone_size=4 memory_backed=1
. ./common.rc
[ -n "\$TEST_DEV" ] || { echo "not in the VM"; exit 1; }
# serve NAME OPTS: zio serve of the option string OPTS in the
# background; prints its device once it is there.
serve()
{
    "\$ZIO" serve --queues $QUEUES --depth $DEPTH --image-opts "\$2" \\
        > "\$TEST_DIR/\$1.out" 2> "\$TEST_DIR/\$1.err" &
    for _ in \$(seq 600); do
        [ -s "\$TEST_DIR/\$1.out" ] && break
        sleep 0.05
    done
    local dev
    dev=\$(head -n 1 "\$TEST_DIR/\$1.out")
    for _ in \$(seq 100); do [ -b "\$dev" ] && break; sleep 0.1; done
    [ -b "\$dev" ] || { echo "no ublk device for \$2: \$(cat "\$TEST_DIR/\$1.err")" >&2; exit 1; }
    echo "\$dev"
}
ublk=\$(serve zoned driver=null,zoned=on,size=1G,zone_size=4M,mem_limit=256M)
floor=\$(serve floor driver=null-co,size=1G)
# iops DEV NAME FIELD FIO-ARGS...: the IOPS of one fio job (FIELD 8 is the
# read IOPS of fio's terse output, 49 the write IOPS).
iops()
{
    local dev=\$1 name=\$2 field=\$3 out
    shift 3
    out=\$(fio --name="\$name" --filename="\$dev" --direct=1 --bs=4k \\
        --runtime=$RUNTIME --time_based --output-format=terse --terse-version=3 "\$@" 2>&1) ||
        { echo "fio \$name on \$dev failed: \$out" >&2; echo 0; return; }
    echo "\$out" | tail -n 1 | cut -d';' -f"\$field"
}
row()
{
    local label=\$1 field=\$2 z n f
    shift 2
    z=\$(iops "\$ublk" "\$label" "\$field" --zonemode=zbd "\$@")
    n=\$(iops "\$TEST_DEV" "\$label" "\$field" --zonemode=zbd "\$@")
    f=\$(iops "\$floor" "\$label" "\$field" "\$@")
    awk -v l="\$label" -v z="\$z" -v n="\$n" -v f="\$f" 'BEGIN {
        printf "%-20s %10d %10d %7.2f %11d %7.2f\n", l, z, n, (n > 0 ? z / n : 0), f, (n > 0 ? f / n : 0) }'
}
printf "%-20s %10s %10s %7s %11s %7s\n" "fio, $RUNTIME s a job" "zio IOPS" "nullb IOPS" "ratio" "floor IOPS" "ratio"
row "4k seq write QD1" 49 --rw=write --ioengine=psync --size=128M
row "4k seq write QD16" 49 --rw=write --ioengine=io_uring --iodepth=16 --size=128M
row "4k rand read QD16" 8 --rw=randread --ioengine=io_uring --iodepth=16 --size=128M
for job in \$(jobs -p); do
    kill -TERM "\$job"
    wait "\$job" || echo "zio serve exit status \$?"
done
echo "(zio serve --queues $QUEUES --depth $DEPTH; TCG VM, 2 vCPUs, Linux \$(uname -r))"
SCRIPT
