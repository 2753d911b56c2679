"""Timing and output shared by the peer benchmark scripts (standard library only).

Every result is one JSON line on stdout with the schema of bench_cltape:
    {"system", "workload", "device", "median", "min", "max", "units", "repeats", "inner"}
A line with "meta": true describes the system (version, threads) instead of a result.
"""
import argparse
import json
import platform
import statistics
import sys
import time


def parse_args(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--repeats", type=int, default=20, help="timed repeats per workload (median over them)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed repeats before timing")
    ap.add_argument("--threads", type=int, default=2, help="compute threads")
    ap.add_argument("--only", default="", help="comma-separated workload names")
    return ap.parse_args()


def selected(args, name):
    return not args.only or name in args.only.split(",")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def emit(obj):
    print(json.dumps(obj), flush=True)


def measure(system, workload, device, fn, args, units="ms", inner=1, extra=None):
    """Times fn() (one iteration, which must return only once its results are computed).

    args.warmup * inner untimed calls, then args.repeats timed repeats of `inner` calls each; the
    value of a repeat is its time per call. Prints the JSON line; errors are reported, not raised.
    """
    try:
        for _ in range(args.warmup * inner):
            fn()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times.append((time.perf_counter() - t0) / inner)
    except Exception as e:  # a failing peer workload must not stop the others
        print(f"{system}: {workload} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return
    scale = 1e6 if units == "us" else 1e3
    line = {
        "system": system,
        "workload": workload,
        "device": device,
        "median": statistics.median(times) * scale,
        "min": min(times) * scale,
        "max": max(times) * scale,
        "units": units,
        "repeats": args.repeats,
        "inner": inner,
    }
    if extra:
        line.update(extra)
    emit(line)
    print(f"{system}: {workload:20s} median {line['median']:.4g} {units}", file=sys.stderr, flush=True)
