#!/usr/bin/env bash
# Build zio and the iotests runner (release), then run the iotests.
# Usage: ./run-iotests.sh [options] [TEST...]   (see ./run-iotests.sh --help)
#        ./run-iotests.sh --vm [options] [TEST...]
#   runs the `realdev` tests in a Linux VM against /dev/nullb0 (and an NVMe
#   ZNS namespace) instead of emulated devices; run vm/setup.sh once first.
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q -p zio -p zio-iotests --manifest-path "$root/Cargo.toml"
# The runner names this script in rerun hints and finds iotests/ next to it.
export ZIO_IOTESTS_LAUNCHER=$0
exec "$target/release/zio-iotests" --zio "$target/release/zio" "$@"
