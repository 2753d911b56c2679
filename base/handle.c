/* handle.c — the memory behind every public handle, and the one check each entry point makes.
 *
 * A handle (ct_context, ct_tensor, ct_tape, ct_module, ct_optimizer, ct_dataset) is the
 * address of its object, and no address is ever given to a second object while the process lives:
 * objects are cut in order from 2 MiB chunks of anonymous memory that are never unmapped and never
 * handed out again. So a handle that was freed can always be read and told apart from a live one,
 * however many objects came after it; there is no quarantine to run out of. The first four bytes of
 * each object hold its tag: CT_HANDLE_TAG(kind) while it lives, CT_HANDLE_FREED after.
 *
 * The memory itself is given back: a page whose objects are all freed (and that the chunk has
 * moved past) is released with madvise(MADV_DONTNEED), in runs of up to BATCH neighbours, and reads
 * as zeros from then on, and a chunk whose objects are all freed is mapped again read-only (no
 * memory, no commit charge). A zero tag in one of our chunks reads as "freed" as well. What stays
 * is address space (the objects' size: 144 bytes a tensor) and the pages of objects still alive.
 * One mutex guards the chunks; the check of a handle takes no lock.
 *
 * Under AddressSanitizer a freed object's bytes past its tag are poisoned, so that the library's
 * own reads of a freed object are still reported; LeakSanitizer is told to scan the chunks. */
#define _DEFAULT_SOURCE
#include "ct_base.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define CT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CT_ASAN 1
#endif
#endif
#ifdef CT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#endif

#define CHUNK ((size_t)2 << 20)
#define ALIGN 16
#define PREFIX 16 /* before each object: its size (the tag is the object's own first field) */
#define BATCH 16  /* freed pages given back in one call (a run of neighbours) */
#define AHEAD ((size_t)64 << 10) /* memory made ready in one call, ahead of the cut point */

typedef struct {
  size_t bump;        /* offset of the next object */
  size_t live;        /* objects not yet freed */
  bool retired;       /* no object will be cut from it any more */
  size_t run_lo, run_n; /* freed pages not yet given back: [run_lo, run_lo + run_n) */
  uint32_t pages[];   /* per page: live objects that touch it (page 0 also holds this header) */
} chunk_hdr;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static size_t page_size;
static char *cur;           /* the chunk objects are cut from */
static char **chunks;       /* every chunk ever mapped (for telling a freed handle from a stranger) */
static size_t nchunks, capchunks;
static uint64_t live_total, chunks_released, pages_released;

static const char *const kind_names[CT_HANDLE_KINDS] = {
    "?", "context", "tensor", "tape", "module", "optimizer", "dataset"};

static chunk_hdr *hdr_of(const void *p) { return (chunk_hdr *)((uintptr_t)p & ~(uintptr_t)(CHUNK - 1)); }

static size_t header_bytes(void) {
  size_t n = sizeof(chunk_hdr) + sizeof(uint32_t) * (CHUNK / page_size);
  return (n + ALIGN - 1) / ALIGN * ALIGN;
}

