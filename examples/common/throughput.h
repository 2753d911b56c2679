/*
 * throughput.h — images per second over a sliding window of recent samples.
 *
 * A sample is (time, images done so far), taken where the work is known to be finished (after
 * reading a result back from the device). The rate is the images over the time between the
 * oldest and the newest sample in the window, so it follows the recent batches instead of the
 * whole epoch, and a sample taken before the device caught up cannot make it spike.
 *
 *     throughput_window w;
 *     throughput_reset(&w, 8, now(), 0);            // the window holds the last 8 intervals
 *     ...after a batch whose result was read: throughput_add(&w, now(), images_so_far);
 *     printf("%.0f img/s", throughput_rate(&w));   // NaN until there is an interval
 */
#ifndef CLTAPE_EXAMPLES_THROUGHPUT_H
#define CLTAPE_EXAMPLES_THROUGHPUT_H

#define THROUGHPUT_MAX_INTERVALS 64

typedef struct {
  double t[THROUGHPUT_MAX_INTERVALS + 1], images[THROUGHPUT_MAX_INTERVALS + 1]; /* a ring of samples */
  int intervals; /* how many intervals the window spans */
  int first, len; /* oldest sample's slot, samples held */
} throughput_window;

/* Empties the window and takes its first sample (time t in seconds, images done so far).
 * intervals is clamped to [1, THROUGHPUT_MAX_INTERVALS]. */
void throughput_reset(throughput_window *w, int intervals, double t, double images);

/* Takes a sample; the oldest one leaves once the window spans more than its intervals. */
void throughput_add(throughput_window *w, double t, double images);

/* Images per second between the oldest and the newest sample held; NaN when fewer than two
 * samples are held or no time passed between them. */
double throughput_rate(const throughput_window *w);

#endif /* CLTAPE_EXAMPLES_THROUGHPUT_H */
