#!/usr/bin/env python3
"""Writes docs/benchmarks.md and docs/benchmarks.svg from the JSON lines that bench/run_all.sh
collected (standard library only).

    python3 bench/report.py RESULTS_DIR [--md docs/benchmarks.md] [--svg docs/benchmarks.svg]

RESULTS_DIR holds *.jsonl files (one JSON object per line, as bench_cltape and the peer scripts
print them) and run.json (what run_all.sh recorded about the run). Lines that are not JSON are
ignored. A workload that a system did not report shows as "n/a"."""
import argparse
import datetime
import glob
import html
import json
import math
import os
import platform
import statistics
import subprocess

WORKLOADS = [
    ("eager_scalar_chain", "Eager overhead: scalar y = x*x; z = y*y; dz/dx"),
    ("memory_chain_4m", "Memory-bound chain, 4M elements, value + gradient"),
    ("matmul_1024", "Matmul 1024x1024 + both gradients"),
    ("mlp_train_step", "MLP 784-256-10 training step, batch 256, Adam"),
    ("cnn_train_step", "CNN training step, batch 64, Adam"),
    ("jacobian_256", "Jacobian of tanh(x W), 256 -> 256"),
]
SYSTEMS = [
    ("cltape", "cltape"),
    ("cltape-pinned", "cltape, workers pinned"),
    ("pytorch", "PyTorch"),
    ("tensorflow", "TensorFlow (eager)"),
    ("tensorflow-function", "TensorFlow (tf.function)"),
    ("jax", "JAX (eager)"),
    ("jax-jit", "JAX (jit)"),
    ("openblas", "OpenBLAS"),
]
COLORS = {"cltape": "#1f77b4", "cltape-pinned": "#17becf", "pytorch": "#ee4c2c", "tensorflow": "#ff9f1c", "tensorflow-function": "#a05a00",
          "jax": "#b07cd8", "jax-jit": "#6a3d9a", "openblas": "#2ca02c"}
# systems that run only some workloads; elsewhere they show "-" (not part of the comparison)
ONLY = {"openblas": {"matmul_1024"}}


def applies(system, workload):
    return workload in ONLY.get(system, {workload})


DIAGS = [
    ("diag_launch_add_scalar", "one Add of two scalars, queue waited for every 100 Adds"),
    ("diag_launch_add_scalar_sync", "one Add of two scalars, waited for every time"),
    ("diag_add_4m", "Add of two 4M-element tensors (48 MiB moved)"),
    ("diag_sin_4m", "Sin of a 4M-element tensor (32 MiB moved)"),
    ("diag_sum_4m", "Sum of a 4M-element tensor (16 MiB read)"),
    ("diag_matvec_256", "one [1, 256]x[256, 256]ᵀ matmul (the matmul of jacobian_256's backward)"),
    ("diag_gemm_1024", "one 1024x1024x1024 matmul (2.15 GFLOP)"),
]


def combine(lines):
    """One result from the lines of several rounds: the median of their medians, the extremes of
    their extremes; counters from the first round."""
    if len(lines) == 1:
        return dict(lines[0], rounds=1)
    out = dict(lines[0])
    out["median"] = statistics.median(l["median"] for l in lines)
    out["min"] = min(l["min"] for l in lines)
    out["max"] = max(l["max"] for l in lines)
    out["repeats"] = sum(l.get("repeats", 0) for l in lines)
    out["rounds"] = len(lines)
    out["round_medians"] = [l["median"] for l in lines]
    return out


def load(results_dir):
    grouped, meta = {}, {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.jsonl"))):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if obj.get("meta"):
                    meta[obj["system"]] = obj
                elif "workload" in obj and "median" in obj:
                    grouped.setdefault((obj["system"], obj["workload"]), []).append(obj)
    results = {key: combine(lines) for key, lines in grouped.items()}
    run = {}
    try:
        with open(os.path.join(results_dir, "run.json")) as f:
            run = json.load(f)
    except (OSError, ValueError):
        pass
    return results, meta, run


def to_ms(r):
    return r["median"] / 1000.0 if r["units"] == "us" else r["median"]


def fmt_time(r):
    if r is None:
        return "n/a"
    v = r["median"]
    return f"{v:.3g} {r['units']}" if v < 100 else f"{v:.0f} {r['units']}"


def fmt_bytes(n):
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def read_first(path, prefix):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def dpkg_version(pkg):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, timeout=20)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    mem_kb = read_first("/proc/meminfo", "MemTotal").split()
    return {
        "cpu": read_first("/proc/cpuinfo", "model name") or platform.processor(),
        "cores": os.cpu_count(),
        "ram": f"{int(mem_kb[0]) / (1 << 20):.1f} GiB" if mem_kb else "?",
        "kernel": platform.release(),
        "os": os_name(),
    }


