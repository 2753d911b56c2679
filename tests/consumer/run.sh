#!/usr/bin/env bash
# Installs the build tree into a scratch prefix (or unpacks the .deb packages into a scratch root),
# then builds and runs tests/consumer against it: with find_package and with pkg-config, as a
# machine without the private dependencies' development files would (the shared library needs
# none of them), and statically with them.
# Both ways, the library lies in Debian's multiarch directory (lib/x86_64-linux-gnu) and no
# installed program or library carries an RPATH or RUNPATH.
# Usage: run.sh <build-dir> install|deb
# Environment (set by ctest): CLTAPE_TOOLS, the programs the build installs; CLTAPE_LIBDIR, its
# library directory under the prefix; CLTAPE_DIST, whether it installs cltape_dist ("mpi": with its
# MPI part, "replicas": without, "": not built), which is then built against too.
set -euo pipefail
build=$1
mode=$2
src=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
tools=${CLTAPE_TOOLS-cltape-tour cltape-devices cltape-tune cltape-fashion-mnist}
libdir_rel=${CLTAPE_LIBDIR-lib/$arch}
dist=${CLTAPE_DIST-}
[ "$libdir_rel" = "lib/$arch" ] || fail "the build installs libraries into $libdir_rel, not lib/$arch"

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
  grep -qx "/usr/lib/$arch/libcltape\.so\.0" "$scratch/libcltape0.files" || fail "libcltape0 lacks /usr/lib/$arch/libcltape.so.0"
  ! grep -E '^/usr/lib/[^/]+$' "$scratch/libcltape0.files" "$scratch/libcltape-dev.files" ||
    fail "a package puts a file straight into /usr/lib, not /usr/lib/$arch"
  ! grep -E '/include/|\.a$|\.pc$|cmake|/bin/' "$scratch/libcltape0.files" || fail "libcltape0 holds development files"
  for f in include/cltape.h include/cltape_cl.h include/cltape_dlpack.h lib/$arch/libcltape.a lib/$arch/libcltape.so \
           lib/$arch/pkgconfig/cltape.pc lib/$arch/cmake/cltape/cltapeConfig.cmake; do
    grep -qx "/usr/$f" "$scratch/libcltape-dev.files" || fail "libcltape-dev lacks /usr/$f"
  done
  if [ -n "$dist" ]; then
    for f in include/cltape_dist.h lib/$arch/libcltape_dist.a lib/$arch/pkgconfig/cltape_dist.pc \
             lib/$arch/cmake/cltape/cltapeDistTargets.cmake; do
      grep -qx "/usr/$f" "$scratch/libcltape-dev.files" || fail "libcltape-dev lacks /usr/$f"
    done
    if [ "$dist" = mpi ]; then
      grep -qx libopenmpi-dev "$scratch/libcltape-dev.depends" || fail "libcltape-dev does not depend on libopenmpi-dev"
    fi
  fi
  for f in $tools; do
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
  for f in /usr/include/CL/cl.h /usr/include/dlpack/dlpack.h /usr/lib/$arch/pkgconfig/OpenCL.pc \
           /usr/lib/$arch/libOpenCL.so /usr/lib/$arch/libclblast.so /usr/lib/$arch/libnettle.so /usr/lib/$arch/libcjson.so \
           /usr/lib/$arch/libzip.so /usr/lib/$arch/libz.so; do
    owner=$(dpkg -S "$f" | head -n 1 | cut -d: -f1)
    tr '|' '\n' <"$scratch/libcltape-dev.depends" | grep -qx "$owner" || fail "$f comes from $owner, not a Depends of libcltape-dev"
  done
  # lintian, where installed: no error or warning beyond those the packages knowingly have (no
  # copyright file or changelog yet, no manual pages; CPack's own maintainer scripts call ldconfig
  # beside the ldconfig trigger)
  if command -v lintian >/dev/null; then
    known='no-copyright-file|no-changelog|no-manual-page|maintscript-calls-ldconfig'
    lintian --tag-display-limit 0 "$scratch"/pkg/*.deb >"$scratch/lintian" 2>&1 || true
    if grep -E '^[EW]: ' "$scratch/lintian" | grep -vE "^[EW]: [^:]+: ($known)( |\$)"; then
      fail "lintian: tags above"
    fi
    echo "lintian: $(grep -cE '^[EW]: ' "$scratch/lintian") known tags, nothing else"
  fi
  prefix="$scratch/root/usr"
else
  cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
  prefix="$scratch/prefix"
fi
libdir="$prefix/lib/$arch"
[ -e "$libdir/libcltape.so.0" ] || fail "no $libdir/libcltape.so.0: $(cd "$prefix" && find . -name 'libcltape*')"
for f in $tools; do
  [ -x "$prefix/bin/$f" ] || fail "$f is not installed"
done
# no RPATH or RUNPATH in anything installed: programs and libraries find theirs on the system's path
elves=0
while IFS= read -r -d '' f; do
  head -c 4 "$f" | grep -q 'ELF' || continue
  elves=$((elves + 1))
  if readelf -d "$f" | grep -E '\((RPATH|RUNPATH)\)'; then fail "$f carries an RPATH or RUNPATH"; fi
done < <(find "$prefix" -type f -print0)
[ $elves -ge 2 ] || fail "found only $elves ELF files to check under $prefix"
echo "no RPATH or RUNPATH in $elves ELF files; the library in lib/$arch"

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
# cltape_dist, when installed: through its CMake component and through cltape_dist.pc
if [ -n "$dist" ]; then
  dist_pc="$libdir/pkgconfig:$(pkg-config --variable=pcfiledir OpenCL)"
  [ "$dist" = mpi ] && dist_pc="$dist_pc:$(pkg-config --variable=pcfiledir ompi-c)"
  for with in dist-cmake dist-pkgconfig; do
    out="$scratch/consumer-$with"
    echo "consumer ($with):"
    PKG_CONFIG_LIBDIR="$dist_pc" cmake -S "$src" -B "$out" -DCONSUMER_WITH=$with -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_RPATH="$libdir" >"$scratch/log" 2>&1 || { cat "$scratch/log"; fail "configure $with"; }
    PKG_CONFIG_LIBDIR="$dist_pc" cmake --build "$out" >"$scratch/log" 2>&1 || { cat "$scratch/log"; fail "build $with"; }
    LD_LIBRARY_PATH="$libdir" "$out/consumer" | tee "$scratch/log"
    if [ "$dist" = mpi ]; then grep -q 'MPI part' "$scratch/log" || fail "$with: cltape_dist.h without its MPI part"; fi
  done
fi
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
