#!/usr/bin/env bash
# bench/run_all.sh — the one command behind docs/benchmarks.md.
#
# Installs the peers when missing (bench/peers/setup_peers.sh), builds cltape in Release in its own
# build directory, runs bench_cltape and bench_sum_floor (twice each: the second time with POCL_AFFINITY=1), OpenBLAS's SGEMM, the PyTorch, TensorFlow and JAX scripts in
# turn (never two at once) on the same machine, then writes docs/benchmarks.md and docs/benchmarks.svg with
# bench/report.py. A peer that is missing or fails is reported as "n/a", never fatal.
#
#   bench/run_all.sh [--rounds N] [--repeats N] [--warmup N] [--threads N] [--no-setup] [--only W1,...]
#
# The machine may be shared, so the systems take turns: each of --rounds rounds (default 3) runs
# every system once with --repeats timed repeats (default 10) per workload, and the report takes
# the median of the rounds' medians. Load that comes and goes then hits every system alike.
#
# Environment: CLTAPE_BENCH_BUILD (build directory, default build-bench/ in the repository),
# CLTAPE_DEVICE (the OpenCL device cltape uses). Raw JSON lines and logs stay in
# $CLTAPE_BENCH_BUILD/results/.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${CLTAPE_BENCH_BUILD:-$root/build-bench}"
rounds=3
repeats=10
warmup=3
threads=2
setup=1
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --no-setup) setup=0; shift ;;
    --only) only="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run_all: unknown argument $1" >&2; exit 2 ;;
  esac
done
results="$build/results"
venv="$root/bench/.venv"
log() { echo "run_all: $*" >&2; }

# every system gets the same thread count
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" POCL_MAX_PTHREAD_COUNT="$threads"
export TF_CPP_MIN_LOG_LEVEL=2

if [ "$setup" = 1 ]; then
  "$root/bench/peers/setup_peers.sh"
fi

log "building cltape (Release) in $build"
mkdir -p "$build"
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCLTAPE_BUILD_TESTS=OFF >"$build/bench-build.log" 2>&1 &&
  cmake --build "$build" -j2 --target bench_cltape bench_sum_floor >>"$build/bench-build.log" 2>&1; }; then
  tail -30 "$build/bench-build.log" >&2
  log "the cltape build failed (log: $build/bench-build.log)"
  exit 1
fi
rm -rf "$results"
mkdir -p "$results"
cp "$build/bench-build.log" "$results/build.log"

declare -A skipped=()
only_args=()
[ -n "$only" ] && only_args=(--only "$only")
common=(--repeats "$repeats" --warmup "$warmup")
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

