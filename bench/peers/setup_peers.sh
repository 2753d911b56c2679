#!/usr/bin/env bash
# Installs the systems the benchmarks compare cltape with, when they are missing. Safe to run again.
#   - PyTorch from Debian (python3-torch; it runs under /usr/bin/python3)
#   - OpenBLAS (libopenblas-dev) for the SGEMM baseline
#   - TensorFlow (CPU build) and JAX (jax[cpu]) from PyPI into bench/.venv, made with /usr/bin/python3
# A peer that cannot be installed (no network, no wheel) is reported and skipped; the runner then
# shows "n/a" for it. Exit status is 0 unless apt itself is broken.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${CLTAPE_BENCH_VENV:-$(cd "$here/.." && pwd)/.venv}"
tf_pkg="${CLTAPE_BENCH_TF:-tensorflow-cpu}"
jax_pkg="${CLTAPE_BENCH_JAX:-jax[cpu]}"

pkgs=(python3-torch libopenblas-dev python3-venv clinfo)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup_peers: installing ${missing[*]}"
  $sudo apt-get update -qq || echo "setup_peers: apt-get update failed" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    echo "setup_peers: could not install ${missing[*]}; those peers will be skipped" >&2
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "setup_peers: creating $venv"
  /usr/bin/python3 -m venv "$venv" || { echo "setup_peers: cannot create $venv; TensorFlow and JAX skipped" >&2; exit 0; }
fi
if ! "$venv/bin/python" -c "import tensorflow" >/dev/null 2>&1; then
  echo "setup_peers: installing $tf_pkg into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$tf_pkg" ||
    echo "setup_peers: $tf_pkg could not be installed (no route to PyPI?); TensorFlow skipped" >&2
fi
if ! "$venv/bin/python" -c "import jax" >/dev/null 2>&1; then
  echo "setup_peers: installing $jax_pkg into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$jax_pkg" ||
    echo "setup_peers: $jax_pkg could not be installed (no route to PyPI?); JAX skipped" >&2
fi
exit 0
