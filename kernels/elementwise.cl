/* Elementwise templates. The host appends one instantiation per op row of the op table
 * (lib/ops.def): CT_UNARY(name, expression in x) or CT_BINARY(name, out type, expression in a, b).
 * Each binary op gets four variants: same shape (c), b a one-element buffer (s), a a one-element
 * buffer (l), and general broadcasting through strides (g). */

#define CT_UNARY(NAME, ...)                                                              \
  __kernel void u_##NAME(const int n, __global const T *xs, __global T *ys) {            \
    int i = get_global_id(0);                                                            \
    if (i < n) { T x = xs[i]; ys[i] = (T)(__VA_ARGS__); }                                \
  }

#define CT_BINARY(NAME, TO, ...)                                                         \
  __kernel void b_##NAME##_c(const int n, __global const T *as, __global const T *bs,    \
                             __global TO *ys) {                                          \
    int i = get_global_id(0);                                                            \
    if (i < n) { T a = as[i]; T b = bs[i]; ys[i] = (TO)(__VA_ARGS__); }                  \
  }                                                                                      \
  __kernel void b_##NAME##_s(const int n, __global const T *as, __global const T *bs,    \
                             __global TO *ys) {                                          \
    int i = get_global_id(0);                                                            \
    T b = bs[0];                                                                         \
    if (i < n) { T a = as[i]; ys[i] = (TO)(__VA_ARGS__); }                               \
  }                                                                                      \
  __kernel void b_##NAME##_l(const int n, __global const T *as, __global const T *bs,    \
                             __global TO *ys) {                                          \
    int i = get_global_id(0);                                                            \
    T a = as[0];                                                                         \
    if (i < n) { T b = bs[i]; ys[i] = (TO)(__VA_ARGS__); }                               \
  }                                                                                      \
  __kernel void b_##NAME##_g(const ct_geom g, __global const T *as, __global const T *bs, \
                             __global TO *ys) {                                          \
    int i = get_global_id(0);                                                            \
    if (i < g.n) {                                                                       \
      int oa, ob, oc;                                                                    \
      CT_OFFSETS(g, i, oa, ob, oc);                                                      \
      T a = as[oa]; T b = bs[ob]; ys[i] = (TO)(__VA_ARGS__);                             \
    }                                                                                    \
  }

/* cond ? a : b with broadcasting; cond is an int mask. st[0]=cond, st[1]=a, st[2]=b. */
__kernel void where_g(const ct_geom g, __global const int *cs, __global const T *as, __global const T *bs,
                      __global T *ys) {
  int i = get_global_id(0);
  if (i < g.n) {
    int oc, oa, ob;
    CT_OFFSETS(g, i, oc, oa, ob);
    ys[i] = cs[oc] ? as[oa] : bs[ob];
  }
}

__kernel void fill(const int n, const T v, __global T *ys) {
  int i = get_global_id(0);
  if (i < n) ys[i] = v;
}

__kernel void iota(const int n, const double start, const double delta, __global T *ys) {
  int i = get_global_id(0);
#if CT_HAS_FP64
  if (i < n) ys[i] = (T)(start + delta * (double)i);
#else
  if (i < n) ys[i] = (T)((float)start + (float)delta * (float)i);
#endif
}

#define CT_CAST(NAME, TO)                                                                \
  __kernel void cast_to_##NAME(const int n, __global const T *xs, __global TO *ys) {     \
    int i = get_global_id(0);                                                            \
    if (i < n) ys[i] = (TO)xs[i];                                                        \
  }
CT_CAST(float32, float)
CT_CAST(int32, int)
#if CT_HAS_FP64
CT_CAST(float64, double)
#endif
