#!/usr/bin/env bash
# Installs the build tree into a scratch prefix (or unpacks the .deb packages into a scratch root),
# then builds and runs tests/consumer against it: with find_package and with pkg-config, as a
# machine without the private dependencies' development files would (the shared library needs
# none of them), and statically with them.
# Usage: run.sh <build-dir> install|deb
set -euo pipefail
build=$1
mode=$2
src=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "$mode" = deb ]; then
  (cd "$build" && cpack -G DEB -B "$scratch/pkg" >/dev/null)
  for name in libcltape0 libcltape-dev cltape-tools; do
    deb=$(ls "$scratch"/pkg/${name}_*.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] || fail "no package $name among: $(ls "$scratch/pkg")"
    echo "package: $(basename "$deb"): Depends: $(dpkg-deb -f "$deb" Depends)"
    dpkg-deb -x "$deb" "$scratch/root"
    dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$scratch/$name.files"
    dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/([^)]*)//g; s/ //g' >"$scratch/$name.depends"
  done
  # the split: the runtime holds the shared library only, the tools the programs
  grep -q '/libcltape\.so\.0$' "$scratch/libcltape0.files" || fail "libcltape0 lacks libcltape.so.0"
  ! grep -E '/include/|\.a$|\.pc$|cmake|/bin/' "$scratch/libcltape0.files" || fail "libcltape0 holds development files"
  for f in include/cltape.h include/cltape_cl.h include/cltape_dlpack.h libcltape.a libcltape.so \
           pkgconfig/cltape.pc cmake/cltape/cltapeConfig.cmake; do
    grep -q "/$f\$" "$scratch/libcltape-dev.files" || fail "libcltape-dev lacks $f"
  done
  for f in cltape-tour cltape-devices cltape-tune cltape-fashion-mnist; do
    grep -q "/bin/$f\$" "$scratch/cltape-tools.files" || fail "cltape-tools lacks $f"
  done
  # every package named in Depends exists (installed here, or one of ours), and the development
  # files the headers include and the static library links come from packages libcltape-dev depends on
  for name in libcltape0 libcltape-dev cltape-tools; do
    while read -r alts; do
      [ -n "$alts" ] || continue
      ok=0
      for p in ${alts//|/ }; do
        case $p in libcltape0|libcltape-dev) ok=1 ;; esac
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' && ok=1
      done
      [ $ok = 1 ] || fail "$name depends on '$alts', installed nowhere here"
    done <"$scratch/$name.depends"
  done
  arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
  for f in /usr/include/CL/cl.h /usr/include/dlpack/dlpack.h /usr/lib/$arch/pkgconfig/OpenCL.pc \
           /usr/lib/$arch/libOpenCL.so /usr/lib/$arch/libclblast.so /usr/lib/$arch/libnettle.so /usr/lib/$arch/libcjson.so \
           /usr/lib/$arch/libzip.so /usr/lib/$arch/libz.so; do
    owner=$(dpkg -S "$f" | head -n 1 | cut -d: -f1)
    tr '|' '\n' <"$scratch/libcltape-dev.depends" | grep -qx "$owner" || fail "$f comes from $owner, not a Depends of libcltape-dev"
  done
  prefix="$scratch/root/usr"
else
  cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
  prefix="$scratch/prefix"
fi
libdir=$(ls -d "$prefix"/lib* | head -n 1)
[ -d "$prefix/lib/x86_64-linux-gnu" ] && libdir="$prefix/lib/x86_64-linux-gnu"
[ -d "$prefix/lib/$(gcc -print-multiarch)" ] && libdir="$prefix/lib/$(gcc -print-multiarch)"

# pkg-config sees only cltape.pc and OpenCL.pc (what the headers need): no nettle, cJSON, libzip, zlib, CLBlast
mkdir -p "$scratch/pc-clean"
ln -s "$(pkg-config --variable=pcfiledir OpenCL)/OpenCL.pc" "$scratch/pc-clean/OpenCL.pc"
clean_pc="$libdir/pkgconfig:$scratch/pc-clean"
# find_package sees none of the private dependencies
clean_cmake=(-DCMAKE_DISABLE_FIND_PACKAGE_CLBlast=ON -DCMAKE_DISABLE_FIND_PACKAGE_ZLIB=ON
             -DCMAKE_DISABLE_FIND_PACKAGE_OpenCL=ON -DCMAKE_DISABLE_FIND_PACKAGE_Threads=ON)

for with in cmake pkgconfig cmake-static; do
  out="$scratch/consumer-$with"
  extra=()
  pcpath="$libdir/pkgconfig"
  [ $with = cmake ] && extra=("${clean_cmake[@]}")
  [ $with = pkgconfig ] && pcpath="$clean_pc"
  echo "consumer ($with):"
  PKG_CONFIG_LIBDIR="$pcpath" cmake -S "$src" -B "$out" -DCONSUMER_WITH=$with -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_RPATH="$libdir" "${extra[@]}" >"$scratch/log" 2>&1 || { cat "$scratch/log"; fail "configure $with"; }
  PKG_CONFIG_LIBDIR="$pcpath" cmake --build "$out" >"$scratch/log" 2>&1 || { cat "$scratch/log"; fail "build $with"; }
  LD_LIBRARY_PATH="$libdir" "$out/consumer"
done
if [ -e "$scratch/consumer-cmake-static/consumer" ] && readelf -d "$scratch/consumer-cmake-static/consumer" | grep -q 'libcltape\.so'; then
  fail "the static consumer links libcltape.so"
fi

# pkg-config --static names every library a static link needs
static_libs=$(PKG_CONFIG_LIBDIR="$libdir/pkgconfig:$(pkg-config --variable=pcfiledir OpenCL)" pkg-config --static --libs cltape)
for l in -lcltape -lclblast -lnettle -lcjson -lzip -lz -lOpenCL; do
  [[ " $static_libs " == *" $l "* ]] || fail "pkg-config --static --libs cltape lacks $l: $static_libs"
done
echo "pkg-config --static --libs cltape: $static_libs"

# the README's two examples, taken from its "Install and use" section, built the same way
readme="$src/../../README.md"
awk '/^## Install and use/{f=1;next} /^## /{f=0} f' "$readme" >"$scratch/install.md"
mkdir -p "$scratch/readme-cmake"
awk '/^```cmake/{f=1;next} /^```/{f=0} f' "$scratch/install.md" >"$scratch/readme-cmake/CMakeLists.txt"
grep -q 'find_package(cltape' "$scratch/readme-cmake/CMakeLists.txt" || fail "README has no find_package example"
cp "$src/main.c" "$scratch/readme-cmake/main.c"
echo "README find_package example:"
cmake -S "$scratch/readme-cmake" -B "$scratch/readme-cmake/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_RPATH="$libdir" "${clean_cmake[@]}" >"$scratch/log" 2>&1 || { cat "$scratch/log"; fail "configure README example"; }
cmake --build "$scratch/readme-cmake/build" >"$scratch/log" 2>&1 || { cat "$scratch/log"; fail "build README example"; }
LD_LIBRARY_PATH="$libdir" "$scratch/readme-cmake/build/app"
cc_line=$(grep -m1 '^cc .*pkg-config' "$scratch/install.md") || fail "README has no pkg-config example"
echo "README pkg-config example: $cc_line"
(cd "$scratch/readme-cmake" && PKG_CONFIG_LIBDIR="$clean_pc" bash -euo pipefail -c "$cc_line")
LD_LIBRARY_PATH="$libdir" "$scratch/readme-cmake/app"
