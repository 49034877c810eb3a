#!/usr/bin/env bash
# tools/fetch-qemu-src.sh [DIR]: QEMU 10.0.2's source (the parts QEMU's
# qemu-iotests `check` needs: tests/qemu-iotests and python/) from Debian's
# orig tarball, extracted into DIR/qemu-10.0.2 [default: $ZIO_QEMU_SRC_CACHE
# or ~/.cache/zio-qemu-src]. Prints that directory. Idempotent: a tree
# already there is reused.
#
# The tarball comes from the bookworm-backports source suite through
# `apt-get source --download-only qemu` (a deb-src entry for it is added,
# with the mirror and keyring of the entry vm/setup.sh writes); it is checked
# against the SHA-256 that apt's source index gives. Needs root (or sudo)
# for the apt step.
set -euo pipefail

version=10.0.2
cache=${1:-${ZIO_QEMU_SRC_CACHE:-$HOME/.cache/zio-qemu-src}}
tree=$cache/qemu-$version
tarball=qemu_$version+ds.orig.tar.xz
src_list=/etc/apt/sources.list.d/zio-bookworm-backports-src.sources

die() { echo "fetch-qemu-src: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [[ -f $tree/tests/qemu-iotests/check && -d $tree/python/qemu ]]; then
    echo "$tree"
    exit 0
fi
mkdir -p "$cache"
cd "$cache"
if [[ ! -f $tarball ]]; then
    index=$(apt-cache showsrc qemu 2>/dev/null || true)
    if [[ $index != *"$tarball"* ]]; then
        # The deb822 entry that serves bookworm-backports binaries (vm/setup.sh
        # writes one), as a deb-src entry.
        bin=$(grep -lE '^Suites:.*[[:space:]]bookworm-backports([[:space:]]|$)' \
            /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v -- -src.sources | head -n 1 || true)
        [[ -n $bin ]] || die "no deb822 apt source for bookworm-backports: run vm/setup.sh first"
        sed -e 's/^Types: deb$/Types: deb-src/' \
            -e "s|^# Added by .*|# Added by zio's tools/fetch-qemu-src.sh: QEMU's source for its qemu-iotests.|" \
            "$bin" | as_root tee "$src_list" >/dev/null
        as_root apt-get update -qq
        index=$(apt-cache showsrc qemu)
    fi
    want=$(awk -v t="$tarball" '
        /^Checksums-Sha256:/ { on = 1; next } /^[^ ]/ { on = 0 }
        on && $3 == t && !done { print $1; done = 1 }' <<<"$index")
    [[ -n $want ]] || die "apt's source index has no $tarball"
    # The .dsc and .debian.tar of the newest upload may be missing from the
    # mirror (seen: 404) while the orig tarball, all this needs, is there:
    # judge by the tarball, not by apt-get's exit status.
    apt-get source --download-only -qq qemu >&2 || true
    [[ -f $tarball ]] || die "apt-get source did not fetch $tarball"
    echo "$want  $tarball" | sha256sum -c --quiet - || { rm -f "$tarball"; die "$tarball: bad checksum"; }
fi
rm -rf "$tree.part"
mkdir -p "$tree.part"
tar -xJf "$tarball" -C "$tree.part" --strip-components=1 \
    "qemu-$version/tests/qemu-iotests" "qemu-$version/python"
mv "$tree.part" "$tree"
echo "$tree"
