#!/usr/bin/env bash
# Reliability checks beyond the test suite (docs/reliability.md), run by CI after scripts/test.sh:
#   asan      the library and every test built with AddressSanitizer + UndefinedBehaviorSanitizer,
#             the suite run on PoCL (leak suppressions: tests/sanitizers/lsan.supp)
#   clang     the library, every test and example built by clang with warnings as errors (the plain
#             build uses the system's cc, gcc on Debian), and the suite run on PoCL from that build
#   tsan      the library and the context stress (tests/stress/contexts.c: threads creating their
#             first contexts at once, tapes, gradients, frees) built with ThreadSanitizer: no report
#             (suppressions for the OpenCL driver and ICD loader only: tests/sanitizers/tsan.supp)
#   valgrind  memcheck over the tour: no definite or indirect leak, no invalid access
#             (suppressions for PoCL/LLVM internals: tests/sanitizers/valgrind.supp), after a run
#             under valgrind's no-op tool that warms the program caches for valgrind's emulated CPU
#   oclgrind  every kernel family on tiny odd shapes in the OpenCL simulator, with out-of-bounds,
#             data-race and uninitialized-value checks: zero reports (matrix products on the tiled
#             kernels of kernels/matmul.cl, CLBlast's left out)
#   fuzz      the libFuzzer harnesses of tests/fuzz, CLTAPE_FUZZ_SECONDS (30) each
#   addop     docs/ARCHITECTURE.md's "how to add an op" done in a scratch copy: the suite picks
#             the new row up (scripts/check_add_op.sh)
# Usage: scripts/reliability.sh [step...]   (default: all seven, in that order)
# Environment: CLTAPE_BUILD_DIR (build: the plain build of scripts/test.sh, reused),
# CLTAPE_RELIABILITY_DIR (build-reliability: sanitizer build, fuzzers, logs), CLTAPE_FUZZ_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
./scripts/setup.sh
build=${CLTAPE_BUILD_DIR:-build}
mkdir -p "$build"
build=$(cd "$build" && pwd) # absolute: some steps run from other folders
out=${CLTAPE_RELIABILITY_DIR:-build-reliability}
fuzz_seconds=${CLTAPE_FUZZ_SECONDS:-30}
jobs=$(nproc)
export CLTAPE_DEVICE=${CLTAPE_DEVICE:-cpu}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# These steps check cltape's own code, on PoCL only: the ICD loader sees a folder holding just
# PoCL's .icd file. Mesa's drivers (installed for the suite's second run in scripts/test.sh) keep
# memory from their own initialisation until exit, which LeakSanitizer and memcheck would report in
# every process. oclgrind replaces the OpenCL library itself and is not affected.
if [ -z "${OCL_ICD_VENDORS:-}" ] && [ -f /etc/OpenCL/vendors/pocl.icd ]; then
  mkdir -p "$out/icd-pocl"
  cp /etc/OpenCL/vendors/pocl.icd "$out/icd-pocl/"
  export OCL_ICD_VENDORS=$out/icd-pocl
fi
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(asan clang tsan valgrind oclgrind fuzz addop)

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
# tests/kernels/oclgrind_keep_buffers.c keeps every buffer until exit, so that oclgrind never reuses
# a buffer slot: its uninitialized-value plugin keeps a released buffer's shadow memory for the next
# buffer in that slot (docs/reliability.md, "oclgrind").
kernel_check_bin() {
  local bin=$out/kernel-families
  pkg=(OpenCL clblast nettle libcjson libzip zlib)
  cc -std=c11 -O1 -g -Wall -Wextra -Werror -Iinclude -Ibase -Ilib -Ihost -I"$build/generated" tests/kernels/kernel_families.c \
    tests/kernels/oclgrind_keep_buffers.c "$build/libcltape.a" \
    $(pkg-config --libs "${pkg[@]}" 2>/dev/null || echo -lOpenCL -lclblast -lnettle -lcjson -lzip -lz) -ldl -lpthread -lm \
    -o "$bin"
  echo "$bin"
}

