#!/usr/bin/env bash
# Compiles every program cltape can build for GPU instruction sets, without a GPU: NVIDIA (OpenCL C
# -> PTX with clang and libclc, then ptxas for sm_80 and sm_90) and AMD (clang's AMDGPU backend,
# gfx90a and gfx1100). The programs come from the library itself (`cltape-devices
# --dump-programs`): every kernel file and the generated elementwise kernels in every dtype (the
# half builds of the elementwise and reduction programs included), every matrix-product tile
# the tuner can choose, and a fused kernel calling every row (scalar and in vector form). Fails on
# any compile error, and on any register
# spill in a program the device defaults use. Writes registers and spills per kernel to
# $build/gpu-compile/kernels.tsv (program, role, target, kernel, registers, spilled bytes or
# registers). Where ptxas is missing it says so and skips only the NVIDIA assembly step.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${CLTAPE_BUILD_DIR:-build}
tool="$build/tools/cltape-devices"
[ -x "$tool" ] || { echo "gpu_compile: $tool is missing: build cltape first (./scripts/test.sh)" >&2; exit 1; }
clang=${CLANG:-clang-15}
clc=${LIBCLC_DIR:-/usr/lib/clc}
command -v "$clang" >/dev/null || { echo "gpu_compile: $clang is missing (./scripts/setup.sh installs it)" >&2; exit 1; }
for bc in nvptx64--nvidiacl.bc amdgcn--amdhsa.bc; do
  [ -f "$clc/$bc" ] || { echo "gpu_compile: $clc/$bc is missing (libclc-15)" >&2; exit 1; }
done
ptxas=$(command -v ptxas || true)
[ -n "$ptxas" ] || { [ -x /usr/local/cuda/bin/ptxas ] && ptxas=/usr/local/cuda/bin/ptxas; } || true
if [ -z "$ptxas" ]; then
  echo "gpu_compile: ptxas (CUDA toolkit) not found: PTX is generated but not assembled for sm_80/sm_90;" \
       "registers and spills are reported for AMD only"
fi

out="$build/gpu-compile"
rm -rf "$out"
mkdir -p "$out/src" "$out/obj"
"$tool" --dump-programs "$out/src" >/dev/null
export clang clc ptxas out

# one program: its kernels' registers and spills on each target, as TSV lines; errors to .err
compile_one() {
  local name=$1 role=$2 opts=$3 src="$out/src/$1.cl" o="$out/obj/$1" log
  local cl=(-x cl -cl-std=CL1.2 -O2 -S -Wno-override-module)
  read -r -a defs <<<"$opts"
  # libclc-15's NVPTX native_exp, native_log, native_sin, native_cos and native_tan become libm
  # calls or nodes the NVPTX backend cannot select (expf, fsin); NVIDIA's own compiler has them.
  # Here they compile as exp, log, sin, cos and tan.
  local nv=(-Dnative_exp=exp -Dnative_log=log -Dnative_sin=sin -Dnative_cos=cos -Dnative_tan=tan)
  # The half builds (-DCT_HALF=1: float16 computed in half where the device has cl_khr_fp16): clang's
  # NVPTX target does not enable cl_khr_fp16 by itself (NVIDIA's compiler does), and lowers half
  # arithmetic through float below sm_53; with sm_80 the PTX holds the f16 instructions
  # (add.rn.f16, mul.rn.f16, ...) that the driver compiles. The AMDGPU targets have the extension.
  if [[ " $opts " == *" -DCT_HALF=1 "* ]]; then
    nv+=(-Xclang -cl-ext=+cl_khr_fp16 -Xclang -target-cpu -Xclang sm_80)
  fi
  if ! log=$("$clang" "${cl[@]}" -target nvptx64-nvidia-nvcl -Xclang -mlink-bitcode-file \
      -Xclang "$clc/nvptx64--nvidiacl.bc" "${defs[@]}" "${nv[@]}" -o "$o.ptx" "$src" 2>&1); then
    printf '%s nvptx64: %s\n' "$name" "$log" >"$o.err"; return 0
  fi
  if [ -n "$ptxas" ]; then
    for sm in sm_80 sm_90; do
      if ! log=$("$ptxas" -arch=$sm -v "$o.ptx" -o "$o.$sm.cubin" 2>&1); then
        printf '%s %s: %s\n' "$name" "$sm" "$log" >>"$o.err"; continue
      fi
      # "Compiling entry function 'k'", "N bytes spill stores, M bytes spill loads", "Used R registers"
      awk -v p="$name" -v r="$role" -v t="$sm" '
        /Compiling entry function/ { match($0, /\x27[^\x27]+\x27/); k = substr($0, RSTART + 1, RLENGTH - 2); sp = 0 }
        /bytes spill stores/ { sp = $5 + $9 }
        /Used [0-9]+ registers/ { for (i = 1; i <= NF; ++i) if ($i == "Used") print p "\t" r "\t" t "\t" k "\t" $(i + 1) "\t" sp }
      ' <<<"$log" >>"$o.tsv"
      rm -f "$o.$sm.cubin"
    done
  fi
  for gfx in gfx90a gfx1100; do
    if ! log=$("$clang" "${cl[@]}" -target amdgcn-amd-amdhsa -mcpu=$gfx -nogpulib -Xclang -mlink-bitcode-file \
        -Xclang "$clc/amdgcn--amdhsa.bc" "${defs[@]}" -o "$o.$gfx.s" "$src" 2>&1); then
      printf '%s %s: %s\n' "$name" "$gfx" "$log" >>"$o.err"; continue
    fi
    # the kernel metadata: .name, then .sgpr_spill_count, .vgpr_count, .vgpr_spill_count
    awk -v p="$name" -v r="$role" -v t="$gfx" '
      /^    \.name:/ { k = $2; ss = 0 }
      /^    \.sgpr_spill_count:/ { ss = $2 }
      /^    \.vgpr_count:/ { vc = $2 }
      /^    \.vgpr_spill_count:/ { print p "\t" r "\t" t "\t" k "\t" vc "\t" ($2 + ss) }
    ' "$o.$gfx.s" >>"$o.tsv"
    rm -f "$o.$gfx.s"
  done
  rm -f "$o.ptx"
}
export -f compile_one

