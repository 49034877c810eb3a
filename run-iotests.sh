#!/usr/bin/env bash
# Build zio and the iotests runner (release), then run the iotests.
# Usage: ./run-iotests.sh [options] [TEST...]   (see ./run-iotests.sh --help)
#        ./run-iotests.sh --vm [options] [TEST...]
#   runs the `realdev` tests in a Linux VM against /dev/nullb0 (and an NVMe
#   ZNS namespace) instead of emulated devices; run vm/setup.sh once first.
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
# The build says what it does: at a terminal cargo's own progress; in a log
# (CI) one line first, then quiet (a fresh build takes minutes).
if [ -t 2 ]; then
    cargo build --release -p zio -p zio-iotests --manifest-path "$root/Cargo.toml"
else
    echo "run-iotests.sh: building zio and zio-iotests (cargo build --release)..." >&2
    cargo build --release -q -p zio -p zio-iotests --manifest-path "$root/Cargo.toml"
fi
# The runner names this script in rerun hints and finds iotests/ next to it.
export ZIO_IOTESTS_LAUNCHER=$0
exec "$target/release/zio-iotests" --zio "$target/release/zio" "$@"
