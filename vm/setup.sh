#!/usr/bin/env bash
# vm/setup.sh: prepare this machine for the VM tier (`./run-iotests.sh --vm`).
#
# Idempotent; with everything in place it only checks and prints one line
# per step. On Debian 12 (bookworm) it:
#   1. adds the bookworm-backports suite (same mirror and keyring as the
#      bookworm entry already configured) when it is missing;
#   2. installs qemu-system-x86 and qemu-utils from bookworm-backports
#      (bookworm's own qemu-system-x86 7.2 would remove qemu-utils 10.0.2),
#      busybox-static, cpio, xz-utils (6.12's modules are .ko.xz), fio,
#      btrfs-progs and f2fs-tools (the serve tests run fio, mkfs.btrfs and
#      mkfs.f2fs in the VM; the initramfs carries them from the host);
#   3. downloads each kernel package (apt-get download) into the cache and
#      unpacks it (dpkg -x), then points $CACHE/kernels/<series>/vmlinuz and
#      .../modules at its vmlinuz and lib/modules/<version> directory
#      (<series>: 6.1, 6.12), and $CACHE/vmlinuz and $CACHE/modules at the
#      first one's (the default kernel).
#
# Environment:
#   ZIO_VM_CACHE    cache directory [default: $HOME/.cache/zio-vm]
#   ZIO_VM_KERNEL   use this vmlinuz instead of the Debian packages
#   ZIO_VM_MODULES  ... with this lib/modules/<version> directory (null_blk,
#                   configfs, the NVMe and SCSI modules, as modules or built in)
#   ZIO_VM_KERNEL_PKGS  the kernel packages, the default kernel first
#                   [default: linux-image-6.1.0-56-amd64 (bookworm, pinned)
#                   linux-image-6.12.117+deb12-amd64 (bookworm-security)]
#
# Exit status: 0 ready, 1 a step failed, 2 not a Debian system (prints what
# to install instead).
set -euo pipefail

cache=${ZIO_VM_CACHE:-$HOME/.cache/zio-vm}
pkgs=${ZIO_VM_KERNEL_PKGS:-${ZIO_VM_KERNEL_PKG:-linux-image-6.1.0-56-amd64 linux-image-6.12.117+deb12-amd64}}
backports_file=/etc/apt/sources.list.d/zio-bookworm-backports.sources

step() { printf 'vm/setup: %s\n' "$*"; }
die() {
    printf 'vm/setup: error: %s\n' "$*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root for: $*"
    fi
}

# The version of an installed package, or nothing.
installed_version() {
    dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null |
        awk '$1 == "ii" { print $2 }' || true
}

if ! [ -r /etc/debian_version ] || ! command -v apt-get >/dev/null; then
    cat >&2 <<'EOF'
vm/setup: not a Debian system; install by hand:
  - qemu-system-x86_64 (QEMU 8 or later; TCG is enough) and qemu-img
  - a static busybox at /bin/busybox (or set ZIO_VM_BUSYBOX), and cpio, gzip
  - a Linux kernel with CONFIG_BLK_DEV_ZONED=y and null_blk (plus configfs,
    nvme for the ZNS tests) as modules or built in; then export
    ZIO_VM_KERNEL=/path/to/vmlinuz ZIO_VM_MODULES=/path/to/lib/modules/<version>
EOF
    exit 2
fi
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [ "$codename" != bookworm ]; then
    step "warning: tested on Debian bookworm, this is '${codename:-unknown}'"
fi

# --- 1. bookworm-backports --------------------------------------------------
# Its mirror and keyring come from the entry that already serves bookworm.
backports_configured() {
    grep -rqsE '(^|[[:space:]])bookworm-backports([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}
if backports_configured; then
    step "bookworm-backports: configured"
else
    mirror= keyring=
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        # deb822 stanzas: the first one whose Suites include bookworm.
        read -r mirror keyring < <(awk '
            BEGIN { RS = ""; FS = "\n" }
            {
                uri = ""; suites = ""; key = ""; types = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/)      { uri = $i;    sub(/^URIs:[ \t]*/, "", uri); sub(/[ \t].*/, "", uri) }
                    if ($i ~ /^Suites:/)    { suites = $i }
                    if ($i ~ /^Signed-By:/) { key = $i;    sub(/^Signed-By:[ \t]*/, "", key) }
                    if ($i ~ /^Types:/)     { types = $i }
                }
                if (types ~ /deb( |$)/ && suites ~ /[ \t]bookworm([ \t]|$)/ && uri != "") {
                    print uri, (key == "" ? "-" : key); exit
                }
            }' "$f") || true
        [ -n "$mirror" ] && break
    done
    if [ -z "$mirror" ] && [ -r /etc/apt/sources.list ]; then
        mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
        keyring=-
    fi
    [ -n "$mirror" ] || die "no apt source for bookworm found to copy the mirror from"
    step "bookworm-backports: adding $backports_file (mirror $mirror)"
    {
        echo "# Added by zio's vm/setup.sh: qemu-system-x86 10 for the VM tier."
        echo "Types: deb"
        echo "URIs: $mirror"
        echo "Suites: bookworm-backports"
        echo "Components: main"
        if [ "$keyring" != - ]; then echo "Signed-By: $keyring"; fi
    } | as_root tee "$backports_file" >/dev/null
    step "apt-get update"
    as_root apt-get update -qq
