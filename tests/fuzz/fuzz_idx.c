/*
 * libFuzzer harness for the IDX reader (plain and gzip input). Build:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ibase -Ilib -Ibuild/generated base/status.c base/handle.c base/fileio.c lib/formats/idx.c \
 *         tests/fuzz/fuzz_idx.c -lz -o fuzz_idx
 *   ./fuzz_idx -max_total_time=60 tests/fuzz/corpus/idx
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "formats/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ct_idx x;
  ct_status st = ct_idx_parse(data, size, &x);
  if (st != CT_OK && ct_errmsg()[0] == '\0') abort(); /* every error carries a message */
  if (st == CT_OK) {
    if (x.data == NULL || x.ndims < 1 || x.ndims > CT_MAX_RANK) abort();
    size_t count = 1;
    for (int i = 0; i < x.ndims; i++) count *= (size_t)x.dims[i];
    if (count != x.count || x.nbytes != count * ct_idx_type_size(x.type) || x.elem_size == 0) abort();
    if (x.nbytes > 0) {
      volatile uint8_t sink = ((const uint8_t *)x.data)[0] ^ ((const uint8_t *)x.data)[x.nbytes - 1];
      (void)sink;
    }
    /* Plain input holds exactly the header and the data. */
    if (!(size >= 2 && data[0] == 0x1f && data[1] == 0x8b) && size != 4 + 4 * (size_t)x.ndims + x.nbytes) abort();
  } else if (x.data != NULL) {
    abort();
  }
  ct_idx_free(&x);
  return 0;
}
