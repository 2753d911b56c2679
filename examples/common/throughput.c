/* throughput.c — images per second over a sliding window (throughput.h). */
#include "throughput.h"

#include <math.h>

void throughput_reset(throughput_window *w, int intervals, double t, double images) {
  if (intervals < 1) intervals = 1;
  if (intervals > THROUGHPUT_MAX_INTERVALS) intervals = THROUGHPUT_MAX_INTERVALS;
  w->intervals = intervals;
  w->first = 0;
  w->len = 1;
  w->t[0] = t;
  w->images[0] = images;
}

void throughput_add(throughput_window *w, double t, double images) {
  const int slots = THROUGHPUT_MAX_INTERVALS + 1;
  if (w->len == w->intervals + 1) { /* full: the oldest sample leaves */
    w->first = (w->first + 1) % slots;
    w->len--;
  }
  int slot = (w->first + w->len) % slots;
  w->t[slot] = t;
  w->images[slot] = images;
  w->len++;
}

double throughput_rate(const throughput_window *w) {
  if (w->len < 2) return NAN;
  int last = (w->first + w->len - 1) % (THROUGHPUT_MAX_INTERVALS + 1);
  double dt = w->t[last] - w->t[w->first];
  if (!(dt > 0)) return NAN;
  return (w->images[last] - w->images[w->first]) / dt;
}
