#!/usr/bin/env python3
"""Per-kernel run times from PoCL's text trace: how long each kernel ran on the device (from its
"running" to its "complete" event time) and how long it waited after submission.

    CLTAPE_QUEUE_PROFILING=1 POCL_TRACING=text POCL_TRACING_OPT=/tmp/trace.txt CLTAPE_DEVICE=cpu \\
        build/bench/bench_cltape --only diag_sum_4m --repeats 50 --no-start
    python3 scripts/kernel_times.py /tmp/trace.txt

CLTAPE_QUEUE_PROFILING=1 makes cltape create its queue with profiling, without which PoCL records
zero times. Prints one line per kernel name: count, min, median and max in microseconds.

    python3 scripts/kernel_times.py --steps K N /tmp/trace.txt

takes the last N iterations of K kernels each (a training step launches the same K kernels every
time: `kernels_per_iter` in bench_cltape's output) and prints one line per position in the
iteration: its kernel, the median and the fastest of its N run times, and the sum of the medians."""
import statistics
import sys


def main():
    args = sys.argv[1:]
    steps = None
    if len(args) == 4 and args[0] == "--steps" and args[1].isdigit() and args[2].isdigit():
        steps = (int(args[1]), int(args[2]))
        args = args[3:]
    if len(args) != 1 or (steps and 0 in steps):
        print(__doc__, file=sys.stderr)
        return 2
    events, order = {}, []
    with open(args[0]) as f:
        for line in f:
            p = [x.strip() for x in line.split("|")]
            if len(p) < 8 or p[4] != "ndrange_kernel" or not p[0].isdigit():
                continue
            if p[1] not in events:
                order.append(p[1])
            e = events.setdefault(p[1], {})
            e[p[5]] = int(p[0])
            e["name"] = p[7].removeprefix("name=")
    if steps:
        return per_step(events, order, *steps)
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


def per_step(events, order, k, n):
    timed = [e for e in (events[i] for i in order) if "running" in e and "complete" in e]
    if len(timed) < k * n:
        print(f"kernel_times: {len(timed)} timed kernels, fewer than {n} iterations of {k}", file=sys.stderr)
        return 1
    last = timed[-k * n:]
    print(f"{'position':>8s} {'kernel':32s} {'median us':>10s} {'min us':>9s}")
    total = 0.0
    for i in range(k):
        runs = [(last[s * k + i]["complete"] - last[s * k + i]["running"]) / 1e3 for s in range(n)]
        names = "/".join(sorted({last[s * k + i]["name"] for s in range(n)}))
        total += statistics.median(runs)
        print(f"{i:8d} {names:32s} {statistics.median(runs):10.1f} {min(runs):9.1f}")
    print(f"sum of the medians: {total:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