def os_name():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def ratio(results, system, workload):
    base, other = results.get(("cltape", workload)), results.get((system, workload))
    if not base or not other or base["median"] <= 0:
        return None
    return to_ms(other) / to_ms(base)


def fmt_kernels(r):
    return "n/a" if r is None or "kernels_per_iter" not in r else f"{r['kernels_per_iter']:.0f}"


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}"


# ---- the SVG chart -------------------------------------------------------------------------
def svg_chart(results, systems, path):
    groups = [(w, t) for w, t in WORKLOADS]
    W, H = 1000, 560
    left, right, top, bottom = 70, 20, 90, 120
    pw, ph = W - left - right, H - top - bottom
    vals = [to_ms(r) for (s, w), r in results.items() if s in dict(systems) and w in dict(groups)]
    vals = [v for v in vals if v > 0]
    if not vals:
        vals = [1.0]
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    if hi <= lo:
        hi = lo * 10

    def y(v):
        return top + ph * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">Median time per iteration '
           '(log scale, lower is better)</text>']
    d = lo
    while d <= hi * 1.0001:
        yy = y(d)
        label = f"{d * 1000:g} us" if d < 1 else (f"{d:g} ms" if d < 1000 else f"{d / 1000:g} s")
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{W - right}" y2="{yy:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{label}</text>')
        d *= 10
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#444"/>')
    gw = pw / len(groups)
    bw = gw * 0.8 / len(systems)
    for gi, (wname, title) in enumerate(groups):
        gx = left + gi * gw + gw * 0.1
        for si, (sname, _) in enumerate(systems):
            r = results.get((sname, wname))
            x = gx + si * bw
            if not applies(sname, wname):
                continue
            if r is None or to_ms(r) <= 0:
                out.append(f'<text x="{x + bw / 2:.1f}" y="{top + ph - 4}" text-anchor="middle" font-size="8" '
                           f'fill="#999" transform="rotate(-90 {x + bw / 2:.1f} {top + ph - 4})">n/a</text>')
                continue
            yy = y(to_ms(r))
            out.append(f'<rect x="{x:.1f}" y="{yy:.1f}" width="{bw - 1:.1f}" height="{top + ph - yy:.1f}" '
                       f'fill="{COLORS.get(sname, "#777")}"><title>{html.escape(sname)}: '
                       f'{html.escape(fmt_time(r))}</title></rect>')
            tx, ty = x + bw / 2 + 3, yy - 4
            out.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="9" transform="rotate(-90 {tx:.1f} {ty:.1f})">'
                       f'{html.escape(fmt_time(r))}</text>')
        words, lines, cur = title.split(), [], ""
        for word in words:
            if len(cur) + len(word) + 1 > 24 and cur:
                lines.append(cur)
                cur = word
            else:
                cur = (cur + " " + word).strip()
        lines.append(cur)
        for li, text in enumerate(lines[:4]):
            out.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{top + ph + 16 + 13 * li}" '
                       f'text-anchor="middle">{html.escape(text)}</text>')
    lx = left
    for sname, label in systems:
        out.append(f'<rect x="{lx}" y="{H - 26}" width="12" height="12" fill="{COLORS.get(sname, "#777")}"/>')
        out.append(f'<text x="{lx + 16}" y="{H - 16}">{html.escape(label)}</text>')
        lx += 34 + int(6.5 * len(label))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ---- what diag_sum_4m can take ---------------------------------------------------------------
