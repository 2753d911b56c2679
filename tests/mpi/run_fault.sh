#!/usr/bin/env bash
# Usage: run_fault.sh <mpirun> <test_dist_fault> stall|exit
# Passes when the two-rank job ends by itself within 45 s with a failure status, and the missing
# rank is reported: in mode "stall" by rank 0 (its collective's timeout), in mode "exit" by mpirun,
# which ends the job as soon as a rank exits without MPI_Finalize.
set -uo pipefail
mpirun=$1 prog=$2 mode=$3
start=$(date +%s)
out=$(timeout 45 "$mpirun" --oversubscribe -np 2 "$prog" "$mode" 2>&1)
rc=$?
took=$(( $(date +%s) - start ))
printf '%s\n' "$out"
echo "run_fault: mode $mode, exit status $rc after $took s"
[ "$rc" -ne 124 ] || { echo "run_fault: FAIL: the job hung (killed after 45 s)"; exit 1; }
[ "$rc" -ne 0 ] || { echo "run_fault: FAIL: the job reported success"; exit 1; }
if [ "$mode" = stall ]; then
  grep -q "dist_fault: reported after .*CT_ERR_IO.*no answer from the other ranks" <<<"$out" ||
    { echo "run_fault: FAIL: rank 0 did not report the missing rank"; exit 1; }
else # a rank that exits without MPI_Finalize: mpirun ends the job and names the rank
  grep -q "process rank 1 " <<<"$out" || { echo "run_fault: FAIL: the exited rank was not named"; exit 1; }
fi
echo "run_fault: PASS"
