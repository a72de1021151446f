#!/usr/bin/env bash
# Installs the C library into a temporary prefix (cmake --install), installs
# the Python package from python/ with pip (offline, no build isolation, into
# a folder of its own: no virtual environment, nothing outside the temporary
# folder touched), and runs python/tests with Debian's pytest against that
# installed tree, printing pytest's summary. The binding finds the library
# through pkg-config, as a user's would. Usage: scripts/test-python.sh
# [BUILD_DIR] [pytest args...] (default build/). Exit 77 (ctest: skipped)
# when Debian's python3 has no pytest or pip. Registered in ctest as
# python_binding.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
shift || true
python=${TRACEMARK_PYTHON:-/usr/bin/python3}
for module in pytest pip setuptools; do
  if ! "$python" -c "import $module" 2>/dev/null; then
    echo "test-python: $python has no $module (apt-get install python3-pytest python3-pip python3-setuptools): skipped" >&2
    exit 77
  fi
done
export TRACEMARK_FIXTURES=${TRACEMARK_FIXTURES:-$("$root/scripts/fixtures.sh")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log" >&2; exit 1; }
libdir=$(dirname "$(find "$prefix" -name libtracemark.so | head -1)")
# pip builds in the source folder: give it a copy, so the checkout stays clean.
cp -r "$root/python" "$work/src"
"$python" -m pip install --quiet --no-build-isolation --no-index --no-deps --disable-pip-version-check \
  --root-user-action=ignore --target "$work/site" "$work/src" || { echo "test-python: pip install failed" >&2; exit 1; }

export PYTHONPATH=$work/site
export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export TRACEMARK_CLI=$prefix/bin/tracemark
export TRACEMARK_EXPECT_PREFIX=$prefix TRACEMARK_EXPECT_SITE=$work/site
unset TRACEMARK_LIBRARY
# From a folder of its own, so that python/ in the checkout is not importable.
cd "$work"
"$python" -m pytest -p no:cacheprovider -rs "$@" "$root/python/tests"
