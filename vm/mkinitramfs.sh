#!/usr/bin/env bash
# vm/mkinitramfs.sh OUT ZIO IOTESTS MODULES: build the base initramfs of the
# VM tier (gzip'd newc cpio) at OUT. Run by `zio-iotests --vm` once per run;
# each boot appends a small uncompressed archive with /etc/zio-vm/group.
#
#   ZIO      the zio binary (the host's release build)
#   IOTESTS  the iotests directory (scripts and common.rc; no .out files)
#   MODULES  the kernel's lib/modules/<version> directory
#
# Contents: busybox (ZIO_VM_BUSYBOX, default /bin/busybox, static) with its
# applet links; bash and zio with their ldd libraries at the same paths,
# and so blkzone, qemu-io, fio, mkfs.btrfs, mkfs.f2fs and util-linux's
# setpriv where the host has them;
# vm/init as /init; the modules configfs, null_blk, nvme and the SCSI
# stack (sd_mod, sg, scsi_debug) and ublk_drv where the kernel has it,
# btrfs and f2fs where the kernel has them (not loaded at boot),
# with the modules they depend on (read from
# each module's .modinfo), uncompressed, under /lib/modules/zio with their
# load order in /etc/zio-vm/modules.*. A module that is missing but listed
# in modules.builtin is skipped.
set -euo pipefail

[ $# -eq 4 ] || {
    echo "usage: $0 OUT ZIO IOTESTS MODULES" >&2
    exit 2
}
out=$1 zio=$2 iotests=$3 modules=$4
here=$(cd "$(dirname "$0")" && pwd)
busybox=${ZIO_VM_BUSYBOX:-/bin/busybox}

die() {
    echo "mkinitramfs: $*" >&2
    exit 1
}
[ -x "$busybox" ] || die "no busybox at $busybox (install busybox-static: vm/setup.sh)"
[ -d "$modules" ] || die "no modules directory $modules"
command -v cpio >/dev/null || die "no cpio (vm/setup.sh installs it)"

root=$out.root
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,etc/zio-vm,lib/modules/zio,opt/zio,iotests,scratch,tmp,root}

