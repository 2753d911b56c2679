#!/usr/bin/env python3
"""Per-kernel run times from PoCL's text trace: how long each kernel ran on the device (from its
"running" to its "complete" event time) and how long it waited after submission.

    CLTAPE_QUEUE_PROFILING=1 POCL_TRACING=text POCL_TRACING_OPT=/tmp/trace.txt CLTAPE_DEVICE=cpu \\
        build/bench/bench_cltape --only diag_sum_4m --repeats 50 --no-start
    python3 scripts/kernel_times.py /tmp/trace.txt

CLTAPE_QUEUE_PROFILING=1 makes cltape create its queue with profiling, without which PoCL records
zero times. Prints one line per kernel name: count, min, median and max in microseconds."""
import statistics
import sys


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    events = {}
    with open(sys.argv[1]) as f:
        for line in f:
            p = [x.strip() for x in line.split("|")]
            if len(p) < 8 or p[4] != "ndrange_kernel" or not p[0].isdigit():
                continue
            e = events.setdefault(p[1], {})
            e[p[5]] = int(p[0])
            e["name"] = p[7].removeprefix("name=")
    runs, waits = {}, {}
    for e in events.values():
        if "running" in e and "complete" in e:
            runs.setdefault(e["name"], []).append((e["complete"] - e["running"]) / 1e3)
        if "running" in e and "submitted" in e:
            waits.setdefault(e["name"], []).append((e["running"] - e["submitted"]) / 1e3)
    if not runs or all(max(v) == 0 for v in runs.values()):
        print("kernel_times: no timed kernels (was CLTAPE_QUEUE_PROFILING=1 set?)", file=sys.stderr)
        return 1
    print(f"{'kernel':32s} {'count':>6s} {'min us':>9s} {'median us':>10s} {'max us':>9s} {'wait median us':>15s}")
    for name in sorted(runs):
        v = runs[name]
        w = waits.get(name, [0])
        print(f"{name:32s} {len(v):6d} {min(v):9.1f} {statistics.median(v):10.1f} {max(v):9.1f}"
              f" {statistics.median(w):15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
