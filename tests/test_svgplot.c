/* The plot writer used by the tour and the training example. */
#include "support.h"
#include "svgplot.h"

Test(svgplot, selftest) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/svgplot_test_out", CLTAPE_BINARY_DIR);
  cr_assert_eq(svgplot_selftest(dir), 0, "svgplot self-test reported failures");
}