start=$(date +%s)
n=$(wc -l <"$out/src/programs.tsv")
echo "gpu_compile: $n programs for sm_80, sm_90, gfx90a, gfx1100 ($(nproc) jobs)"
tr '\t\n' '\0\0' <"$out/src/programs.tsv" | xargs -0 -n 3 -P "$(nproc)" bash -c 'compile_one "$@"' _

printf 'program\trole\ttarget\tkernel\tregisters\tspilled\n' >"$out/kernels.tsv"
cat "$out"/obj/*.tsv 2>/dev/null | sort >>"$out/kernels.tsv" || true
status=0
if compgen -G "$out/obj/*.err" >/dev/null; then
  echo "gpu_compile: compile errors:" >&2
  cat "$out"/obj/*.err >&2
  status=1
fi
# spills in what the defaults run fail; in programs outside the defaults (tiles only the tuner may
# choose, the fused attention that CLTAPE_ATTENTION=fused asks for, the chains of every row) they are reported
awk -F'\t' 'NR > 1 && $6 > 0 && $2 == "default" { print "gpu_compile: spill in a default program: " $1 " " $4 " on " $3 ": " $6 " (registers " $5 ")"; bad = 1 }
            END { exit bad }' "$out/kernels.tsv" >&2 || status=1
spilled_tuner=$(awk -F'\t' 'NR > 1 && $6 > 0 && $2 != "default"' "$out/kernels.tsv" | cut -f1 | sort -u | wc -l)
kernels=$(($(wc -l <"$out/kernels.tsv") - 1))
# most registers per target among the kernels of the default programs
summary=$(awk -F'\t' 'NR > 1 && $2 == "default" { if ($5 + 0 > m[$3]) { m[$3] = $5 + 0; w[$3] = $1 " " $4 } }
                     END { for (t in m) printf "  %-8s most registers in a default program: %d (%s)\n", t, m[t], w[t] }' \
          "$out/kernels.tsv" | sort)
echo "$summary"
echo "gpu_compile: $kernels kernel builds checked; programs outside the defaults that spill: $spilled_tuner" \
     "(allowed: the tuner times its tiles; the fused attention is asked for by name; no fused kernel chains every row); $(($(date +%s) - start)) s"
# which ones, to read before making one of them a default
awk -F'\t' 'NR > 1 && $6 > 0 && $2 != "default" && $1 !~ /^matmul/ { print "gpu_compile: spill outside the defaults: " $1 " " $4 " on " $3 ": " $6 " (registers " $5 ")" }' "$out/kernels.tsv"
[ $status -eq 0 ] && echo "gpu_compile: ok (no error, no spill in the defaults)"
exit $status
