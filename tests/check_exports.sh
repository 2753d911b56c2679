#!/usr/bin/env bash
# The shared library exports exactly the functions the public headers declare (CT_API), nothing
# else: hidden visibility by default.
# Usage: check_exports.sh <libcltape.so> <include dir>...
set -euo pipefail
lib=$1
shift
incs=()
for d in "$@"; do incs+=(-I "$d"); done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include <cltape.h>\n#include <cltape_cl.h>\n' > "$tmp/all.c"
for h in cltape_nn.h cltape_dlpack.h; do
  for d in "$@"; do [ -f "$d/$h" ] && printf '#include <%s>\n' "$h" >> "$tmp/all.c" && break; done
done
cc -E -P -DCLTAPE_BUILDING "${incs[@]}" "$tmp/all.c" | tr "\n" " " | sed "s/__attribute__((visibility(\"default\")))/\n__ct_api__/g" | grep -o "__ct_api__[^;{]*" |
  grep -oE '\bct_[A-Za-z0-9_]+ *\(' | head -c 1000000 | sed 's/ *($//' | sort -u > "$tmp/declared"
nm -D --defined-only "$lib" | awk '$2 ~ /[TtWw]/ {print $3}' | sort -u > "$tmp/exported"
extra=$(comm -13 "$tmp/declared" "$tmp/exported")
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
echo "declared: $(wc -l < "$tmp/declared"), exported: $(wc -l < "$tmp/exported")"
[ -z "$extra" ] || { echo "exported but not declared in a public header:"; echo "$extra"; }
[ -z "$missing" ] || { echo "declared but not exported:"; echo "$missing"; }
[ -z "$extra" ] && [ -z "$missing" ]
