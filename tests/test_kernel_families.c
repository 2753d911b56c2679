/* test_kernel_families.c — every kernel family on tiny odd shapes against host references
 * (tests/kernels/kernel_families.c, which scripts/reliability.sh also runs under oclgrind). */
#define _POSIX_C_SOURCE 200809L /* before any system header: kernel_families.c uses mkdtemp, setenv */
#define KERNEL_FAMILIES_NO_MAIN
#include "support.h"
#include "kernels/kernel_families.c"

Test(kernel_families, every_family_on_tiny_odd_shapes) {
  ct_context *ctx = ts_ctx();
  int failures = kf_run(ctx);
  cr_assert_eq(failures, 0, "%d of %d checks failed (listed above)", failures, kf_checks);
  cr_assert_gt(kf_checks, 300, "only %d checks ran", kf_checks);
  ct_context_free(ctx);
}