/* A fresh, CHUNK-aligned chunk (zeros), or NULL. */
static char *chunk_map(void) {
  size_t span = 2 * CHUNK;
  char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  char *c = (char *)(((uintptr_t)raw + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
  /* the parts outside the aligned chunk never held an object: give them back */
  if (c > raw) munmap(raw, (size_t)(c - raw));
  if (c + CHUNK < raw + span) munmap(c + CHUNK, (size_t)(raw + span - (c + CHUNK)));
  if (nchunks == capchunks) {
    size_t nc = capchunks ? capchunks * 2 : 64;
    char **n = realloc(chunks, nc * sizeof *n);
    if (!n) {
      munmap(c, CHUNK);
      return NULL;
    }
    chunks = n;
    capchunks = nc;
  }
  chunks[nchunks++] = c;
#ifdef MADV_NOHUGEPAGE
  madvise(c, CHUNK, MADV_NOHUGEPAGE); /* pages are given back one by one */
#endif
  chunk_hdr *h = (chunk_hdr *)c;
  h->bump = header_bytes();
  h->pages[0] = 1; /* the header */
#ifdef CT_ASAN
  __lsan_register_root_region(c, CHUNK);
#endif
  return c;
}

/* Gives back the memory of pages [first, last] of chunk c (their objects are all freed). */
static void pages_release(char *c, size_t first, size_t last) {
#ifdef MADV_DONTNEED
  madvise(c + first * page_size, (last - first + 1) * page_size, MADV_DONTNEED);
  pages_released += last - first + 1;
#else
  (void)c, (void)first, (void)last;
#endif
}

static void run_flush(char *c) {
  chunk_hdr *h = (chunk_hdr *)c;
  if (h->run_n) pages_release(c, h->run_lo, h->run_lo + h->run_n - 1);
  h->run_n = 0;
}

/* Page i of chunk c holds no live object and never will again: it joins the run of such pages,
 * given back once the run is BATCH pages long (or at once when it is no neighbour of the run). */
static void page_dead(char *c, size_t i) {
  chunk_hdr *h = (chunk_hdr *)c;
  if (h->run_n && i == h->run_lo + h->run_n) {
    h->run_n++;
  } else if (h->run_n && i + 1 == h->run_lo) {
    h->run_lo = i;
    h->run_n++;
  } else {
    run_flush(c);
    h->run_lo = i;
    h->run_n = 1;
  }
  if (h->run_n >= BATCH) run_flush(c);
}

/* Makes [off, off + AHEAD) of chunk c ready in one call instead of one fault per page (Linux 5.14
 * and later; elsewhere the pages fault in as they are first written). */
static void populate(char *c, size_t off) {
#if defined(__linux__)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  static bool unsupported;
  if (unsupported || off >= CHUNK) return;
  size_t n = CHUNK - off < AHEAD ? CHUNK - off : AHEAD;
  if (madvise(c + off, n, MADV_POPULATE_WRITE) != 0) unsupported = true;
#else
  (void)c, (void)off;
#endif
}

/* Every object of a retired chunk is freed: map it again, read-only, as zeros. */
static void chunk_release(char *c) {
#ifdef CT_ASAN
  __lsan_unregister_root_region(c, CHUNK);
#endif
  if (mmap(c, CHUNK, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
    pages_release(c, 0, CHUNK / page_size - 1);
  chunks_released++;
}

/* No more objects come from chunk c: its last, partly cut page may now be given back. */
static void chunk_retire(char *c) {
  chunk_hdr *h = (chunk_hdr *)c;
  h->retired = true;
  if (h->live == 0) {
    chunk_release(c);
    return;
  }
  size_t last = (h->bump - 1) / page_size;
  if (h->pages[last] == 0) page_dead(c, last);
  run_flush(c);
}

void *ct__handle_new(ct_handle_kind kind, size_t size) {
  size_t need = PREFIX + (size + ALIGN - 1) / ALIGN * ALIGN;
  pthread_mutex_lock(&mu);
  if (!page_size) {
    long ps = sysconf(_SC_PAGESIZE);
    page_size = ps > 0 && (size_t)ps <= CHUNK / 16 ? (size_t)ps : 4096;
  }
  if (need > CHUNK - header_bytes()) {
    pthread_mutex_unlock(&mu);
    return NULL;
  }
  if (!cur || ((chunk_hdr *)cur)->bump + need > CHUNK) {
    char *c = chunk_map();
    if (!c) {
      pthread_mutex_unlock(&mu);
      return NULL;
    }
    if (cur) chunk_retire(cur);
    cur = c;
    populate(c, 0);
  }
  chunk_hdr *h = (chunk_hdr *)cur;
  char *p = cur + h->bump;
  if ((h->bump + need) / AHEAD != h->bump / AHEAD) populate(cur, (h->bump + need) / AHEAD * AHEAD);
  size_t first = h->bump / page_size, last = (h->bump + need - 1) / page_size;
  for (size_t i = first; i <= last; ++i) h->pages[i]++;
  h->bump += need;
  h->live++;
  live_total++;
  pthread_mutex_unlock(&mu);
  /* fresh memory: already zeros */
  *(uint32_t *)p = (uint32_t)need;
  void *obj = p + PREFIX;
  *(uint32_t *)obj = CT_HANDLE_TAG(kind);
  return obj;
}

void ct__handle_free(void *obj) {
  if (!obj) return;
  char *p = (char *)obj - PREFIX;
  size_t need = *(uint32_t *)p;
  *(volatile uint32_t *)obj = CT_HANDLE_FREED;
#ifdef CT_ASAN
  ASAN_POISON_MEMORY_REGION((char *)obj + 8, need - PREFIX - 8);
#endif
  chunk_hdr *h = hdr_of(p);
  char *c = (char *)h;
  size_t off = (size_t)(p - c), first = off / page_size, last = (off + need - 1) / page_size;
  pthread_mutex_lock(&mu);
  live_total--;
  if (--h->live == 0 && h->retired) {
    chunk_release(c);
  } else {
    /* pages entirely behind the cut point whose last object this was */
    for (size_t i = first; i <= last; ++i)
      if (--h->pages[i] == 0 && (h->retired || (i + 1) * page_size <= h->bump)) page_dead(c, i);
  }
  pthread_mutex_unlock(&mu);
}

/* Was p ever an address inside one of our chunks? (the slow path of a failed check) */
static bool ours(const void *p) {
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)(CHUNK - 1);
  bool found = false;
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < nchunks && !found; ++i) found = (uintptr_t)chunks[i] == a;
  pthread_mutex_unlock(&mu);
  return found;
}

void ct__handle_stats(ct_handle_stats *out) {
  pthread_mutex_lock(&mu);
  out->live = live_total;
  out->chunks = nchunks;
  out->chunks_released = chunks_released;
  out->pages_released = pages_released;
  pthread_mutex_unlock(&mu);
}

bool ct__handle_is(const void *h, ct_handle_kind kind) {
  return h && *(const volatile uint32_t *)h == CT_HANDLE_TAG(kind);
}

static const char *article(const char *name) { return strchr("aeiou", name[0]) ? "an" : "a"; }

ct_status ct__handle_fail(const void *h, ct_handle_kind kind, const char *what) {
  const char *name = kind_names[kind];
  if (!h) return ct__error(NULL, CT_ERR_NULL, "%s: %s argument is NULL", what, name);
  uint32_t tag = *(const volatile uint32_t *)h;
  if (tag == CT_HANDLE_FREED || (tag == 0 && ours(h)))
    return ct__error(NULL, CT_ERR_RELEASED, "%s: the %s handle was freed", what, name);
  for (int k = 1; k < CT_HANDLE_KINDS; ++k)
    if (tag == CT_HANDLE_TAG(k))
      return ct__error(NULL, CT_ERR_INVALID, "%s: the argument is %s %s handle, not %s %s", what,
                       article(kind_names[k]), kind_names[k], article(name), name);
  return ct__error(NULL, CT_ERR_INVALID, "%s: the argument is not %s %s handle", what, article(name), name);
}
