#!/usr/bin/env bash
# Builds cltape and runs the whole test suite on the OpenCL CPU device (PoCL).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
build=${CLTAPE_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLTAPE_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
export CLTAPE_DEVICE=${CLTAPE_DEVICE:-cpu}
ctest --test-dir "$build" --output-on-failure
