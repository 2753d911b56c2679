#!/usr/bin/env python3
"""Every public op has its gradient checked by finite differences, or is declared here as not
differentiable (or as no op).

An op is a public function (CT_API in the public headers) that takes a tensor (`const ct_tensor *`)
and gives tensors back (`ct_tensor **`). The rows of the op table (the ct_<row> functions the headers
generate with ##) are walked by tests/test_gradcheck.c itself; this script covers the rest: the
composites, the layer library's ops and anything added later. Each must be named in a test source
that runs the finite-difference checker (a file calling ct_gradcheck, or one it includes), or in
EXEMPT below with the reason. A new op without either fails this test.

    tests/check_gradcheck_coverage.py SOURCE_DIR
"""
import os
import re
import sys

HEADERS = ["include/cltape.h", "include/cltape_nn.h", "include/cltape_cl.h", "include/cltape_dlpack.h"]
# files that call ct_gradcheck only to test its own errors, or every function's bad inputs
NOT_CHECKERS = {"test_bad_inputs.c", "test_errors.c"}

EXEMPT = {
    "ct_zeros_like": "a constant of the operand's shape: its gradient is zero by definition",
    "ct_ones_like": "a constant of the operand's shape: its gradient is zero by definition",
    "ct_variable_create": "creates a variable (a leaf of the tape), not an op",
    "ct_variable_value": "reads a variable's value, not an op",
    "ct_tape_batch_jacobian": "a tape query, checked against the looped Jacobians in test_gradcheck.c",
}


def strip_comments(t):
    t = re.sub(r"/\*.*?\*/", " ", t, flags=re.S)
    return re.sub(r"//[^\n]*", " ", t)


def public_ops(src):
    ops = []
    for h in HEADERS:
        path = os.path.join(src, h)
        if not os.path.exists(path):
            continue
        t = strip_comments(open(path, encoding="utf-8").read())
        for m in re.finditer(r"CT_API\s+[^;{]*?\b(ct_\w+)\s*\(([^;]*?)\)\s*;", t, flags=re.S):
            name, params = m.group(1), m.group(2)
            if re.search(r"const\s+ct_tensor\s*\*", params) and re.search(r"ct_tensor\s*\*\s*\*", params):
                ops.append(name)
    return ops


def checker_sources(src):
    tests = os.path.join(src, "tests")
    files = [f for f in sorted(os.listdir(tests)) if f.endswith((".c", ".inc")) and f not in NOT_CHECKERS]
    text = {f: open(os.path.join(tests, f), encoding="utf-8").read() for f in files}
    chosen = {f for f, t in text.items() if "ct_gradcheck(" in t}
    for f in list(chosen):
        for inc in re.findall(r'#include\s+"([^"]+)"', text[f]):
            if inc in text:
                chosen.add(inc)
    return sorted(chosen), "\n".join(strip_comments(text[f]) for f in sorted(chosen))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src = sys.argv[1]
    ops = public_ops(src)
    files, body = checker_sources(src)
    if len(ops) < 20 or not files:
        print(f"found {len(ops)} ops and {len(files)} checker sources: the scan is broken", file=sys.stderr)
        return 1
    missing = [n for n in ops if n not in EXEMPT and not re.search(r"\b%s\b" % re.escape(n), body)]
    stale = [n for n in EXEMPT if n not in ops]
    for n in missing:
        print(f"{n}: a public op with no finite-difference gradient check (add one to a test that calls "
              f"ct_gradcheck, or declare it in EXEMPT of {os.path.basename(__file__)} with the reason)")
    for n in stale:
        print(f"{n}: declared in EXEMPT but not a public op any more")
    print(f"gradient checks: {len(ops)} public ops outside the table, {len(ops) - len(missing)} covered "
          f"({len(EXEMPT)} declared), in {', '.join(files)}")
    return 1 if missing or stale else 0


if __name__ == "__main__":
    sys.exit(main())
