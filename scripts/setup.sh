#!/usr/bin/env bash
# Installs what tracemark needs from Debian (when missing) and builds it.
# Usage: scripts/setup.sh [release|asan|clang]   (build folder: build/, build-asan/ or build-clang/)
# Used by both README commands and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config curl libssl-dev libyaml-dev libjansson-dev
          libopenblas-openmp-dev libcriterion-dev libutf8proc-dev libicu-dev libpcre2-dev
          chromium libmicrohttpd-dev libsqlite3-dev wordnet-base)
# The Python binding's tests (scripts/test-python.sh) and tests/reports_chromium.py (screenshots, net logs).
packages+=(python3 python3-pytest python3-pip python3-setuptools)
# clang builds (CI) and the libFuzzer harnesses (scripts/fuzz.sh): libFuzzer
# and clang's sanitizer runtimes come with libclang-rt-14-dev on Debian 12,
# OpenMP for clang with libomp-14-dev.
packages+=(clang libclang-rt-14-dev libomp-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

kind=${1:-release}
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan)    dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRACEMARK_SANITIZE=ON) ;;
  clang)   dir=build-clang; flags=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang) ;;
  *) echo "setup: unknown build kind '$kind' (release|asan|clang)" >&2; exit 2 ;;
esac
[ "${TRACEMARK_WERROR:-0}" = 1 ] && flags+=(-DTRACEMARK_WERROR=ON)
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
