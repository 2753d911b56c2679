/* tune.h — private to the matmul tuning (host/tune_store.c: the parameter sets, the on-disk
 * store and applying it; host/tune.c: the search). */
#ifndef CT_TUNE_H
#define CT_TUNE_H
#include "ct_host.h"

#define TUNE_FORMAT "cltape-matmul-tuning 2"
#define TUNE_STORE_MAX 65536

/* ---- the parameter sets ----------------------------------------------------------------- */
enum { TK_XGEMM, TK_DIRECT, TK_COPY, TK_PAD, TK_TRANSPOSE, TK_PADTRANSPOSE, TK_ROUTINE, TK_TILE, TK_COUNT };
#define TK_CLBLAST TK_TILE /* the sets before TK_TILE are CLBlast's */
#define TK_MAXP 16
/* accumulators of a tile on a GPU, at most (see tk_generic_set) */
#define GPU_TILE_BYTES 256

typedef struct {
  const char *kernel;
  int n;
  const char *names[TK_MAXP];
} tk_desc;

/* The parameter names of each set, as CLBlast's database lists them (tune_store.c). */
extern const tk_desc KDESC[TK_COUNT];
enum { XG_GEMMK, XG_KREG, XG_KWG, XG_KWI, XG_MDIMA, XG_MDIMC, XG_MWG, XG_NDIMB, XG_NDIMC, XG_NWG, XG_SA, XG_SB,
       XG_STRM, XG_STRN, XG_VWM, XG_VWN };
enum { XD_KWID, XD_MDIMAD, XD_MDIMCD, XD_NDIMBD, XD_NDIMCD, XD_PADA, XD_PADB, XD_VWMD, XD_VWND, XD_WGD };
enum { CP_DIMX, CP_DIMY, CP_VW, CP_WPT };
enum { PD_DIMX, PD_DIMY, PD_WPTX, PD_WPTY };
enum { TR_DIM, TR_PAD, TR_SHUFFLE, TR_WPT };
enum { PT_PAD, PT_TILE, PT_WPT };
enum { TL_ENGINE, TL_MR, TL_NV, TL_VW, TL_PACKA, TL_WG, TL_BN, TL_SMALL };

typedef struct {
  uint32_t v[TK_COUNT][TK_MAXP];
} tk_set;

/* The store of one device: per dtype ([0] float32, [1] float64) the kept set and the measured
 * speed-up. */
typedef struct {
  bool have[2];
  tk_set set[2];
  int size[2];
  double before[2], after[2];
} tk_store;

/* A context's tuning state (ctx->blas_state). */
typedef struct {
  bool enabled, stored;
  bool active[2];
  ctb_gemm_plan plan[2]; /* the stored plans, where active */
  int engine_override;   /* CLTAPE_MATMUL when the context was created, -1 for none */
  char path[1024];
} tk_state;

extern const char *const DT_NAMES[2];

unsigned tk_vector_bytes(const ct_device_info *info);
bool tk_valid(int kid, const uint32_t *v, size_t esz, const ct_device_info *info);
void tk_format(int kid, const uint32_t *v, char *buf, size_t cap);
int tk_apply(const ct_context *ctx, int d, const tk_set *s, int *bad_kernel);
tk_set tk_generic_set(const ct_device_info *info, int d);
void tk_mark_applied(cl_device_id d);
void tk_plan_of(const tk_set *s, ctb_gemm_plan *p);
bool tk_store_load(const ct_context *ctx, const char *path, tk_store *st);
void tk_store_path(const ct_context *ctx, char *out, size_t cap);
ct_status tk_store_save(ct_context *ctx, const char *path, const tk_store *st);
#endif
