#!/usr/bin/env bash
# Installs the build tree into a scratch prefix (or unpacks the .deb into a scratch root), then
# builds and runs tests/consumer against it, with find_package and with pkg-config.
# Usage: run.sh <build-dir> install|deb
set -euo pipefail
build=$1
mode=$2
src=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if [ "$mode" = deb ]; then
  (cd "$build" && cpack -G DEB -B "$scratch/pkg" >/dev/null)
  deb=$(ls "$scratch"/pkg/*.deb | head -n 1)
  echo "package: $(basename "$deb")"
  dpkg-deb --info "$deb" | grep -E "Depends|Package|Version" || true
  dpkg-deb -x "$deb" "$scratch/root"
  prefix="$scratch/root/usr"
else
  cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
  prefix="$scratch/prefix"
fi
# the CMake package and the pkg-config file name their prefix; point both at the scratch copy
libdir=$(ls -d "$prefix"/lib* | head -n 1)
[ -d "$prefix/lib/x86_64-linux-gnu" ] && libdir="$prefix/lib/x86_64-linux-gnu"
for with in cmake pkgconfig; do
  out="$scratch/consumer-$with"
  PKG_CONFIG_PATH="$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR= \
    cmake -S "$src" -B "$out" -DCONSUMER_WITH=$with -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_RPATH="$libdir" >/dev/null
  PKG_CONFIG_PATH="$libdir/pkgconfig" cmake --build "$out" >/dev/null
  LD_LIBRARY_PATH="$libdir" "$out/consumer"
done