run_round() { # $1: round number
  local r="$1" start_args=()
  [ "$r" -gt 1 ] && start_args=(--no-start) # start-up is measured once
  log "round $r/$rounds: cltape"
  "$build/bench/bench_cltape" "${common[@]}" "${only_args[@]}" "${start_args[@]}" >"$results/cltape.$r.jsonl" \
    2> >(tee -a "$results/cltape.log" >&2) || log "bench_cltape reported failures (see $results/cltape.log)"
  # the same with PoCL's worker threads pinned, worker i to CPU i (a setting of PoCL, off by
  # default; other drivers ignore it): where Linux places them moves the synchronised workloads
  log "round $r/$rounds: cltape, POCL_AFFINITY=1"
  POCL_AFFINITY=1 "$build/bench/bench_cltape" "${common[@]}" "${only_args[@]}" --no-start \
    2> >(tee -a "$results/cltape-pinned.log" >&2) | sed 's/"system":"cltape"/"system":"cltape-pinned"/' \
    >"$results/cltape-pinned.$r.jsonl" || log "bench_cltape (pinned) reported failures (see $results/cltape-pinned.log)"
  # what the sum of diag_sum_4m can take on this machine without cltape's kernels (a bare OpenCL
  # program on the same device; threads on the host), both ways of placing PoCL's workers
  if [ -z "$only" ] || [[ ",$only," == *,diag_sum_4m,* ]]; then
    local floor_repeats=$((repeats > 50 ? repeats : 50)) # calls of a fraction of a millisecond
    log "round $r/$rounds: bench_sum_floor"
    "$build/bench/bench_sum_floor" --repeats "$floor_repeats" --rounds 1 >"$results/floor.$r.jsonl" 2>>"$results/floor.log" ||
      log "bench_sum_floor failed (see $results/floor.log)"
    POCL_AFFINITY=1 "$build/bench/bench_sum_floor" --repeats "$floor_repeats" --rounds 1 2>>"$results/floor.log" |
      sed 's/"system":"floor:/"system":"floor-pinned:/' >"$results/floor-pinned.$r.jsonl" ||
      log "bench_sum_floor (pinned) failed (see $results/floor.log)"
  fi

  if [ -x "$build/openblas_sgemm" ]; then
    log "round $r/$rounds: OpenBLAS"
    "$build/openblas_sgemm" "${common[@]}" --threads "$threads" >"$results/openblas.$r.jsonl" 2>>"$results/openblas.log" ||
      skipped[openblas]="openblas_sgemm failed (see results/openblas.log)"
  fi

  if [ -z "${skipped[pytorch]:-}" ]; then
    log "round $r/$rounds: PyTorch"
    /usr/bin/python3 "$root/bench/peers/torch_bench.py" "${common[@]}" --threads "$threads" "${only_args[@]}" \
      >"$results/pytorch.$r.jsonl" 2> >(tee -a "$results/pytorch.log" >&2) || log "torch_bench.py failed"
  fi

  if [ -z "${skipped[tensorflow]:-}" ]; then
    log "round $r/$rounds: TensorFlow"
    "$venv/bin/python" "$root/bench/peers/tf_bench.py" "${common[@]}" --threads "$threads" "${only_args[@]}" \
      >"$results/tensorflow.$r.jsonl" 2> >(tee -a "$results/tensorflow.log" >&2) || log "tf_bench.py failed"
  fi

  if [ -z "${skipped[jax]:-}" ]; then
    log "round $r/$rounds: JAX"
    "$venv/bin/python" "$root/bench/peers/jax_bench.py" "${common[@]}" --threads "$threads" "${only_args[@]}" \
      >"$results/jax.$r.jsonl" 2> >(tee -a "$results/jax.log" >&2) || log "jax_bench.py failed"
  fi
}

# which peers can run
if [ -z "$only" ] || [[ ",$only," == *,matmul_1024,* ]]; then
  if ! cc -std=c11 -O2 -o "$build/openblas_sgemm" "$root/bench/peers/openblas_sgemm.c" -lopenblas 2>"$results/openblas.log"; then
    rm -f "$build/openblas_sgemm"
    skipped[openblas]="cannot build against OpenBLAS (libopenblas-dev missing?)"
    log "skipped: ${skipped[openblas]}"
  fi
else
  rm -f "$build/openblas_sgemm"
fi
if ! /usr/bin/python3 -c "import torch" >/dev/null 2>&1; then
  skipped[pytorch]="python3-torch is not installed for /usr/bin/python3"
  log "skipped: ${skipped[pytorch]}"
fi
if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import tensorflow" >/dev/null 2>&1; }; then
  skipped[tensorflow]="TensorFlow is not installed in bench/.venv (PyPI unreachable?)"
  log "skipped: ${skipped[tensorflow]}"
fi
if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import jax" >/dev/null 2>&1; }; then
  skipped[jax]="JAX is not installed in bench/.venv (PyPI unreachable?)"
  log "skipped: ${skipped[jax]}"
fi

for ((round = 1; round <= rounds; ++round)); do
  run_round "$round"
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# what the report needs to know about this run
{
  printf '{"date": "%s", "rounds": %s, "repeats": %s, "warmup": %s, "threads": %s,' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$rounds" "$repeats" "$warmup" "$threads"
  printf ' "load_before": "%s", "load_after": "%s",' "$load_before" "$load_after"
  gitrev="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)"
  if [ -n "$gitrev" ] && [ -n "$(git -C "$root" status --porcelain -- lib host kernels 2>/dev/null)" ]; then
    gitrev="$gitrev with local changes"
  fi
  printf ' "git": "%s", "python": "%s", "skipped": {' "$gitrev" "$(/usr/bin/python3 --version 2>&1 | cut -d' ' -f2)"
  sep=""
  for k in "${!skipped[@]}"; do
    printf '%s"%s": "%s"' "$sep" "$k" "${skipped[$k]}"
    sep=", "
  done
  printf '}}\n'
} >"$results/run.json"

/usr/bin/python3 "$root/bench/report.py" "$results" --md "$root/docs/benchmarks.md" --svg "$root/docs/benchmarks.svg"
