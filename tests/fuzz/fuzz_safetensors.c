/*
 * libFuzzer harness for the safetensors reader. Build:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ibase -Ilib -Ibuild/generated base/status.c base/handle.c base/fileio.c lib/formats/safetensors.c \
 *         tests/fuzz/fuzz_safetensors.c -lcjson -o fuzz_safetensors
 *   ./fuzz_safetensors -max_total_time=60 tests/fuzz/corpus/safetensors
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ct_st_file f;
  ct_status st = ct_st_parse(data, size, &f);
  if (st != CT_OK && ct_errmsg()[0] == '\0') abort(); /* every error carries a message */
  if (st == CT_OK) {
    /* Touch everything the reader promises, so that ASan checks the sizes. */
    size_t total = 0;
    for (int i = 0; i < f.count; i++) {
      const ct_st_entry *e = &f.entries[i];
      if (e->name == NULL || e->data == NULL || e->rank < 0 || e->rank > CT_MAX_RANK) abort();
      if (e->nbytes > 0) {
        volatile uint8_t sink = ((const uint8_t *)e->data)[0] ^ ((const uint8_t *)e->data)[e->nbytes - 1];
        (void)sink;
      }
      if (ct_st_find(&f, e->name) == NULL) abort();
      total += e->nbytes;
    }
    for (int i = 0; i < f.meta_count; i++)
      if (strlen(f.meta_keys[i]) + strlen(f.meta_values[i]) > size) abort();
    /* The tensors tile the data block exactly. */
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
    if (8 + n + total != size) abort();
  } else if (f.entries != NULL || f.count != 0 || f.metadata_json != NULL) {
    abort(); /* output is zeroed on error */
  }
  ct_st_file_free(&f);
  return 0;
}
