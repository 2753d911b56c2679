#!/usr/bin/env bash
# Proves the "how to add an op" steps of docs/ARCHITECTURE.md: in a scratch copy of the source
# tree it adds a unary op (Atan) as one row of lib/ops.def plus one gradient function in
# lib/grad.c, regenerates docs/tape.md's op list, builds, and checks that
#   - the public function ct_atan is declared (cltape_ops.h) and exported,
#   - the generated forward test checks the new row against its host reference, and the
#     gradient walker checks its gradient and second derivative,
#   - a wrong reference or a missing domain fails the suite with a message naming the row.
# No test file is edited. Usage: scripts/check_add_op.sh [jobs]   (about two minutes on 2 cores)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
jobs=${1:-2}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
say() { printf '\n== %s\n' "$*"; }
fail() { echo "check_add_op: $*" >&2; exit 1; }

say "scratch copy of $src"
tar -C "$src" --exclude='./build*' --exclude='./.git' -cf - . | tar -C "$scratch" -xf -
cd "$scratch"

say "1. one row in lib/ops.def (after Erf)"
row='X(ATAN,       atan,       "Atan",       UN, 1, DF, "atan(x)",       R(atan(x)),           SV(S_IN0, 0, 0), NONE, ct__fwd_unary, DOM(-1.3, 0.5, 0, 0, 0),  ct__grad_atan)'
awk -v row="$row" '{print} /^X\(ERF,/ {print row}' lib/ops.def > lib/ops.def.new && mv lib/ops.def.new lib/ops.def
grep -q '^X(ATAN,' lib/ops.def || fail "the row was not added"

say "2. one gradient function in lib/grad.c"
cat >> lib/grad.c <<'EOF'

/* d atan(x) = dy / (1 + x^2) */
CT_GRADIENT(ct__grad_atan) {
  ct_tensor *x2 = NULL, *d = NULL;
  ct_status s = ct_square(IN(0), &x2);
  if (s == CT_OK) s = ct_add_scalar(x2, 1.0, &d);
  if (s == CT_OK) s = ct_div(dy, d, &dx[0]);
  DROP(x2, d);
  return s;
}
EOF

say "3. configure, build, regenerate the docs' op list"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLTAPE_WERROR=ON -DCLTAPE_BUILD_EXAMPLES=OFF \
  -DCLTAPE_BUILD_BENCH=OFF >/dev/null
cmake --build build -j"$jobs" --target cltape_gen_ops >/dev/null
build/cmake/gen_ops check docs/tape.md >/dev/null 2>&1 && fail "the docs' check did not notice the new row"
build/cmake/gen_ops update docs/tape.md
grep -q '^| Atan | `ct_atan` |' docs/tape.md || fail "docs/tape.md does not list Atan"
cmake --build build -j"$jobs" --target cltape test_op_table test_gradcheck >/dev/null
grep -q 'X(atan)' build/generated/cltape_ops.h || fail "cltape_ops.h does not declare ct_atan"
nm -D --defined-only build/libcltape.so > build/exports.txt
grep -qw ct_atan build/exports.txt || fail "ct_atan is not exported"

say "4. the suite picks the row up"
export CLTAPE_DEVICE=${CLTAPE_DEVICE:-cpu}
ctest --test-dir build -R '^(op_list_in_docs|exported_symbols)$' --output-on-failure >/dev/null \
  || fail "op_list_in_docs or exported_symbols failed"
build/tests/test_op_table --jobs "$jobs" || fail "test_op_table failed with the new row"
for t in every_op_of_the_table second_derivatives_unary; do
  build/tests/test_gradcheck --jobs "$jobs" --filter "gradcheck/$t" || fail "test_gradcheck $t failed with the new row"
done

say "5. a wrong reference fails, naming the row"
sed -i 's/R(atan(x)),   /R(atan(x) + 0.01),/' lib/ops.def
cmake --build build -j"$jobs" --target test_op_table >/dev/null
if out=$(build/tests/test_op_table --jobs "$jobs" 2>&1); then fail "a wrong reference passed"; fi
grep -q 'Atan on (2, 3)' <<<"$out" || fail "the failure does not name Atan: $out"

say "6. a row without a domain fails, naming the row"
sed -i 's/R(atan(x) + 0.01),/R(atan(x)),       /; s/DOM(-1.3, 0.5, 0, 0, 0),  ct__grad_atan)/NODOM, ct__grad_atan)/' lib/ops.def
cmake --build build -j"$jobs" --target test_op_table test_gradcheck >/dev/null
if out=$(build/tests/test_op_table --jobs "$jobs" 2>&1); then fail "a row without a domain passed"; fi
grep -q 'op Atan (row ATAN of lib/ops.def) has no test domain' <<<"$out" || fail "no message naming Atan: $out"
if out=$(build/tests/test_gradcheck --filter 'gradcheck/every_op_of_the_table' 2>&1); then
  fail "the gradient walker passed a row without a domain"
fi
grep -q 'op Atan (row ATAN of lib/ops.def) has a gradient and no test domain' <<<"$out" || fail "walker: $out"

say "check_add_op: adding an op takes one row and one gradient function; the tests pick it up"