# busybox and its applets (bash stays the real one).
cp "$busybox" "$root/bin/busybox"
"$busybox" --list-full | while read -r applet; do
    case ${applet##*/} in busybox | bash) continue ;; esac
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done

# copy_with_libs FILE DEST: FILE at DEST in the image, and its libraries
# (from ldd) at their own paths.
copy_with_libs() {
    install -D -m 0755 "$1" "$root$2"
    { ldd "$1" || true; } | awk '/=> \// { print $3 } /^[ \t]*\// { print $1 }' | while read -r lib; do
        [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done
}
copy_with_libs "$(command -v bash)" /bin/bash
copy_with_libs "$zio" /opt/zio/zio
# `zio` on PATH too, for --vm-shell and --vm-exec (tests use $ZIO).
ln -s /opt/zio/zio "$root/usr/bin/zio"
# Reference tools for bench/vm-zone-report.sh, and fio for the serve tests,
# when the host has them.
for tool in blkzone qemu-io fio; do
    p=$(command -v "$tool" 2>/dev/null) && copy_with_libs "$p" "/usr/bin/$tool"
done
# Zoned file systems on `zio serve` devices (realdev-serve-fs), and
# util-linux's setpriv (busybox's cannot change the user) to run zio as
# nobody, when the host has them: vm/setup.sh installs btrfs-progs and
# f2fs-tools. They replace any busybox applet of the same name.
for tool in mkfs.btrfs mkfs.f2fs setpriv; do
    p=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$tool" 2>/dev/null) || continue
    rm -f "$root/usr/sbin/$tool" "$root/usr/bin/$tool" "$root/sbin/$tool" "$root/bin/$tool"
    copy_with_libs "$p" "/usr/sbin/$tool"
done

install -m 0755 "$here/init" "$root/init"
install -m 0755 "$here/agent" "$root/agent"

# The tests: scripts, helpers and any data directories, not the expected
# output (the host compares it).
cp -pR "$iotests/." "$root/iotests/"
find "$root/iotests" \( -name '*.out' -o -name '*.out.*' \) -type f -delete

# find_module NAME: the module file of NAME (- and _ are the same).
find_module() {
    local a=${1//-/_} b=${1//_/-}
    find -L "$modules/kernel" \( -name "$a.ko" -o -name "$a.ko.*" -o -name "$b.ko" -o -name "$b.ko.*" \) \
        -print -quit 2>/dev/null
}
is_builtin() {
    local a=${1//-/_} b=${1//_/-}
    grep -qsE "/($a|$b)\.ko\$" "$modules/modules.builtin"
}
# module_file NAME: the uncompressed module NAME in the image (decompressed
# once); prints nothing for a built-in or missing module.
module_file() {
    local m=$1 f dest=$root/lib/modules/zio/$1.ko
    if [ ! -f "$dest" ]; then
        f=$(find_module "$m")
        [ -n "$f" ] || return 0
        case $f in
            *.ko) cp "$f" "$dest" ;;
            *.ko.xz) xz -dc "$f" >"$dest" ;;
            *.ko.zst) zstd -qdc "$f" >"$dest" ;;
            *.ko.gz) gzip -dc "$f" >"$dest" ;;
            *) die "unknown module compression: $f" ;;
        esac
    fi
    echo "$dest"
}
# add_module LIST NAME: ship NAME and, first, the modules it depends on
# (its .modinfo `depends=`, so no depmod output is needed), each listed
# once in LIST in load order.
add_module() {
    local list=$1 m=${2//-/_} f dep
    grep -qxF "$m" "$list" 2>/dev/null && return 0
    f=$(module_file "$m")
    if [ -z "$f" ]; then
        is_builtin "$m" || echo "mkinitramfs: warning: module $m not found in $modules" >&2
        return 0
    fi
    for dep in $(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' '); do
        add_module "$list" "$dep"
    done
    echo "$m" >>"$list"
}
# add_modules LIST NAME...: ship each module with its dependencies, listed
# in /etc/zio-vm/LIST in load order. A NAME written ?NAME is shipped if the
# kernel has it as a module, silently skipped if not: the CRC algorithm
# providers crc-t10dif and crc64-rocksoft look up at load time (no modprobe
# runs in the VM), modules on 6.1 and built in on 6.12.
add_modules() {
    local list=$root/etc/zio-vm/$1 m
    shift
    : >"$list"
    for m in "$@"; do
        case $m in
            \?*) [ -z "$(find_module "${m#?}")" ] || add_module "$list" "${m#?}" ;;
            *) add_module "$list" "$m" ;;
        esac
    done
}
crc_providers=("?crct10dif_generic" "?crc64_rocksoft_generic")
add_modules modules.configfs configfs
add_modules modules.nullb null_blk
add_modules modules.nvme "${crc_providers[@]}" nvme
add_modules modules.scsi "${crc_providers[@]}" sd_mod sg scsi_debug
# ublk_drv for `zio serve` (zoned from Linux 6.6): loaded at boot where
# the kernel has it as a module.
add_modules modules.ublk "?ublk_drv"
# The zoned file systems, not loaded at boot (raid6_pq and xor benchmark
# themselves as they load, seconds under TCG): a test that needs one loads
# its list with _load_vm_modules (iotests/common.rc). First the crypto
# providers each looks up at mount (or, libcrc32c, at load) time, which
# only a modprobe would pull in: btrfs's checksums (crc32c, and xxhash64 and
# blake2b for the other checksum types) and f2fs's crc32.
add_modules modules.btrfs "?crc32c_generic" "?xxhash_generic" "?blake2b_generic" "?btrfs"
add_modules modules.f2fs "?crc32_generic" "?f2fs"

(cd "$root" && find . -print | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
rm -rf "$root"
