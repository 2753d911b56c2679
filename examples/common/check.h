/* check.h — how the examples stop on an error: the call, its status and the library's message on
 * stderr, then exit status 1. */
#ifndef CLTAPE_EXAMPLES_CHECK_H
#define CLTAPE_EXAMPLES_CHECK_H
#include <cltape.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                                   \
  do {                                                                                \
    ct_status s_ = (call);                                                            \
    if (s_ != CT_OK) {                                                                \
      fprintf(stderr, "error: %s: %s: %s\n", #call, ct_status_str(s_), ct_errmsg()); \
      exit(1);                                                                        \
    }                                                                                 \
  } while (0)

#endif
