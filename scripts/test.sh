#!/usr/bin/env bash
# Builds cltape and runs the whole test suite twice, on the two OpenCL implementations Debian
# ships: PoCL's CPU device, then Mesa's rusticl on llvmpipe (a second implementation, without
# float64). Each run starts with the device it runs on and ends with the tests it skipped and why.
# CLTAPE_DEVICE picks the first run's device (default: cpu); CLTAPE_RUSTICL=0 leaves out the second.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
build=${CLTAPE_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLTAPE_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"

# suite NAME [ctest arguments]: one run of the suite on the device CLTAPE_DEVICE selects
suite() {
  local name=$1 rc=0 t0 log="$build/Testing/Temporary/LastTest.log"
  shift
  echo "== test suite on $name: $("$build/tools/cltape-devices" --brief | grep -P '\t\*$' | cut -f1-7 | tr '\t' ' ')"
  t0=$(date +%s)
  ctest --test-dir "$build" --output-on-failure "$@" || rc=$?
  local skips passed
  skips=$(grep -h '^\[SKIP\]' "$log" || true)
  # Criterion's per-program synthesis: "Tested: N | Passing: P | Failing: F | Crashing: C"
  passed=$(grep -h 'Synthesis: Tested' "$log" | awk -F'[:|]' '{p += $5; f += $7 + $9} END {printf "%d passed, %d failed", p, f}')
  echo "== $name: tests $passed, $(printf '%s' "$skips" | grep -c . || true) skipped; $(($(date +%s) - t0)) s, exit status $rc"
  [ -z "$skips" ] || printf '%s\n' "$skips" | sed 's/^\[SKIP\] /   /'
  return $rc
}

export CLTAPE_DEVICE=${CLTAPE_DEVICE:-cpu}
status=0
suite "PoCL" || status=1

if [ "${CLTAPE_RUSTICL:-1}" != 0 ]; then
  # rusticl alone: an ICD folder holding only its .icd file, and llvmpipe enabled
  icd=$(mktemp -d)
  trap 'rm -rf "$icd"' EXIT
  cp /etc/OpenCL/vendors/rusticl.icd "$icd/"
  export OCL_ICD_VENDORS=$icd RUSTICL_ENABLE=llvmpipe CLTAPE_DEVICE=llvmpipe
  # packaging, exported symbols and the API docs do not depend on the device. Not run here: the
  # tuner's tests (test_tune, ~90 s: its search and store; three of its cases fail on llvmpipe,
  # where the CLBlast parameters they store ask for more local memory than the device has, status
  # -2046, and where the default engine is CLBlast although the device is a CPU), and the LSTM
  # example's training run (example_lstm_add: 12 s of CPU time on PoCL, about 420 s on llvmpipe;
  # test_nn_rnn checks the LSTM and GRU layers on this device)
  suite "rusticl (llvmpipe)" -E '^(package_install|package_deb|exported_symbols|api_docs|test_tune|example_lstm_add)$' || status=1
  # the tour of the guide: 20 of 20 cases on this implementation too
  if "$build/examples/tour/cltape-tour" --out "$build/tour-rusticl" >"$build/tour-rusticl.log" 2>&1; then
    echo "== rusticl (llvmpipe): tour: $(tail -n 1 "$build/tour-rusticl.log")"
  else
    echo "== rusticl (llvmpipe): the tour FAILED:"
    tail -n 20 "$build/tour-rusticl.log"
    status=1
  fi
fi
exit $status
