#!/usr/bin/env bash
# Installs what is missing, builds cltape and runs the tour of the guide on the default device.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
build=${CLTAPE_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target cltape-tour >/dev/null
exec "$build/examples/tour/cltape-tour" --out "$build/tour" "$@"
