/* The examples' images-per-second figure: a sliding window over recent samples
 * (examples/common/throughput.h). */
#include <criterion/criterion.h>
#include <math.h>

#include "throughput.h"

Test(throughput, no_rate_before_an_interval) {
  throughput_window w;
  throughput_reset(&w, 4, 10.0, 0);
  cr_assert(isnan(throughput_rate(&w)));
  throughput_add(&w, 10.0, 1000); /* no time passed: no rate rather than an infinite one */
  cr_assert(isnan(throughput_rate(&w)));
  throughput_add(&w, 12.0, 3000);
  cr_assert_float_eq(throughput_rate(&w), 1500.0, 1e-9);
}

Test(throughput, steady_work_gives_its_rate) {
  throughput_window w;
  throughput_reset(&w, 8, 0, 0);
  for (int i = 1; i <= 30; ++i) {
    throughput_add(&w, i * 0.5, i * 128.0);
    cr_assert_float_eq(throughput_rate(&w), 256.0, 1e-9, "after sample %d: %g", i, throughput_rate(&w));
  }
}

/* The rate follows the recent samples: after a slow phase, once the window holds only fast
 * samples it shows the fast rate, where an average from the start would show a mix. */
Test(throughput, the_window_slides) {
  throughput_window w;
  throughput_reset(&w, 4, 0, 0);
  double t = 0, images = 0;
  for (int i = 0; i < 10; ++i) throughput_add(&w, t += 1, images += 100);
  cr_assert_float_eq(throughput_rate(&w), 100.0, 1e-9);
  for (int i = 0; i < 3; ++i) throughput_add(&w, t += 1, images += 300);
  /* 4 intervals: one slow, three fast */
  cr_assert_float_eq(throughput_rate(&w), (100.0 + 900.0) / 4, 1e-9);
  throughput_add(&w, t += 1, images += 300);
  cr_assert_float_eq(throughput_rate(&w), 300.0, 1e-9);
  cr_assert_float_eq(images / t, 2200.0 / 14, 1e-9); /* what an average from the start would say */
}

/* A burst that was enqueued fast but finished slowly is counted at the time it finished: the rate
 * over the window stays what the device did, with no spike. */
Test(throughput, no_spike_from_a_fast_start) {
  throughput_window w;
  throughput_reset(&w, 8, 100.0, 0);
  throughput_add(&w, 100.001, 0);      /* taken before any step finished */
  throughput_add(&w, 102.0, 2560);     /* 20 batches of 128 finished after 2 s */
  cr_assert_float_eq(throughput_rate(&w), 1280.0, 1e-9);
  throughput_add(&w, 104.0, 5120);
  cr_assert_float_eq(throughput_rate(&w), 1280.0, 1e-9);
}

Test(throughput, window_sizes_are_clamped) {
  throughput_window w;
  throughput_reset(&w, 0, 0, 0); /* at least one interval: the last one */
  throughput_add(&w, 1, 10);
  throughput_add(&w, 2, 50);
  cr_assert_float_eq(throughput_rate(&w), 40.0, 1e-9);
  throughput_reset(&w, 100000, 0, 0); /* at most THROUGHPUT_MAX_INTERVALS */
  for (int i = 1; i <= 200; ++i) throughput_add(&w, i, i <= 100 ? i * 10.0 : 1000 + (i - 100) * 20.0);
  cr_assert_eq(w.len, THROUGHPUT_MAX_INTERVALS + 1);
  cr_assert_float_eq(throughput_rate(&w), 20.0, 1e-9);
  /* a reset empties it */
  throughput_reset(&w, 4, 500, 0);
  cr_assert(isnan(throughput_rate(&w)));
}
