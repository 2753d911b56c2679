#!/usr/bin/env bash
# Regenerates the seed corpus of the program-cache fuzzer (tests/fuzz/fuzz_cache.c): valid
# entries with small payloads and near misses of each check of ctb_cache_parse. An entry is
# "CTPB0001", the payload length (8 bytes, little-endian), the payload's SHA-256, the payload.
# Usage: tests/fuzz/make_cache_corpus.sh  (from anywhere; needs bash and coreutils)
set -euo pipefail
export LC_ALL=C
out="$(cd "$(dirname "$0")" && pwd)/corpus/cache"
mkdir -p "$out"
rm -f "$out"/*

le64() { local n=$1 i; for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf '%03o' $(((n >> (8 * i)) & 255)))"; done; }
hexbytes() { local h=$1 i; for ((i = 0; i < ${#h}; i += 2)); do printf "\\$(printf '%03o' "0x${h:i:2}")"; done; }
# entry <file> <payload file> [length] [magic]: a well-formed entry unless length/magic are given
entry() {
  local f=$1 p=$2 n=${3:-$(wc -c < "$2")} magic=${4:-CTPB0001}
  { printf '%s' "$magic"; le64 "$n"; hexbytes "$(sha256sum < "$p" | cut -c1-64)"; cat "$p"; } > "$out/$f"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'x' > "$tmp/one"
printf '\x7fELF\x02\x01\x01\x00binary of a kernel' > "$tmp/small"
for i in $(seq 0 63); do printf '\\%03o' $(((i * 37 + 11) & 255)); done | xargs -0 printf > "$tmp/mixed"

entry valid_one.bin "$tmp/one"
entry valid_small.bin "$tmp/small"
entry valid_mixed.bin "$tmp/mixed"
entry near_magic.bin "$tmp/small" "" CTPB0002
entry near_length_long.bin "$tmp/small" $(($(wc -c < "$tmp/small") + 1))
entry near_length_short.bin "$tmp/small" $(($(wc -c < "$tmp/small") - 1))
entry near_length_zero.bin "$tmp/small" 0
entry near_length_huge.bin "$tmp/small" 4294967296
cp "$out/valid_small.bin" "$out/near_checksum.bin"
printf '\x00' | dd of="$out/near_checksum.bin" bs=1 seek=20 conv=notrunc status=none
head -c 30 "$out/valid_small.bin" > "$out/near_truncated_head.bin"
head -c $(($(wc -c < "$out/valid_small.bin") - 1)) "$out/valid_small.bin" > "$out/near_truncated_payload.bin"
{ cat "$out/valid_one.bin"; printf 'z'; } > "$out/near_trailing.bin"
printf 'CTPB0001' > "$out/near_magic_only.bin"
: > "$out/empty.bin"
