#!/usr/bin/env bash
# cltape on a lent NVIDIA GPU through NVIDIA's OpenCL: the tour, `cltape-devices --check` and the
# benchmarks, results written to $OUT (the device tool brings that folder back). Two steps:
#
#   scripts/gpu_device_run.sh prepare    here, once: downloads the Debian packages the build needs
#                                        into .gpu/ (ignored by git: .gitignore)
#   scripts/gpu_device_run.sh            on the GPU machine, from the project's root, with .gpu
#                                        carried: builds without the tests (no Criterion there)
#                                        and runs; each step under a timeout, 12 minutes in all
#
# Then copy $OUT's files into docs/portability-gpu/ and run scripts/portability_doc.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = prepare ]; then
  set -e
  mkdir -p .gpu
  # every library CMakeLists.txt requires (find_package, pkg_check_modules), with its runtime
  # package, and pkg-config itself
  (cd .gpu && apt-get download ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-c-headers opencl-clhpp-headers \
     libclblast1 libclblast-dev libcjson1 libcjson-dev libzip4 libzip-dev nettle-dev libnettle8 libhogweed6 libgmp10 zlib1g zlib1g-dev \
     libdlpack-dev pkgconf pkgconf-bin libpkgconf3 pkg-config)
  echo "gpu_device_run: $(ls .gpu/*.deb | wc -l) packages in .gpu/; run with carry [\".gpu\"]"
  exit 0
fi

OUT=${OUT:-/tmp/cltape-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
step() { # name, seconds, command...: runs one step under a timeout, notes its status and time
  local name=$1 secs=$2 start rc
  shift 2
  start=$(date +%s)
  echo "== $name"
  timeout "$secs" "$@"
  rc=$?
  echo "== $name: exit $rc, $(($(date +%s) - start)) s" | tee -a "$OUT/steps.txt"
  return $rc
}
. scripts/gpu_opencl_env.sh
nvidia-smi -L >"$OUT/gpu.txt" 2>&1 || true
b=/tmp/cltape-gpu-build
step configure 90 cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release -DCLTAPE_BUILD_TESTS=OFF >"$OUT/configure.txt" 2>&1 ||
  { tail -30 "$OUT/configure.txt"; exit 1; }
step build 180 cmake --build "$b" -j"$(nproc)" --target cltape-devices cltape-tour bench_cltape >"$OUT/build.txt" 2>&1 ||
  { tail -30 "$OUT/build.txt"; exit 1; }
export CLTAPE_DEVICE=gpu CLTAPE_CACHE_DIR="$OUT/cache"
step devices 30 "$b/tools/cltape-devices" >"$OUT/devices.txt" 2>&1
cat "$OUT/devices.txt"
step check 150 "$b/tools/cltape-devices" --check gpu >"$OUT/check.txt" 2>"$OUT/check.err"
tail -3 "$OUT/check.txt"
step tour 90 "$b/examples/tour/cltape-tour" --out "$OUT/tour" >"$OUT/tour.txt" 2>&1
tail -3 "$OUT/tour.txt"
step bench 180 "$b/bench/bench_cltape" --device gpu --repeats 5 --warmup 2 --no-start >"$OUT/bench.jsonl" 2>"$OUT/bench.err"
tail -5 "$OUT/bench.jsonl"
rm -rf "$OUT/cache"
cat "$OUT/steps.txt"
