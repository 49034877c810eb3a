# Sourced by the benchmarks that run inside the VM tier. A benchmark there
# is a throwaway iotest: its script goes to stdin of vm_bench, whose
# output (the figures) is printed from the test's actual output, since it
# has no golden one.
#
#   . "$(dirname "$0")/vm-bench.sh"
#   vm_bench NAME <<SCRIPT
#   #!/usr/bin/env bash
#   # group: realdev
#   ...
#   SCRIPT

# vm_bench NAME: runs the test script on stdin as NAME in one boot of the
# VM tier (`run-iotests.sh --vm`) and prints what it printed.
vm_bench() {
    local name=$1 root work bad
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    work=$(mktemp -d)
    # shellcheck disable=SC2064 # expanded now: $work is local
    trap "rm -rf '$work'" EXIT
    mkdir "$work/tests"
    cp "$root/iotests/common.rc" "$work/tests/"
    cat > "$work/tests/$name"
    chmod +x "$work/tests/$name"
    : > "$work/tests/$name.out"
    "$root/run-iotests.sh" --vm --dir "$work/tests" --scratch "$work/scratch" "$name" > "$work/log" 2>&1 || true
    bad=$(find "$work/scratch" -name "$name*.out.bad" | head -n 1)
    if [ -z "$bad" ]; then
        cat "$work/log" >&2
        echo "bench: no output from the VM" >&2
        return 1
    fi
    grep -v '^QA output created' "$bad"
}
