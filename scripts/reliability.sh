#!/usr/bin/env bash
# Reliability checks beyond the test suite (docs/reliability.md), run by CI after scripts/test.sh:
#   asan      the library and every test built with AddressSanitizer + UndefinedBehaviorSanitizer,
#             the suite run on PoCL (leak suppressions: tests/sanitizers/lsan.supp)
#   valgrind  memcheck over the tour: no definite or indirect leak, no invalid access
#             (suppressions for PoCL/LLVM internals: tests/sanitizers/valgrind.supp)
#   oclgrind  every kernel family on tiny odd shapes in the OpenCL simulator, with out-of-bounds,
#             data-race and uninitialized-value checks: zero reports
#   fuzz      the libFuzzer harnesses of tests/fuzz, CLTAPE_FUZZ_SECONDS (30) each
# Usage: scripts/reliability.sh [step...]   (default: all four, in that order)
# Environment: CLTAPE_BUILD_DIR (build: the plain build of scripts/test.sh, reused),
# CLTAPE_RELIABILITY_DIR (build-reliability: sanitizer build, fuzzers, logs), CLTAPE_FUZZ_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
./scripts/setup.sh
build=${CLTAPE_BUILD_DIR:-build}
out=${CLTAPE_RELIABILITY_DIR:-build-reliability}
fuzz_seconds=${CLTAPE_FUZZ_SECONDS:-30}
jobs=$(nproc)
export CLTAPE_DEVICE=${CLTAPE_DEVICE:-cpu}
mkdir -p "$out"
out=$(cd "$out" && pwd)
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(asan valgrind oclgrind fuzz)

say() { printf '\n== reliability: %s\n' "$*"; }
timed() { # timed <name> <command...>: runs it and reports its wall time
  local name=$1 t0=$SECONDS
  shift
  "$@"
  printf '== reliability: %s took %d s\n' "$name" $((SECONDS - t0))
}

plain_build() {
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLTAPE_WERROR=ON >/dev/null
  cmake --build "$build" -j"$jobs" >/dev/null
}

# The program of tests/kernels: every kernel family on small odd shapes, checked on the host.
kernel_check_bin() {
  local bin=$out/kernel-families
  pkg=(OpenCL clblast nettle libcjson zlib)
  cc -std=c11 -O1 -g -Wall -Wextra -Werror -Ilib -Ihost tests/kernels/kernel_families.c "$build/libcltape.a" \
    $(pkg-config --libs "${pkg[@]}" 2>/dev/null || echo -lOpenCL -lclblast -lnettle -lcjson -lz) -lpthread -lm -o "$bin"
  echo "$bin"
}

step_asan() {
  say "AddressSanitizer + UndefinedBehaviorSanitizer build and test suite"
  local b=$out/asan
  cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLTAPE_WERROR=ON -DCLTAPE_SANITIZE=ON \
    -DCMAKE_C_FLAGS="-fsanitize=float-cast-overflow" >/dev/null
  cmake --build "$b" -j"$jobs" >/dev/null
  # detect_leaks: LeakSanitizer at every test process' exit; suppressions only for PoCL, LLVM and
  # the ICD loader. halt_on_error: the first report fails the test.
  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=0:strict_string_checks=1 \
    LSAN_OPTIONS=suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$b" --output-on-failure -j1 -E '^(package_install|package_deb|api_docs)$'
}

step_valgrind() {
  say "valgrind memcheck over the tour"
  plain_build
  local tour=$build/examples/tour/cltape-tour
  [ -x "$tour" ] || tour=$build/examples/cltape-quickstart
  local log=$out/valgrind-tour.log
  # the tour writes its plots to the working directory
  mkdir -p "$out/tour" && cd "$out/tour"
  if ! valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
      --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=30 \
      --suppressions="$root/tests/sanitizers/valgrind.supp" --log-file="$log" "$tour" >/dev/null; then
    cd "$root"
    echo "valgrind found errors in $tour:"
    grep -A30 -E "^==[0-9]+== (Invalid|Conditional|Mismatched|Syscall|Source and destination|.*definitely lost|.*indirectly lost)" "$log" | head -200
    return 1
  fi
  cd "$root"
  grep -E "ERROR SUMMARY|definitely lost|indirectly lost" "$log"
}

step_oclgrind() {
  say "oclgrind: every kernel family with out-of-bounds, data-race and uninitialized checks"
  plain_build
  local bin log=$out/oclgrind.log
  bin=$(kernel_check_bin)
  # the simulator is the only platform under oclgrind; no on-disk cache for its programs
  CLTAPE_DEVICE=oclgrind CLTAPE_CACHE_DIR=off CLTAPE_NATIVE_MATH=off \
    oclgrind --data-races --uninitialized --check-api --log "$log" "$bin"
  if [ -s "$log" ]; then
    echo "oclgrind reported:"
    head -100 "$log"
    return 1
  fi
  echo "oclgrind: no reports"
}

step_fuzz() {
  say "libFuzzer harnesses, ${fuzz_seconds} s each"
  local f=$out/fuzz cflags=(-g -O1 -fsanitize=fuzzer,address,undefined -Ilib -Ihost)
  mkdir -p "$f"
  clang "${cflags[@]}" lib/formats/safetensors.c tests/fuzz/fuzz_safetensors.c -lcjson -o "$f/fuzz_safetensors"
  clang "${cflags[@]}" lib/formats/idx.c tests/fuzz/fuzz_idx.c -lz -o "$f/fuzz_idx"
  clang "${cflags[@]}" -DCL_TARGET_OPENCL_VERSION=120 host/program.c tests/fuzz/fuzz_cache.c -lnettle -lOpenCL \
    -o "$f/fuzz_cache"
  local name dict
  for name in safetensors idx cache; do
    rm -rf "$f/work-$name" && mkdir -p "$f/work-$name"
    dict=()
    [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
    # new inputs go to the work directory, the seed corpus is read only
    "$f/fuzz_$name" -max_total_time="$fuzz_seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      "${dict[@]}" -artifact_prefix="$f/crash-$name-" "$f/work-$name" "tests/fuzz/corpus/$name" \
      >"$f/$name.log" 2>&1 || { echo "fuzz_$name found a crash:"; tail -50 "$f/$name.log"; return 1; }
    echo "fuzz_$name: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$f/$name.log" | grep -o '[0-9]*$') inputs" \
      "in ${fuzz_seconds} s, $(ls "$f/work-$name" | wc -l) new corpus entries, no crash"
  done
}

for s in "${steps[@]}"; do
  case $s in
    asan | valgrind | oclgrind | fuzz) timed "$s" "step_$s" ;;
    *) echo "unknown step: $s (asan, valgrind, oclgrind, fuzz)" >&2; exit 2 ;;
  esac
done
say "all passed"
