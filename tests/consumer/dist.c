/* Built against an installed cltape_dist: one replica's variables broadcast to a second context's,
 * and, when cltape_dist has its MPI part, its options (no MPI process is started). */
#include <cltape_dist.h>
#include <stdio.h>

int main(void) {
  ct_context *ctx[2] = {NULL, NULL};
  ct_tensor *v[2] = {NULL, NULL};
  double got = 0;
  int ok = ct_context_create(NULL, &ctx[0]) == CT_OK && ct_context_create(NULL, &ctx[1]) == CT_OK &&
           ct_variable_scalar(ctx[0], 2.5, "w", true, &v[0]) == CT_OK &&
           ct_variable_scalar(ctx[1], 0.0, "w", true, &v[1]) == CT_OK &&
           ct_replicas_broadcast_variables(v, 2, 1) == CT_OK && ct_tensor_item(v[1], &got) == CT_OK;
  if (!ok) fprintf(stderr, "%s\n", ct_dist_errmsg()[0] ? ct_dist_errmsg() : ct_errmsg());
  printf("consumer (cltape_dist): broadcast w = %g\n", got);
#ifdef CLTAPE_HAVE_MPI
  ct_dist_options o = ct_dist_default_options();
  printf("consumer (cltape_dist): MPI part, default timeout %g s\n", o.timeout_s);
  ok = ok && o.timeout_s > 0;
#endif
  for (int i = 0; i < 2; ++i) {
    ct_tensor_free(v[i]);
    ct_context_free(ctx[i]);
  }
  return ok && got == 2.5 ? 0 : 1;
}
