#!/usr/bin/env bash
# Regenerates the seed corpus of the program-cache fuzzer (tests/fuzz/fuzz_cache.c): valid
# entries with small payloads and near misses of each check of ctb_cache_parse. An entry is
# "CTPB0002", the payload length (8 bytes, little-endian), the SHA-256 of the entry's key (64 hex
# digits) followed by the payload, the payload. Every seed is an entry of the key $key.
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
  local f=$1 p=$2 n=${3:-$(wc -c < "$2")} magic=${4:-CTPB0002} k=${5:-$key}
  { printf '%s' "$magic"; le64 "$n"; hexbytes "$({ printf '%s' "$k"; cat "$p"; } | sha256sum | cut -c1-64)"; cat "$p"; } > "$out/$f"
}
key=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'x' > "$tmp/one"
printf '\x7fELF\x02\x01\x01\x00binary of a kernel' > "$tmp/small"
for i in $(seq 0 63); do printf '\\%03o' $(((i * 37 + 11) & 255)); done | xargs -0 printf > "$tmp/mixed"

entry valid_one.bin "$tmp/one"
entry valid_small.bin "$tmp/small"
entry valid_mixed.bin "$tmp/mixed"
entry near_magic.bin "$tmp/small" "" CTPB0001
entry near_key.bin "$tmp/small" "" "" "f${key:1}"
entry near_length_long.bin "$tmp/small" $(($(wc -c < "$tmp/small") + 1))
entry near_length_short.bin "$tmp/small" $(($(wc -c < "$tmp/small") - 1))
entry near_length_zero.bin "$tmp/small" 0
entry near_length_huge.bin "$tmp/small" 4294967296
cp "$out/valid_small.bin" "$out/near_checksum.bin"
printf '\x00' | dd of="$out/near_checksum.bin" bs=1 seek=20 conv=notrunc status=none
head -c 30 "$out/valid_small.bin" > "$out/near_truncated_head.bin"
head -c $(($(wc -c < "$out/valid_small.bin") - 1)) "$out/valid_small.bin" > "$out/near_truncated_payload.bin"
{ cat "$out/valid_one.bin"; printf 'z'; } > "$out/near_trailing.bin"
printf 'CTPB0002' > "$out/near_magic_only.bin"
: > "$out/empty.bin"
