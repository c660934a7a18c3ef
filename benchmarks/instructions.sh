#!/usr/bin/env bash
# Instructions per echoed message on the hot path, counted by callgrind: exact
# and repeatable on a shared, noisy machine (unlike times). Runs the
# micro-benchmark with two read counts and divides the difference.
#   bash benchmarks/instructions.sh [--text]
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(python -c "import sys; print(sys.executable)")
count() {
    local reads=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$py" benchmarks/micro_hotpath.py --reads "$reads" "$@" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
small=$(count 100 "$@")
large=$(count 600 "$@")
echo "instructions per message: $(( (large - small) / (500 * 64) )) $*"
