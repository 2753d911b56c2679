# Source this on a lent GPU machine (scripts/gpu_device_run.sh does): unpacks the Debian packages
# carried in .gpu/ into a private prefix and points the OpenCL loader, pkg-config, the compiler and
# CMake at it. NVIDIA's OpenCL driver comes with the machine's GPU driver. The machine's own
# /usr is left alone but for one link: CLBlast's CMake config names the loader by its Debian path.
here=${CLTAPE_GPU_DEBS:-$(pwd)/.gpu}
export CLTAPE_DEPS=${CLTAPE_DEPS:-/tmp/cltape-deps}
mkdir -p "$CLTAPE_DEPS/vendors"
for f in "$here"/*.deb; do dpkg -x "$f" "$CLTAPE_DEPS"; done
lib=$(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so\.1/{print $NF; exit}')
[ -n "$lib" ] || lib=$(find / -xdev -name 'libnvidia-opencl.so.1' 2>/dev/null | head -n 1)
echo "NVIDIA OpenCL driver: ${lib:-not found}"
echo "${lib:-libnvidia-opencl.so.1}" >"$CLTAPE_DEPS/vendors/nvidia.icd"
multiarch=usr/lib/x86_64-linux-gnu
export OCL_ICD_VENDORS="$CLTAPE_DEPS/vendors"
export PATH="$CLTAPE_DEPS/usr/bin:$PATH"
export LD_LIBRARY_PATH="$CLTAPE_DEPS/$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CMAKE_PREFIX_PATH="$CLTAPE_DEPS/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
# the unpacked .pc files say prefix=/usr: the sysroot puts their paths under the prefix
export PKG_CONFIG_PATH="$CLTAPE_DEPS/$multiarch/pkgconfig:$CLTAPE_DEPS/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$CLTAPE_DEPS"
export CPATH="$CLTAPE_DEPS/usr/include${CPATH:+:$CPATH}"
export LIBRARY_PATH="$CLTAPE_DEPS/$multiarch${LIBRARY_PATH:+:$LIBRARY_PATH}"
# the -dev packages' unversioned links point at absolute paths outside the prefix: repoint them
for l in "$CLTAPE_DEPS/$multiarch"/*.so; do
  t=$(readlink "$l" || true)
  case "$t" in /*) ln -sf "$(basename "$t")" "$l" ;; esac
done
[ -e /$multiarch/libOpenCL.so ] || { mkdir -p /$multiarch && ln -s "$CLTAPE_DEPS/$multiarch/libOpenCL.so.1" /$multiarch/libOpenCL.so; }
