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
# applet links; bash and zio with their ldd libraries at the same paths;
# vm/init as /init; the modules configfs, null_blk and the NVMe stack
# (crct10dif_common crct10dif_generic crc-t10dif crc64 crc64-rocksoft
# crc64_rocksoft_generic t10-pi nvme-core nvme), uncompressed, under
# /lib/modules/zio with their load order in /etc/zio-vm/modules.*.
# A module that is missing but listed in modules.builtin is skipped.
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
# Reference tools for bench/vm-zone-report.sh, when the host has them.
for tool in blkzone qemu-io; do
    p=$(command -v "$tool" 2>/dev/null) && copy_with_libs "$p" "/usr/bin/$tool"
done

install -m 0755 "$here/init" "$root/init"

# The tests: scripts, helpers and any data directories, not the expected
# output (the host compares it).
cp -pR "$iotests/." "$root/iotests/"
find "$root/iotests" \( -name '*.out' -o -name '*.out.bad' \) -type f -delete

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
# add_modules LIST NAME...: ship each module and list it in LIST.
add_modules() {
    local list=$root/etc/zio-vm/$1 m f
    shift
    : >"$list"
    for m in "$@"; do
        f=$(find_module "$m")
        if [ -z "$f" ]; then
            is_builtin "$m" || echo "mkinitramfs: warning: module $m not found in $modules" >&2
            continue
        fi
        case $f in
            *.ko) cp "$f" "$root/lib/modules/zio/$m.ko" ;;
            *.ko.xz) xz -dc "$f" >"$root/lib/modules/zio/$m.ko" ;;
            *.ko.zst) zstd -qdc "$f" >"$root/lib/modules/zio/$m.ko" ;;
            *.ko.gz) gzip -dc "$f" >"$root/lib/modules/zio/$m.ko" ;;
            *) die "unknown module compression: $f" ;;
        esac
        echo "$m" >>"$list"
    done
}
add_modules modules.configfs configfs
add_modules modules.nullb null_blk
add_modules modules.nvme crct10dif_common crct10dif_generic crc-t10dif crc64 crc64-rocksoft \
    crc64_rocksoft_generic t10-pi nvme-core nvme

(cd "$root" && find . -print | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
rm -rf "$root"