FLOOR_WAYS = [
    ("cltape", "cltape: `ct_sum` + `ct_tensor_item` (as `diag_sum_4m`)"),
    ("cltape_launch", "the host's time in its `ct_sum` (the launches)"),
    ("opencl", "a bare OpenCL program on the same device and driver: cltape's launch shape (8 work-groups"
               " of 256), two kernels and a blocking read"),
    ("opencl_launch", "the host's time in its two launches"),
    ("opencl_kernel", "its first kernel's run time (queue profiling)"),
    ("opencl_wait", "the time from that kernel's enqueueing to its start (queue profiling)"),
    ("host_spin", "host threads, one per CPU, each summing a fixed part, the others spinning between calls"
                  " (OpenMP's way: PyTorch's)"),
    ("host_swap", "the same, the parts changing threads on every call (as work-groups dealt to whichever"
                  " worker comes first)"),
    ("host_sleep", "fixed parts, threads sleeping between calls (PoCL's workers' way)"),
]

# rows that time a part of a call, not a whole sum: no ratio to PyTorch
FLOOR_PARTS = {"cltape_launch", "opencl_launch", "opencl_kernel", "opencl_wait"}


def floor_section(w, results):
    """The table of bench_sum_floor's ways, default and pinned, against PyTorch's sum."""
    if not any(results.get((f"floor:{k}", "diag_sum_4m")) for k, _ in FLOOR_WAYS):
        return
    pt = results.get(("pytorch", "diag_sum_4m"))
    w("### What the sum of `diag_sum_4m` can take on this machine")
    w("")
    w("`bench_sum_floor`, run in each round after `bench_cltape` and once more with `POCL_AFFINITY=1`: the"
      " sum of 4M float32 and the read of its value through cltape and through a bare OpenCL program on the"
      " same device and buffer (a call of each in turn), then by threads on the host (a copy of the"
      " 16 MiB in host memory). Median of the rounds' medians; *PyTorch / way* at least 0.67 is within"
      " 1.5x of PyTorch (see \"What a runtime with sleeping workers allows\" in"
      " [performance.md](performance.md)).")
    w("")
    w("| way | median | PyTorch / way | PoCL's workers pinned | PyTorch / way |")
    w("|---|---:|---:|---:|---:|")
    for k, text in FLOOR_WAYS:
        cells = []
        for system in (f"floor:{k}", f"floor-pinned:{k}"):
            r = results.get((system, "diag_sum_4m"))
            if k in FLOOR_PARTS:
                cells += [fmt_time(r), "-"]
            else:
                cells += [fmt_time(r), fmt_ratio(to_ms(pt) / to_ms(r)) if pt and r else "n/a"]
        w(f"| {text} | " + " | ".join(cells) + " |")
    w("")


