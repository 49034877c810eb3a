#!/usr/bin/env bash
# Inside the VM tier, in one boot: `zone_report` of all 1,000 zones of a
# default null_blk (`modprobe null_blk zoned=1`) with zio, with util-linux's
# `blkzone report`, and with `qemu-io -c 'zrp 0 1000'` (both carried into
# the initramfs like zio). Prints the best of R runs of each and zio's
# ratio to each (target: <= 1.0). Needs vm/setup.sh done.
#
#   bench/vm-zone-report.sh            # R=20 by default
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
R=${R:-20}
. "$root/bench/vm-bench.sh"
vm_bench zrp-bench <<SCRIPT
#!/usr/bin/env bash
# group: realdev
# nullb: zoned=1
. ./common.rc
dev=\$TEST_DEV
[ -n "\$dev" ] || { echo "not in the VM"; exit 1; }
best() { # best wall time of R runs of a command, in microseconds
    local b=999999999 i t0 t1 d
    for i in \$(seq $R); do
        t0=\${EPOCHREALTIME/./}; "\$@" > /dev/null 2>&1; t1=\${EPOCHREALTIME/./}
        d=\$((t1 - t0)); [ \$d -lt \$b ] && b=\$d
    done
    echo \$b
}
z=\$(best "\$ZIO" --image-opts -c 'zrp 0 1000' driver=host_device,filename=\$dev)
b=\$(best blkzone report "\$dev")
q=\$(best qemu-io --image-opts -n -c 'zrp 0 1000' driver=host_device,filename=\$dev)
echo "lines: zio \$("\$ZIO" --image-opts -c 'zrp 0 1000' driver=host_device,filename=\$dev | wc -l)," \
     "blkzone \$(blkzone report "\$dev" | wc -l), qemu-io \$(qemu-io --image-opts -n -c 'zrp 0 1000' driver=host_device,filename=\$dev | wc -l)"
awk -v z=\$z -v b=\$b -v q=\$q 'BEGIN {
    printf "zone_report of 1000 zones, best of $R (TCG VM): zio %.1f ms, blkzone %.1f ms, qemu-io %.1f ms\n", z/1000, b/1000, q/1000
    printf "ratio zio/blkzone %.2f, zio/qemu-io %.2f\n", z/b, z/q
}'
SCRIPT
