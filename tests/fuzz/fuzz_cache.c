/*
 * libFuzzer harness for the program-cache reader (ctb_cache_parse in host/program.c): an entry
 * read from ~/.cache/cltape may be damaged, truncated or written by someone else, and must be
 * either accepted whole or refused, never read past; an entry is valid only for its own key. Each
 * input is checked twice: as an entry as it is, and wrapped as the payload of a well-formed entry
 * (which must be accepted exactly). The check of PoCL's binaries (ctb_driver_binary_ok) reads each
 * input too, as it is and behind PoCL's magic, and must stay inside it.
 * Build (program.c, base/fileio.c and base/text.c; the rest of the library is replaced by the stand-ins at the end):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DCL_TARGET_OPENCL_VERSION=120 -Iinclude -Ibase -Ilib -Ihost -Ibuild/generated \
 *         host/program.c base/fileio.c base/text.c tests/fuzz/fuzz_cache.c -lnettle -lOpenCL -o fuzz_cache
 *   ./fuzz_cache -max_total_time=60 tests/fuzz/corpus/cache
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ct_host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the key the seed corpus is bound to (tests/fuzz/make_cache_corpus.sh) */
static const char KEY[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char OTHER_KEY[] = "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void check(const unsigned char *buf, size_t len) {
  size_t off = 1, n = 1;
  bool ok = ctb_cache_parse(buf, len, KEY, &off, &n);
  if (!ok) {
    if (off != 0 || n != 0) abort(); /* a refusal reports nothing */
    return;
  }
  /* an accepted entry: the payload is the rest of the buffer after the 48-byte head */
  if (off != 48 || n == 0 || off + n != len) abort();
  volatile unsigned char sink = buf[off] ^ buf[off + n - 1];
  (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a copy of exactly `size` bytes, so that a read past the end is caught */
  unsigned char *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  check(buf, size);
  /* the same bytes as a driver's binary, with PoCL's magic in front when they lack it: walked
   * within the buffer, never past it */
  (void)ctb_driver_binary_ok(buf, size);
  unsigned char *pb = malloc(size + 8);
  if (pb) {
    memcpy(pb, "poclbin", 8);
    memcpy(pb + 8, data, size);
    (void)ctb_driver_binary_ok(pb, size + 8);
    free(pb);
  }
  free(buf);
  /* the same bytes as the payload of a valid entry: accepted, payload found intact */
  if (size == 0) return 0;
  size_t len = 48 + size;
  unsigned char *e = malloc(len);
  if (!e) return 0;
  ctb_cache_head(KEY, data, size, e);
  memcpy(e + 48, data, size);
  size_t off, n;
  if (!ctb_cache_parse(e, len, KEY, &off, &n) || off != 48 || n != size || memcmp(e + off, data, size) != 0) abort();
  /* any shorter prefix of it is refused, and so is the whole entry read as another key's */
  if (ctb_cache_parse(e, len - 1, KEY, &off, &n)) abort();
  if (ctb_cache_parse(e, len, OTHER_KEY, &off, &n)) abort();
  free(e);
  return 0;
}

/* ---- stand-ins for what program.c uses from the rest of the library (never called here) ---- */
const struct {
  const char *name, *text;
  size_t len;
} ct_kernel_sources[1];
ct_status ct__error(const ct_context *ctx, ct_status s, const char *fmt, ...) {
  (void)ctx;
  (void)fmt;
  return s;
}
void ct__log(ct_log_level level, const char *fmt, ...) {
  (void)level;
  (void)fmt;
}
const char *ct_dtype_name(ct_dtype dt) { return dt == CT_FLOAT64 ? "float64" : "float32"; }
const char *ctb_cl_error_name(cl_int err) { return err ? "error" : "CL_SUCCESS"; }
int ctb_tune_tiles(const ct_device_info *info, ct_dtype dt, ctb_gemm_plan *out, bool *is_default, int cap) {
  (void)info, (void)dt, (void)out, (void)is_default, (void)cap;
  return 0;
}
void ctb_gemm_defines(const ctb_gemm_plan *p, bool pack_a, bool pack_b, char *buf, size_t cap) {
  (void)p, (void)pack_a, (void)pack_b;
  if (cap) buf[0] = 0;
}
