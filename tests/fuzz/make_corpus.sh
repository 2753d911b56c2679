#!/usr/bin/env bash
# Regenerates the seed corpora of the format fuzzers: a few valid files and near misses, each
# well under 4 KB. Usage: tests/fuzz/make_corpus.sh  (from anywhere; needs bash and gzip)
set -euo pipefail
export LC_ALL=C
here="$(cd "$(dirname "$0")" && pwd)"
st="$here/corpus/safetensors"
idx="$here/corpus/idx"
mkdir -p "$st" "$idx"
rm -f "$st"/* "$idx"/*

# One byte per argument, given as a number.
bytes() { for b in "$@"; do printf "\\$(printf '%03o' $((b & 255)))"; done; }
le64() { local n=$1 i; for i in 0 1 2 3 4 5 6 7; do bytes $(((n >> (8 * i)) & 255)); done; }
be32() { local n=$1; bytes $((n >> 24)) $((n >> 16)) $((n >> 8)) $n; }

# safetensors: <file> <header json> then the data bytes as numbers. The header is padded with
# spaces to a multiple of 8, as writers do.
st_file() {
  local out="$st/$1" h="$2"
  shift 2
  while (( ${#h} % 8 != 0 )); do h="$h "; done
  { le64 ${#h}; printf '%s' "$h"; bytes "$@"; } > "$out"
}
F32_1=(0 0 128 63)     # 1.0f
F32_M2=(0 0 0 192)     # -2.0f
F64_PI=(24 45 68 84 251 33 9 64)
I32_M1=(255 255 255 255)

st_file valid_one.safetensors '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' "${F32_1[@]}" "${F32_M2[@]}"
st_file valid_mixed.safetensors \
  '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"b":{"dtype":"F64","shape":[],"data_offsets":[8,16]},"c":{"dtype":"I32","shape":[1],"data_offsets":[16,20]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[20,20]}}' \
  "${F32_1[@]}" "${F32_M2[@]}" "${F64_PI[@]}" "${I32_M1[@]}"
st_file valid_empty.safetensors '{}'
st_file valid_meta_only.safetensors '{"__metadata__":{"k":"v","x":"y"}}'
st_file near_bad_offsets.safetensors '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}}' "${F32_1[@]}" "${F32_M2[@]}"
st_file near_overlap.safetensors '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' "${F32_1[@]}"
st_file near_dtype.safetensors '{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}' 0 60 0 188
st_file near_shape.safetensors '{"w":{"dtype":"I32","shape":[1,-1],"data_offsets":[0,4]}}' "${I32_M1[@]}"
st_file near_dup.safetensors '{"w":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}' "${I32_M1[@]}" "${I32_M1[@]}"
st_file near_dup_field.safetensors '{"w":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}' "${I32_M1[@]}"
st_file near_checkpoint.safetensors \
  '{"__metadata__":{"cltape.format":"2","cltape.optimizer":"Adam","cltape.optimizer.iterations":"9223372036854775807"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' \
  "${F32_1[@]}"
{ le64 4096; printf '{}'; } > "$st/near_header_length.safetensors"
head -c 40 "$st/valid_mixed.safetensors" > "$st/near_truncated.safetensors"

# IDX: <file> <type> <dims...> -- <data bytes...>, written plain and gzip-compressed.
idx_file() {
  local out="$idx/$1" type=$2 dims=() d
  shift 2
  while [ "$1" != "--" ]; do dims+=("$1"); shift; done
  shift
  { bytes 0 0 "$type" ${#dims[@]}; for d in "${dims[@]}"; do be32 "$d"; done; bytes "$@"; } > "$out"
  gzip -n -9 -c "$out" > "$out.gz"
}
idx_file labels_u8.idx 8 10 -- 5 0 4 1 9 2 1 3 1 4
idx_file images_u8.idx 8 2 3 3 -- 0 10 20 30 40 50 60 70 80 90 100 110 120 130 140 150 160 255
idx_file values_i8.idx 9 4 -- 128 255 0 127
idx_file values_i16.idx 11 2 -- 128 0 255 254
idx_file values_i32.idx 12 2 -- 0 0 1 0 255 255 255 253
idx_file values_f32.idx 13 2 1 -- 63 192 0 0 128 0 0 0
idx_file values_f64.idx 14 1 -- 64 9 33 251 84 68 45 24
idx_file empty_f32.idx 13 0 28 --
idx_file near_truncated.idx 8 3 3 -- 1 2 3 4 5
idx_file near_trailing.idx 8 2 -- 1 2 3
idx_file near_huge.idx 8 65536 65536 --
{ bytes 0 0 10 1; be32 1; bytes 7; } > "$idx/near_bad_type.idx"
{ bytes 0 0 8 9; } > "$idx/near_bad_ndims.idx"
gz="$idx/images_u8.idx.gz"
head -c $(($(wc -c < "$gz") - 4)) "$gz" > "$idx/near_gzip_truncated.idx.gz"