# The names of the tests the last ctest run in build folder $1 failed, into the array named $2.
failed_tests() {
  local -n into=$2
  mapfile -t into < <(cut -d: -f2 "$1/Testing/Temporary/LastTestsFailed.log" 2>/dev/null)
  [ ${#into[@]} -gt 0 ] || into=("(a test ctest did not name)")
}

# The suite under the sanitizers; reports go to files of $2 (named after the executable).
asan_ctest() {
  local b=$1 logs=$2
  shift 2
  # use_sigaltstack=0: LLVM inside PoCL replaces the alternate signal stack of the thread that
  # first compiles a kernel with one of its own; when that thread is not the main thread (the
  # context stress of test_concurrency), ASan tries to unmap LLVM's stack at the thread's exit and
  # aborts ("unable to unmap"). Without it a stack overflow still ends the test (SIGSEGV), unreported.
  ASAN_OPTIONS=detect_leaks=${leaks:-1}:halt_on_error=1:use_sigaltstack=0:log_path=$logs/asan:log_exe_name=1 \
    LSAN_OPTIONS=suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan:log_exe_name=1 \
    ctest --test-dir "$b" --output-on-failure "$@"
}

step_asan() {
  say "AddressSanitizer + UndefinedBehaviorSanitizer build and test suite"
  local b=$out/asan logs=$out/asan-logs
  cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLTAPE_WERROR=ON -DCLTAPE_SANITIZE=ON \
    -DCMAKE_C_FLAGS="-fsanitize=float-cast-overflow" >/dev/null
  cmake --build "$b" -j"$jobs" >/dev/null
  rm -rf "$logs" && mkdir -p "$logs"
  # Every report goes to a file of $logs: a test that passed but leaked at exit (LeakSanitizer runs
  # after Criterion has counted the test) still fails the step. halt_on_error: the first ASan or
  # UBSan report ends the test process. Leak suppressions: PoCL, LLVM, the ICD loader only.
  # dlpack_torch loads the library into Python, which the sanitizer runtime cannot join late
  local status=0 exclude='^(package_install|package_deb|api_docs|dlpack_torch|mpi_.*)$' failed=()
  asan_ctest "$b" "$logs" -E "$exclude" || failed_tests "$b" failed
  # The MPI programs (two ranks under mpirun) run with address and undefined-behaviour checks but
  # without leak checks: Open MPI keeps what its plugins allocate until exit and unloads the
  # plugins, so LeakSanitizer reports blocks it cannot attribute (unknown modules, one frame)
  leaks=0 asan_ctest "$b" "$logs" -R '^mpi_' || status=1
  # LeakSanitizer's own thread-suspending tracer sometimes crashes at exit while the OpenCL
  # driver's worker threads stop ("Tracer caught signal"): that is no finding about the code. The
  # tests concerned run again (up to twice); a test that failed passes only by passing when run
  # again, and any report or failure of a run again fails the step
  local round
  for round in 1 2; do
    local crashed=() f
    for f in "$logs"/*; do
      [ -f "$f" ] && [[ $f != *.tracer-crash ]] || continue
      if grep -q "LeakSanitizer has encountered a fatal error" "$f" && ! grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error" "$f"; then
        crashed+=("$(basename "$f" | sed -E 's/^(asan|ubsan)\.(.*)\.[0-9]+$/\2/')")
        mv "$f" "$f.tracer-crash"
      fi
    done
    [ ${#crashed[@]} -gt 0 ] || break
    # the tests to run again: those whose command runs one of the executables concerned (one
    # executable may serve several tests), never one the first pass excluded
    local again
    again=$(ctest --test-dir "$b" --show-only=json-v1 | python3 -c '
import json, os, re, sys
exes, exclude = set(sys.argv[1].split()), re.compile(sys.argv[2])
exes |= {"test_tour"} if exes & {"cltape-tour", "cltape-devices"} else set()  # test_tour runs them
names = [t["name"] for t in json.load(sys.stdin)["tests"]
         if not exclude.search(t["name"]) and exes & {os.path.basename(a) for a in t.get("command", [])}]
print("|".join(sorted(names)) or ".*")' "${crashed[*]}" "$exclude")
    echo "LeakSanitizer's tracer crashed in: ${crashed[*]}; running these tests again: $again"
    mkdir -p "$logs/again"
    local now=()
    asan_ctest "$b" "$logs/again" -R "^($again)\$" -E "$exclude" || failed_tests "$b" now
    for f in "$logs/again"/*; do [ -e "$f" ] && mv "$f" "$logs/"; done
    rmdir "$logs/again"
    # a failure of the tests run again counts as this run says, the others as before
    local t left=()
    for t in "${failed[@]}"; do [[ $t =~ ^($again)$ ]] || left+=("$t"); done
    failed=("${left[@]}" "${now[@]}")
  done
  if [ ${#failed[@]} -gt 0 ]; then
    echo "failed under the sanitizers: ${failed[*]}"
    status=1
  fi
  local reports
  reports=$(find "$logs" -type f ! -name '*.tracer-crash')
  if [ -n "$reports" ]; then
    echo "sanitizer reports:"
    for f in $reports; do echo "--- $f"; head -60 "$f"; done
    status=1
  fi
  return $status
}

step_tsan() {
  say "ThreadSanitizer: the context stress"
  local b=$out/tsan log=$out/tsan.log
  # the library alone (no tests, examples or benchmarks), every file instrumented
  cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLTAPE_WERROR=ON -DCLTAPE_BUILD_TESTS=OFF -DCLTAPE_BUILD_EXAMPLES=OFF -DCLTAPE_BUILD_BENCH=OFF \
    -DCMAKE_C_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" >/dev/null
  cmake --build "$b" -j"$jobs" --target cltape_static >/dev/null
  pkg=(OpenCL clblast nettle libcjson libzip zlib)
  cc -std=c11 -O1 -g -fsanitize=thread -fno-omit-frame-pointer -Wall -Wextra -Werror -DCT_STRESS_MAIN -Iinclude -Ibase -Ilib -Ihost \
    -I"$b/generated" -Itests tests/stress/contexts.c "$b/libcltape.a" \
    $(pkg-config --libs "${pkg[@]}" 2>/dev/null || echo -lOpenCL -lclblast -lnettle -lcjson -lzip -lz) -ldl -lpthread -lm \
    -o "$b/stress-contexts"
  rm -f "$log".*
  # 8 threads create the process's first contexts at once (device discovery raced), 3 rounds each.
  # Reports go to $log.<pid>; any report fails the step. Suppressions: PoCL and the ICD loader.
  if ! TSAN_OPTIONS="halt_on_error=0:exitcode=66:log_path=$log:suppressions=$root/tests/sanitizers/tsan.supp" \
      "$b/stress-contexts" 8 3; then
    echo "the context stress failed under ThreadSanitizer:"
    for f in "$log".*; do [ -e "$f" ] && head -80 "$f"; done
    return 1
  fi
  local reports
  reports=$(cat "$log".* 2>/dev/null | grep -c "WARNING: ThreadSanitizer" || true)
  if [ "$reports" != 0 ]; then
    echo "ThreadSanitizer: $reports reports"
    for f in "$log".*; do head -80 "$f"; done
    return 1
  fi
  echo "ThreadSanitizer: no reports"
}

step_valgrind() {
  say "valgrind memcheck over the tour"
  plain_build
  local tour=$build/examples/tour/cltape-tour
  [ -x "$tour" ] || tour=$build/examples/cltape-quickstart
  local log=$out/valgrind-tour.log
  # the tour writes its plots to the working directory
  mkdir -p "$out/tour" && cd "$out/tour"
  # Under valgrind, PoCL sees the CPU that valgrind emulates, not the machine's: the program caches
  # that native runs warmed (cltape's and PoCL's, both keyed by the device) do not serve it, and the
  # checked run would compile every kernel inside memcheck (LLVM under memcheck: slow, and reports
  # in the compiler). So the tour first runs under valgrind's no-op tool, which emulates the same
  # CPU at a fraction of memcheck's cost, to warm both caches for that CPU; that run checks
  # nothing and is timed apart. The memcheck run then loads every program from the caches: it
  # checks the library's own code, the cache reader included (the compile-and-store path is the
  # AddressSanitizer step's, whose suite starts from cold caches in CI).
  local t0=$SECONDS
  valgrind --tool=none --log-file="$out/valgrind-warm.log" "$tour" >/dev/null ||
    { cd "$root"; echo "the tour failed under valgrind --tool=none:"; tail -20 "$out/valgrind-warm.log"; return 1; }
  printf '== reliability: valgrind warm-up (no-op tool, fills the caches for the emulated CPU) took %d s\n' \
    $((SECONDS - t0))
  t0=$SECONDS
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
  printf '== reliability: valgrind memcheck run took %d s\n' $((SECONDS - t0))
}

# Runs the kernel-family program under oclgrind with the given checks, its reports to a log.
# -cl-opt-disable: oclgrind 21.10 cannot simulate some instructions that clang 14's optimiser
# emits (freeze, llvm.abs): unoptimised kernels run the same source, every instruction supported.
oclgrind_run() {
  local bin=$1 log=$2
  shift 2
  rm -f "$log"
  # CLTAPE_POOL_EXACT: buffers of exactly the tensor's size, so that an access past a tensor's end
  # is past its buffer's end too (not in a pool bucket's slack), and no buffer serves two tensors
  # (the uninitialized-value check follows each buffer from its creation). CLTAPE_MATMUL=tiled:
  # matrix products run on the tiled kernels of kernels/matmul.cl, never on CLBlast's (large, slow
  # to simulate, and CLBlast's own). CLTAPE_CACHE_DIR=off: nothing is read from or written to the
  # user's cache; the program's check of stored tiles writes its store to a directory of its own.
  # CLTAPE_FUSION_ASYNC=off: oclgrind reports a GPU, where fused programs compile on a thread of
  # their own, and oclgrind's OpenCL runtime is not thread-safe (its issue 28): a build on that
  # thread beside the main thread's calls crashed it once (SIGSEGV) in a CI run.
  CLTAPE_DEVICE=oclgrind CLTAPE_CACHE_DIR=off CLTAPE_NATIVE_MATH=off CLTAPE_POOL_EXACT=1 CLTAPE_MATMUL=tiled \
    CLTAPE_FUSION_ASYNC=off oclgrind --build-options -cl-opt-disable "$@" --log "$log" "$bin"
}

# oclgrind_run, failing on any report.
oclgrind_pass() {
  local bin=$1 log=$2
  shift 2
  oclgrind_run "$bin" "$log" "$@"
  if [ -s "$log" ]; then
    echo "oclgrind $* reported $(grep -c '^[A-Z]' "$log") problems:"
    head -60 "$log"
    return 1
  fi
  echo "oclgrind $*: no reports"
}

step_oclgrind() {
  say "oclgrind: every kernel family with out-of-bounds, data-race, API and uninitialized-value checks"
  plain_build
  local bin
  bin=$(kernel_check_bin)
  # out-of-bounds accesses are always checked; matrix products run on the tiled kernels only.
  # --uniform-writes: two work-items writing the same value to one address are reported too
  # (oclgrind passes over them by default). CLTAPE_TEST_VECTOR_WIDTH=16: this pass runs the kernels
  # built for vectors of 16 floats, as CPU devices with 64-byte vectors run them (the packing
  # kernels' vector copies, the reductions' and fused kernels' widths); oclgrind prefers scalars,
  # which the second pass runs
  CLTAPE_TEST_VECTOR_WIDTH=16 oclgrind_pass "$bin" "$out/oclgrind.log" --data-races --uniform-writes --check-api
  # the uninitialized-value pass runs the families unfused: oclgrind 21.10's --uninitialized plugin
  # crashes (SIGSEGV in llvm::Value::getName, called from Uninitialized::instructionExecuted) while
  # simulating the generated fused kernels, which the pass above checks for bounds and races
  CLTAPE_FUSION=off oclgrind_pass "$bin" "$out/oclgrind-uninitialized.log" --uninitialized
  # A check of the check: an op that leaves the last element of its result unwritten, read by an
  # add (KERNEL_FAMILIES_PLANT), must give exactly that one report
  local planted=$out/oclgrind-planted.log
  KERNEL_FAMILIES_ONLY=custom KERNEL_FAMILIES_PLANT=uninitialized oclgrind_run "$bin" "$planted" --uninitialized >/dev/null
  if [ "$(grep -c '^Uninitialized value' "$planted")" != 1 ] || ! grep -q 'Kernel: b_ADD' "$planted"; then
    echo "oclgrind --uninitialized: the planted read of an unwritten element was not reported as one report:"
    head -40 "$planted"
    return 1
  fi
  echo "oclgrind --uninitialized: the planted read of an unwritten element is reported"
}

step_fuzz() {
  say "libFuzzer harnesses, ${fuzz_seconds} s each"
  local f=$out/fuzz cflags=(-g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ibase -Ilib -Ihost -I"$build/generated")
  mkdir -p "$f"
  clang "${cflags[@]}" base/status.c base/env.c base/handle.c base/fileio.c lib/formats/safetensors.c tests/fuzz/fuzz_safetensors.c -lcjson \
    -lpthread -o "$f/fuzz_safetensors"
  clang "${cflags[@]}" base/status.c base/env.c base/handle.c base/fileio.c lib/formats/idx.c tests/fuzz/fuzz_idx.c -lz -lpthread -o "$f/fuzz_idx"
  clang "${cflags[@]}" base/status.c base/env.c base/handle.c base/fileio.c base/dtype.c lib/formats/npy.c tests/fuzz/fuzz_npy.c -lzip -lm \
    -lpthread -o "$f/fuzz_npy"
  clang "${cflags[@]}" -DCL_TARGET_OPENCL_VERSION=120 host/program.c base/env.c base/fileio.c base/text.c tests/fuzz/fuzz_cache.c -lnettle -lOpenCL \
    -o "$f/fuzz_cache"
  local name dict
  for name in safetensors idx npy cache; do
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

# A second compiler: clang's warnings differ from gcc's (unused-but-set variables, conversions), and
# its code generation from gcc's; the suite runs from this build too (after asan, the program caches
# are warm).
step_clang() {
  say "clang: the whole build with warnings as errors, then the suite"
  local b=$out/clang
  CC=clang cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLTAPE_WERROR=ON >/dev/null
  cmake --build "$b" -j"$jobs" >/dev/null
  ctest --test-dir "$b" -j"$jobs" --output-on-failure
}

step_addop() {
  say "how to add an op, in a scratch copy"
  scripts/check_add_op.sh "$jobs"
}

for s in "${steps[@]}"; do
  case $s in
    asan | clang | tsan | valgrind | oclgrind | fuzz | addop) timed "$s" "step_$s" ;;
    *) echo "unknown step: $s (asan, clang, tsan, valgrind, oclgrind, fuzz, addop)" >&2; exit 2 ;;
  esac
done
say "all passed"
