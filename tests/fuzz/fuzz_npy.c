/*
 * libFuzzer harness for the .npy reader and the .npz (zip) reader. An input starting with "PK" is
 * read as an archive and every member is read as an array; any other input as one .npy file. Build:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ibase -Ilib -Ibuild/generated base/status.c base/handle.c base/fileio.c lib/formats/npy.c \
 *         tests/fuzz/fuzz_npy.c -lzip -o fuzz_npy
 *   ./fuzz_npy -max_total_time=60 -dict=tests/fuzz/npy.dict tests/fuzz/corpus/npy
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What every successful read must satisfy; touching the first and last byte lets ASan check the
 * buffer's size. */
static void check(ct_status st, ct_npy *x) {
  if (st != CT_OK && ct_errmsg()[0] == '\0') abort(); /* every error carries a message */
  if (st != CT_OK) {
    if (x->data != NULL) abort();
    return;
  }
  if (x->data == NULL || x->rank < 0 || x->rank > CT_MAX_RANK || (unsigned)x->type >= CT_NPY_TYPES) abort();
  size_t count = 1;
  for (int i = 0; i < x->rank; i++) count *= (size_t)x->shape[i];
  if (count != x->count || x->nbytes != count * ct_npy_type_size(x->type)) abort();
  if (x->nbytes > 0) {
    volatile uint8_t sink = ((const uint8_t *)x->data)[0] ^ ((const uint8_t *)x->data)[x->nbytes - 1];
    (void)sink;
  }
  ct_npy_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ct_npy x;
  if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
    ct_npz *z = NULL;
    ct_status st = ct_npz_open_memory(data, size, &z);
    if (st != CT_OK) {
      if (z != NULL || ct_errmsg()[0] == '\0') abort();
      return 0;
    }
    for (int i = 0; i < ct_npz_count(z) && i < 16; i++) {
      const char *m = ct_npz_member(z, i);
      if (m == NULL) continue;
      char name[256];
      size_t n = strlen(m);
      if (n >= sizeof name) continue;
      memcpy(name, m, n + 1);
      check(ct_npz_read(z, name, &x), &x);
    }
    check(ct_npz_read(z, "no such array", &x), &x);
    ct_npz_close(z);
    return 0;
  }
  check(ct_npy_parse(data, size, &x), &x);
  return 0;
}
