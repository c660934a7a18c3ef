#!/usr/bin/env bash
# One command for the benchmarks: bash benchmarks/run.sh [--quick] [--servers a,b] ...
# (same as python3 benchmarks/run.py; see benchmarks/README.md)
set -euo pipefail
exec python3 "$(dirname "$0")/run.py" "$@"
