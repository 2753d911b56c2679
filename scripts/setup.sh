#!/usr/bin/env bash
# Installs what cltape needs on Debian 12 that is not there yet. Safe to run again.
set -euo pipefail
pkgs=(build-essential cmake pkg-config ocl-icd-opencl-dev opencl-c-headers pocl-opencl-icd clinfo
      libclblast-dev libopenblas-dev libcriterion-dev zlib1g-dev libcjson-dev nettle-dev libzip-dev libdlpack-dev doxygen dataset-fashion-mnist
      oclgrind valgrind clang libclang-rt-14-dev mesa-opencl-icd
      clang-15 libclc-15 python3 python3-torch python3-numpy
      libcairo2-dev libexpat1-dev   # the examples' plots (cairo), their tests (expat reads the SVG)
      libopenmpi-dev openmpi-bin    # data-parallel training over MPI (cltape_dist; optional at build time)
      file                          # CPack reads the library's soname for the package's shlibs file
      fortunes fortunes-min)        # the text examples/char_lm learns from (/usr/share/games/fortunes)
pkgs+=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
