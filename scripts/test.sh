#!/usr/bin/env bash
# Sets up, builds and runs every test (Criterion unit tests and end-to-end CLI
# tests, through ctest). Usage: scripts/test.sh [release|asan]
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
scripts/setup.sh "$kind"
dir=build
[ "$kind" = asan ] && dir=build-asan
export TRACEMARK_FIXTURES=$(scripts/fixtures.sh)
# Leaks are reported by ASan's LeakSanitizer; UBSan stops at the first error.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)"