fi

# --- 2. packages ------------------------------------------------------------
missing=()
qemu_sys=$(installed_version qemu-system-x86)
case $qemu_sys in
    *bpo*) step "qemu-system-x86 $qemu_sys: installed" ;;
    *) missing+=(qemu-system-x86 qemu-utils) ;;
esac
for p in busybox-static cpio xz-utils fio btrfs-progs f2fs-tools; do
    v=$(installed_version "$p")
    if [ -n "$v" ]; then step "$p $v: installed"; else missing+=("$p"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    install_pkgs() {
        as_root apt-get install -y -qq --no-install-recommends \
            -t bookworm-backports "${missing[@]}" >/dev/null
    }
    if ! install_pkgs; then
        step "apt-get update (install failed, retrying with fresh lists)"
        as_root apt-get update -qq
        install_pkgs || die "apt-get install ${missing[*]} failed"
    fi
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 still missing"
step "$(qemu-system-x86_64 --version | head -n 1)"

# --- 3. kernel ----------------------------------------------------------------
mkdir -p "$cache"
if [ -n "${ZIO_VM_KERNEL:-}" ] || [ -n "${ZIO_VM_MODULES:-}" ]; then
    [ -f "${ZIO_VM_KERNEL:-}" ] || die "ZIO_VM_KERNEL=${ZIO_VM_KERNEL:-} is not a file"
    [ -d "${ZIO_VM_MODULES:-}" ] || die "ZIO_VM_MODULES=${ZIO_VM_MODULES:-} is not a directory"
    step "kernel: $ZIO_VM_KERNEL (ZIO_VM_KERNEL), modules $ZIO_VM_MODULES"
    exit 0
fi
# series VERSION: 6.1 for 6.1.0-56-amd64, 6.12 for 6.12.117+deb12-amd64.
series() {
    local v=${1%%[-+]*}
    echo "${v%.*}" | awk -F. '{ print $1 "." $2 }'
}
first=1
for pkg in $pkgs; do
    kver=${pkg#linux-image-}
    unpacked=$cache/$pkg
    if [ -f "$unpacked/boot/vmlinuz-$kver" ] && [ -d "$unpacked/lib/modules/$kver" ]; then
        step "kernel $pkg: cached in $unpacked"
    else
        step "kernel $pkg: downloading into $cache"
        rm -rf "$unpacked" "$cache"/"$pkg"_*.deb
        if ! (cd "$cache" && apt-get download -q "$pkg" >/dev/null 2>&1); then
            step "apt-get update (download failed, retrying with fresh lists)"
            as_root apt-get update -qq
            (cd "$cache" && apt-get download -q "$pkg" >/dev/null) || die "apt-get download $pkg failed"
        fi
        deb=$(ls "$cache"/"$pkg"_*.deb | head -n 1)
        step "kernel $pkg: unpacking $(basename "$deb")"
        tmp=$unpacked.tmp
        rm -rf "$tmp"
        dpkg -x "$deb" "$tmp"
        mv "$tmp" "$unpacked"
        rm -f "$deb"
    fi
    ser=$(series "$kver")
    mkdir -p "$cache/kernels/$ser"
    ln -sfn "../../$pkg/boot/vmlinuz-$kver" "$cache/kernels/$ser/vmlinuz"
    ln -sfn "../../$pkg/lib/modules/$kver" "$cache/kernels/$ser/modules"
    if [ "$first" = 1 ]; then
        ln -sfn "$pkg/boot/vmlinuz-$kver" "$cache/vmlinuz"
        ln -sfn "$pkg/lib/modules/$kver" "$cache/modules"
        first=0
    fi
    # Module files the VM needs, as a last check.
    for m in configfs null_blk nvme scsi_debug sd_mod; do
        if ! find -L "$cache/kernels/$ser/modules/" -name "$m.ko*" | grep -q .; then
            grep -qs "/$m.ko" "$cache/kernels/$ser/modules/modules.builtin" ||
                die "module $m not found in $cache/kernels/$ser/modules"
        fi
    done
    step "kernel $ser: $cache/kernels/$ser/vmlinuz, modules $cache/kernels/$ser/modules: ready"
done