# ---- the page ------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("--md", default="docs/benchmarks.md")
    ap.add_argument("--svg", default="docs/benchmarks.svg")
    args = ap.parse_args()
    results, meta, run = load(args.results)
    systems = [(s, label) for s, label in SYSTEMS if s in meta or any(k[0] == s for k in results)]
    if not any(s == "cltape" for s, _ in systems):
        systems.insert(0, ("cltape", "cltape"))
    m = machine()
    md = []
    w = md.append
    w("# Benchmarks: cltape, PyTorch, TensorFlow, JAX and OpenBLAS")
    w("")
    w(f"Generated by `bench/run_all.sh` on {run.get('date', datetime.datetime.now().isoformat(timespec='seconds'))}"
      " from the JSON lines it collected; every number on this page comes from that run. Do not edit by hand:"
      " run `bench/run_all.sh` again. The workloads are defined in [bench/README.md](../bench/README.md).")
    w("")
    w("## Machine and versions")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| CPU | {m['cpu']}, {m['cores']} cores, {m['ram']} RAM |")
    w(f"| OS | {m['os']}, Linux {m['kernel']} |")
    if run.get("load_before"):
        w(f"| load average before the run | {run['load_before']} (other work on the machine makes the numbers noisier) |")
    if run.get("load_after"):
        w(f"| load average after the run | {run['load_after']} |")
    c = meta.get("cltape", {})
    git = run.get("git", "")
    w(f"| cltape | {c.get('version', '?')}" + (f" (git {git})" if git else "") +
      f", Release build, device `{c.get('device', '?')}`, {c.get('compute_units', '?')} compute units,"
      f" native math {'on' if c.get('native_math') else 'off'} |")
    w(f"| OpenCL platform | {c.get('platform', '?')}: {c.get('device_version', '?')}, driver"
      f" {c.get('driver_version', '?')} (package pocl-opencl-icd {dpkg_version('pocl-opencl-icd') or '?'}) |")
    tuning = ""
    try:
        with open(os.path.join(args.results, "cltape.log")) as f:
            if "generic kernel parameters" in f.read():
                tuning = "; float32 GEMM ran with CLBlast's generic (untuned) parameters: `cltape-tune` was not run"
    except OSError:
        pass
    w(f"| CLBlast | {dpkg_version('libclblast1') or '?'} (Debian package libclblast1){tuning} |")
    for s, label in (("pytorch", "PyTorch"), ("tensorflow", "TensorFlow")):
        mm = meta.get(s)
        if mm:
            extra = f", Keras {mm['keras']}" if mm.get("keras") else ""
            src = "Debian python3-torch" if s == "pytorch" else "PyPI tensorflow-cpu in bench/.venv"
            w(f"| {label} | {mm['version']}{extra} ({src}); {mm.get('threads', '?')} intra-op,"
              f" {mm.get('interop_threads', '?')} inter-op threads |")
        else:
            w(f"| {label} | not run: {run.get('skipped', {}).get(s, 'not installed')} |")
    mj = meta.get("jax") or meta.get("jax-jit")
    if mj:
        w(f"| JAX | {mj['version']} (PyPI jax[cpu] in bench/.venv); {mj.get('threads', '?')} CPUs,"
          f" XLA_FLAGS `{mj.get('xla_flags', '')}` |")
    else:
        w(f"| JAX | not run: {run.get('skipped', {}).get('jax', 'not installed')} |")
    ob = meta.get("openblas")
    w(f"| OpenBLAS | {ob['version'] if ob else 'not run'} (libopenblas0 {dpkg_version('libopenblas0') or '?'})"
      + (f"; {ob.get('threads')} threads |" if ob else " |"))
    if run.get("python"):
        w(f"| Python | {run['python']} |")
    w("")
    reps = run.get("repeats", "?")
    warm = run.get("warmup", "?")
    rounds = run.get("rounds", 1)
    w(f"Settings: float32 everywhere, {run.get('threads', 2)} compute threads for every system. The systems take"
      f" turns: {rounds} rounds, each running every system once with {warm} untimed warm-up repeats and {reps} timed"
      " repeats per workload. *median* is the median of the rounds' medians, *min* and *max* the extremes over all"
      " timed repeats. The scalar chain is timed over"
      " 100 iterations per repeat and reported per iteration. Every timed iteration ends when its results are"
      " computed: cltape reads a scalar back (or waits on its queue when the result is a matrix), PyTorch calls"
      " `.item()`, TensorFlow `.numpy()`, JAX `block_until_ready()` (or `float()` on a scalar).")
    w("")
    w("## Results")
    w("")
    w("Median time per iteration. The ratio columns are *system time / cltape time*: above 1 means cltape is"
      " faster, below 1 that the other system is. *kernels* is the number of kernels cltape launched per"
      " iteration. *cltape, workers pinned* is cltape run again in each round with `POCL_AFFINITY=1`: PoCL"
      " pins its worker thread i to CPU i (a setting of PoCL, off by default), where otherwise Linux decides"
      " where they run and, for workloads that wait for each result, sometimes runs both on one CPU"
      " (see \"Where PoCL's workers run\" in [performance.md](performance.md)).")
    w("")
    peers = [(s, l) for s, l in systems if s != "cltape"]
    w("| workload | cltape | kernels | " + " | ".join(f"{l} | ratio" for _, l in peers) + " |")
    w("|---|---:|---:|" + "---:|---:|" * len(peers))
    for wname, title in WORKLOADS:
        row = [f"{title} (`{wname}`)", fmt_time(results.get(("cltape", wname))),
               fmt_kernels(results.get(("cltape", wname)))]
        for s, _ in peers:
            if applies(s, wname):
                row += [fmt_time(results.get((s, wname))), fmt_ratio(ratio(results, s, wname))]
            else:
                row += ["-", "-"]
        w("| " + " | ".join(row) + " |")
    w("")
    w("![Median time per iteration of each workload and system](benchmarks.svg)")
    w("")
    w("Spread (minimum - maximum over the timed repeats):")
    w("")
    w("| workload | " + " | ".join(l for _, l in systems) + " |")
    w("|---|" + "---:|" * len(systems))
    for wname, _ in WORKLOADS:
        cells = []
        for s, _ in systems:
            r = results.get((s, wname))
            if not applies(s, wname):
                cells.append("-")
            else:
                cells.append("n/a" if r is None else f"{r['min']:.3g} - {r['max']:.3g} {r['units']}")
        w(f"| `{wname}` | " + " | ".join(cells) + " |")
    w("")
    w("### Targets")
    w("")
    w("| target | measured | met |")
    w("|---|---|---|")

    def target(text, system, wname, need):
        x = ratio(results, system, wname)
        if x is None:
            w(f"| {text} | n/a | not measured |")
        else:
            w(f"| {text} | {dict(SYSTEMS)[system]} / cltape = {x:.2f} | {'yes' if x >= need else 'no'} |")

    for wname in ("mlp_train_step", "cnn_train_step"):
        target(f"`{wname}` at least as fast as PyTorch", "pytorch", wname, 1.0)
        target(f"`{wname}` at least as fast as TensorFlow (eager)", "tensorflow", wname, 1.0)
    target("`memory_chain_4m` at least as fast as PyTorch", "pytorch", "memory_chain_4m", 1.0)
    target("`eager_scalar_chain` within 2x of PyTorch", "pytorch", "eager_scalar_chain", 0.5)
    target("`eager_scalar_chain` no slower than PyTorch (eager)", "pytorch", "eager_scalar_chain", 1.0)
    target("`diag_sum_4m` within 1.5x of PyTorch", "pytorch", "diag_sum_4m", 1 / 1.5)
    pt = results.get(("pytorch", "diag_sum_4m"))
    for system, text, short in (("cltape-pinned", "cltape, workers pinned", "cltape, workers pinned"),
                                ("floor:opencl", "a bare OpenCL program on the same device (`bench_sum_floor`)",
                                 "bare OpenCL"),
                                ("floor-pinned:opencl", "the bare OpenCL program, workers pinned",
                                 "bare OpenCL, workers pinned")):
        r = results.get((system, "diag_sum_4m"))
        if pt and r:
            x = to_ms(pt) / to_ms(r)
            w(f"| `diag_sum_4m` within 1.5x of PyTorch: {text} | PyTorch / {short} = {x:.2f} |"
              f" {'yes' if x >= 1 / 1.5 else 'no'} |")
    # the fastest peer of the memory chain, whichever it is
    peer_x = [(ratio(results, s, "memory_chain_4m"), s) for s, _ in SYSTEMS
              if s not in ("cltape", "cltape-pinned", "openblas")]
    peer_x = [(x, s) for x, s in peer_x if x is not None]
    if peer_x:
        x, s = min(peer_x)
        w(f"| `memory_chain_4m` at least 3x faster than the fastest peer | {dict(SYSTEMS)[s]} / cltape = {x:.2f} |"
          f" {'yes' if x >= 3 else 'no'} |")
    else:
        w("| `memory_chain_4m` at least 3x faster than the fastest peer | n/a | not measured |")
    w("")
    w("## cltape alone")
    w("")
    w("### Start-up")
    w("")
    w("A child process creates a context and computes the scalar chain's gradient once. Cold: `CLTAPE_CACHE_DIR` and"
      " `POCL_CACHE_DIR` point at new empty directories, so every program is compiled. Warm: the same directories,"
      " filled by the cold run. Time from spawn to exit.")
    w("")
    w("| start | median | min - max | runs | programs built | loaded from cache | build/load time |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for wname in ("start_cold", "start_warm"):
        r = results.get(("cltape", wname))
        if r is None:
            w(f"| {wname[6:]} | n/a | | | | | |")
        else:
            w(f"| {wname[6:]} | {fmt_time(r)} | {r['min']:.4g} - {r['max']:.4g} ms | {r['repeats']} |"
              f" {r['programs_built']} | {r['programs_from_cache']} | {r['build_seconds']:.3f} s |")
    w("")
    w("### Programs, kernels and device memory per workload")
    w("")
    w("Counted by `ct_context_stats_get` in the benchmark process (caches already warm): programs compiled or"
      " loaded during the workload (warm-up included), compiled during the timed repeats, kernels launched per"
      " iteration, and the peak of device bytes in use (`peak_bytes_in_use` after `ct_context_reset_peak`; inputs"
      " and parameters included).")
    w("")
    w("| workload | programs built | loaded from cache | built while timed | kernels / iteration | peak device memory |")
    w("|---|---:|---:|---:|---:|---:|")
    for wname, _ in WORKLOADS + DIAGS:
        r = results.get(("cltape", wname))
        if r is None:
            w(f"| `{wname}` | n/a | n/a | n/a | n/a | n/a |")
        else:
            w(f"| `{wname}` | {r['programs_built']} | {r['programs_from_cache']} | {r['programs_built_timed']} |"
              f" {r['kernels_per_iter']:.0f} | {fmt_bytes(r['peak_bytes'])} |")
    w("")
    w("### Single-op diagnostics")
    w("")
    w("What one op costs, to tell launch overhead, bandwidth and GEMM efficiency apart"
      " (see [performance.md](performance.md)).")
    w("")
    w("Median over the rounds, the fastest repeat in brackets; the derived rate is the median's.")
    w("")
    w("| op | cltape | derived | cltape, workers pinned | derived | PyTorch, same op | derived | JAX (jit), same op"
      " | derived |")
    w("|---|---:|---|---:|---|---:|---|---:|---|")
    derived = {
        "diag_add_4m": lambda r: f"{48 * (1 << 20) / (to_ms(r) / 1e3) / 1e9:.2f} GB/s",
        "diag_sin_4m": lambda r: f"{32 * (1 << 20) / (to_ms(r) / 1e3) / 1e9:.2f} GB/s",
        "diag_sum_4m": lambda r: f"{16 * (1 << 20) / (to_ms(r) / 1e3) / 1e9:.2f} GB/s",
        "diag_gemm_1024": lambda r: f"{2 * 1024 ** 3 / (to_ms(r) / 1e3) / 1e9:.1f} GFLOP/s",
    }
    for wname, title in DIAGS:
        cells = []
        for system in ("cltape", "cltape-pinned", "pytorch", "jax-jit"):
            r = results.get((system, wname))
            if system in ("pytorch", "jax-jit") and wname == "diag_launch_add_scalar_sync":
                cells += ["-", "(PyTorch's CPU ops are synchronous)" if system == "pytorch" else "(waited for every time)"]
                continue
            best = f" ({r['min']:.3g})" if r is not None else ""
            cells += [fmt_time(r) + best, derived[wname](r) if r is not None and wname in derived else ""]
        w(f"| {title} (`{wname}`) | " + " | ".join(cells) + " |")
    ob = results.get(("openblas", "matmul_1024"))
    if ob:
        w(f"| the three GEMMs of `matmul_1024` | | | | | OpenBLAS: {fmt_time(ob)} |"
          f" {3 * 2 * 1024 ** 3 / (to_ms(ob) / 1e3) / 1e9:.1f} GFLOP/s | | |")
    w("")
    floor_section(w, results)
    if run.get("skipped"):
        w("## Skipped")
        w("")
        for s, why in run["skipped"].items():
            w(f"- {s}: {why}")
        w("")
    w("## Raw results")
    w("")
    w("<details><summary>JSON lines of this run</summary>")
    w("")
    w("```")
    for key in sorted(results):
        w(json.dumps(results[key], sort_keys=True))
    w("```")
    w("")
    w("</details>")
    os.makedirs(os.path.dirname(os.path.abspath(args.md)), exist_ok=True)
    with open(args.md, "w") as f:
        f.write("\n".join(md) + "\n")
    svg_chart(results, systems, args.svg)
    print(f"report: wrote {args.md} and {args.svg}")


if __name__ == "__main__":
    main()
