/* The unit LM's decode loop in plain C: prefill, KV-cache steps and sampling in one call.
 *
 * A batch-1 step of the bundled LM (4 x 128) does ~0.2M multiply-adds: on a CPU its cost in
 * torch is the ~150 operator calls of a step, not the arithmetic. This file does the step of
 * speechlm.decode.PackedLM (the same folded float32 weights) with no operator boundaries, and
 * samples the next unit in the same loop. speechlm/cdecode.py compiles it with the system C
 * compiler, loads it with ctypes and checks it against the torch decoder.
 *
 * Weights: one float32 buffer, every matrix stored transposed ([in, out], so a product is a run
 * of vector multiply-adds over contiguous outputs, which compilers vectorise):
 *   embed [V, C]
 *   per layer: qkv [C, 5C] (q, k, v, rot(q), rot(k); RMSNorm gain, sqrt(C) and the attention
 *              scale folded in), proj [C, C], fc [C, F] (norm folded in), out [F, C]
 *   head [C, V] (final norm folded in), cos [block, hd], sin [block, hd]
 * KV cache, per sample, layer and head, room for cache_len(maxlen) positions (maxlen rounded up
 * to a multiple of KT = 32): keys transposed in tiles of KT positions [cache_len / KT][hd][KT]
 * (a tile is 4 KB at hd = 32, read front to back by the scores), values [cache_len, hd].
 * With int8 weights the cache holds IEEE half floats where the compiler has them
 * (slm_kv_bytes): a step's attention reads half the bytes, and the int8 path's numbers are
 * approximate anyway; float32 weights keep a float32 cache and the network's numbers.
 *
 * Threads: every entry point takes a thread count. The threads run the same code in lock step
 * (SPMD): each computes its own share of the output columns of every matrix product and its
 * own heads of attention, and they meet at a barrier between dependent phases; sampling runs on
 * thread 0. Every output is computed by the same instructions in the same order whatever the
 * split, so the results do not depend on the thread count (the tests check it bit for bit).
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#define ABI_VERSION 7
#define KT 32 /* positions per tile of transposed keys */
#define MAX_THREADS 64

/* A matrix Wt [I, O]: float32, or int8 with one float scale per output (w = q * scale[o]) */
typedef struct {
  const float *f;
  const int8_t *q;
  const float *scale;
} Mat;

typedef struct {
  int L, H, hd, C, V, block, n_units, F, int8;
  int kv16; /* the KV cache holds half floats (int8 weights where KV16) */
  float floor_; /* sqrt(C eps): RMSNorm(x) / sqrt(C) = x / hypot(|x|, floor) */
  const float *embed, *cos, *sin;
  Mat qkv[64], proj[64], fc[64], out[64], head;
} Net;

int slm_abi_version(void) { return ABI_VERSION; }

/* Half floats for the int8 path's KV cache: F16C's conversions, or the compiler's _Float16
 * (element by element), or none (a float32 cache) */
#ifndef KV16 /* (-DKV16=0 builds without them, to compare) */
#if defined(__F16C__) || defined(__FLT16_MAX__)
#define KV16 1
#else
#define KV16 0
#endif
#endif

/* Bytes per value of the KV cache of a net with int8 (1) or float32 (0) weights */
int slm_kv_bytes(int int8) { return int8 && KV16 ? 2 : 4; }

/* Positions a cache of maxlen holds per sample, layer and head: maxlen rounded up to KT */
static inline size_t cache_len(int maxlen) { return ((size_t)maxlen + KT - 1) / KT * KT; }

int slm_cache_len(int maxlen) { return (int)cache_len(maxlen); }

/* dims: L, H, hd, C, V, block, n_units, F, int8. float32: w holds embed, per layer qkv, proj,
 * fc, out, then head, cos, sin. int8: w holds embed, per layer the scales of qkv, proj, fc, out,
 * then head's scales, cos, sin; wq the int8 matrices in the same order. */
static int net_init(Net *m, const int32_t *dims, const float *w, const int8_t *wq,
                    float floor_) {
  m->L = dims[0]; m->H = dims[1]; m->hd = dims[2]; m->C = dims[3]; m->V = dims[4];
  m->block = dims[5]; m->n_units = dims[6]; m->F = dims[7]; m->int8 = dims[8];
  m->floor_ = floor_;
  m->kv16 = m->int8 && KV16;
  if (m->L < 1 || m->L > 64 || m->H * m->hd != m->C || (m->int8 && !wq)) return -1;
  const size_t C = m->C, F = m->F, V = m->V;
  m->embed = w; w += V * C;
  Mat *mats[4] = {m->qkv, m->proj, m->fc, m->out};
  const size_t ins[4] = {C, C, C, F}, outs[4] = {5 * C, C, F, C};
  for (int l = 0; l <= m->L; l++) {
    for (int k = 0; k < 4; k++) {
      Mat *M = l < m->L ? &mats[k][l] : &m->head;
      const size_t I = l < m->L ? ins[k] : C, O = l < m->L ? outs[k] : V;
      if (m->int8) {
        M->q = wq; wq += I * O;
        M->scale = w; w += O;
        M->f = NULL;
      } else {
        M->f = w; w += I * O;
        M->q = NULL;
        M->scale = NULL;
      }
      if (l == m->L) break; /* the head: one matrix */
    }
  }
  m->cos = w; w += (size_t)m->block * m->hd;
  m->sin = w;
  return 0;
}

/* y[R, O] (+)= (x[R, I] @ Wt[I, O]) * scale over the output columns [lo, hi), for float32 or
 * int8 weights (converted to float in registers). One row: blocks of 64 outputs held in
 * registers across the whole input. Several rows: a block of 16 outputs of W (I x 16, in L1 /
 * L2) against blocks of RB rows. Each output is a sum over the input in order, whichever block
 * holds it. */
/* the store of a block: y (+)= acc * scale */
#define STORE_BLOCK(yr, accr, ob, o0)                                                         \
  for (int o = 0; o < (ob); o++) {                                                            \
    const float v = scale ? (accr)[o] * scale[(o0) + o] : (accr)[o];                          \
    (yr)[o] = accumulate ? (yr)[o] + v : v;                                                   \
  }

/* Several rows, a full block of 16 outputs: blocks of RB rows x 16 outputs held in 2 RB
 * 8-float vectors (GCC/Clang vector extensions: AVX2 registers, or SSE / NEON pairs), against
 * float weights w with row stride ws (the matrix itself, or a converted int8 panel). */
typedef float v8 __attribute__((vector_size(32)));

static inline v8 v8_load(const float *p) {
  v8 v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline v8 v8_splat(float a) { return (v8){a, a, a, a, a, a, a, a}; }

/* Half floats (uint16_t bit patterns) <-> float; a value beyond the half range saturates */
#if defined(__F16C__)
static inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t float_to_half(float x) {
  x = x > 65504.0f ? 65504.0f : x < -65504.0f ? -65504.0f : x;
  return (uint16_t)_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT);
}
static inline v8 h8_load(const uint16_t *p) {
  const __m256 r = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
  v8 v;
  memcpy(&v, &r, sizeof v);
  return v;
}
#elif KV16
static inline float half_to_float(uint16_t h) {
  _Float16 f;
  memcpy(&f, &h, sizeof f);
  return (float)f;
}
static inline uint16_t float_to_half(float x) {
  x = x > 65504.0f ? 65504.0f : x < -65504.0f ? -65504.0f : x;
  const _Float16 f = (_Float16)x;
  uint16_t h;
  memcpy(&h, &f, sizeof h);
  return h;
}
static inline v8 h8_load(const uint16_t *p) {
  float f[8];
  for (int k = 0; k < 8; k++) f[k] = half_to_float(p[k]);
  return v8_load(f);
}
#else /* never called: no half cache in this build */
static inline float half_to_float(uint16_t h) { return (float)h; }
static inline uint16_t float_to_half(float x) { return (uint16_t)x; }
static inline v8 h8_load(const uint16_t *p) { return v8_splat((float)p[0]); }
#endif
static inline float f32_to_float(float x) { return x; }

#ifndef RB
#define RB 6 /* rows per block: 2 x RB accumulators, 2 weight vectors, a broadcast */
#endif
static void rows16(const float *restrict x, int R, int I, const float *restrict w, size_t ws,
                   int O, int o0, const float *restrict scale, float *restrict y,
                   int accumulate) {
  for (int r0 = 0; r0 < R; r0 += RB) {
    const int rb = R - r0 < RB ? R - r0 : RB;
    /* a last block of fewer rows repeats its last row (computed, not stored): each row's sums
     * are the same instructions in the same order wherever it falls */
    const float *xr[RB];
    for (int rr = 0; rr < RB; rr++) xr[rr] = x + (size_t)(r0 + (rr < rb ? rr : rb - 1)) * I;
    v8 a0[RB], a1[RB];
    for (int rr = 0; rr < RB; rr++) a0[rr] = a1[rr] = v8_splat(0.0f);
    for (int i = 0; i < I; i++) {
      const v8 w0 = v8_load(w + (size_t)i * ws), w1 = v8_load(w + (size_t)i * ws + 8);
      for (int rr = 0; rr < RB; rr++) {
        const v8 b = v8_splat(xr[rr][i]);
        a0[rr] += b * w0;
        a1[rr] += b * w1;
      }
    }
    for (int rr = 0; rr < rb; rr++) {
      float acc[16];
      memcpy(acc, &a0[rr], sizeof a0[rr]);
      memcpy(acc + 8, &a1[rr], sizeof a1[rr]);
      STORE_BLOCK(y + (size_t)(r0 + rr) * O + o0, acc, 16, o0)
    }
  }
}

/* panel: I x 16 floats of scratch for int8 weights with several rows: each block of 16 outputs
 * is converted to float there once, not once per block of rows (NULL: the scalar loop). */
#define DEFINE_MATMUL(NAME, WT, PANEL)                                                         \
  static void NAME(const float *restrict x, int R, int I, const WT *restrict Wt, int O,      \
                   int lo, int hi, const float *restrict scale, float *restrict y,           \
                   int accumulate, float *restrict panel) {                                  \
    if (R == 1) {                                                                            \
      int o0 = lo;                                                                           \
      for (; o0 + 64 <= hi; o0 += 64) {                                                      \
        float acc[64] = {0};                                                                 \
        for (int i = 0; i < I; i++) {                                                        \
          const float a = x[i];                                                              \
          const WT *restrict wi = Wt + (size_t)i * O + o0;                                   \
          for (int o = 0; o < 64; o++) acc[o] += a * (float)wi[o];                           \
        }                                                                                    \
        STORE_BLOCK(y + o0, acc, 64, o0)                                                     \
      }                                                                                      \
      for (; o0 < hi; o0 += 16) {                                                            \
        const int ob = hi - o0 < 16 ? hi - o0 : 16;                                          \
        float acc[16] = {0};                                                                 \
        for (int i = 0; i < I; i++) {                                                        \
          const float a = x[i];                                                              \
          const WT *restrict wi = Wt + (size_t)i * O + o0;                                   \
          for (int o = 0; o < ob; o++) acc[o] += a * (float)wi[o];                           \
        }                                                                                    \
        STORE_BLOCK(y + o0, acc, ob, o0)                                                     \
      }                                                                                      \
      return;                                                                                \
    }                                                                                        \
    for (int o0 = lo; o0 < hi; o0 += 16) {                                                   \
      const int ob = hi - o0 < 16 ? hi - o0 : 16;                                            \
      const WT *restrict wp = Wt + o0;                                                       \
      if (ob == 16 && (!(PANEL) || panel)) {                                                 \
        if (PANEL) {                                                                         \
          for (int i = 0; i < I; i++)                                                        \
            for (int o = 0; o < 16; o++) panel[(size_t)i * 16 + o] = (float)wp[(size_t)i * O + o]; \
          rows16(x, R, I, panel, 16, O, o0, scale, y, accumulate);                           \
        } else {                                                                             \
          rows16(x, R, I, (const float *)wp, O, O, o0, scale, y, accumulate);                \
        }                                                                                    \
        continue;                                                                            \
      }                                                                                      \
      for (int r = 0; r < R; r++) { /* a last block of fewer than 16 outputs */              \
        float acc[16] = {0};                                                                 \
        for (int i = 0; i < I; i++) {                                                        \
          const float a = x[(size_t)r * I + i];                                              \
          for (int o = 0; o < ob; o++) acc[o] += a * (float)wp[(size_t)i * O + o];           \
        }                                                                                    \
        STORE_BLOCK(y + (size_t)r * O + o0, acc, ob, o0)                                     \
      }                                                                                      \
    }                                                                                        \
  }

DEFINE_MATMUL(matmul_f32, float, 0)
DEFINE_MATMUL(matmul_i8, int8_t, 1)

/* A thread of a team: its index and the team's barrier */
typedef struct {
  atomic_int count, phase;
  int n;
} Barrier;

typedef struct {
  int id, n;
  Barrier *b;
} Thread;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ __volatile__("pause");
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Every thread of the team waits here until all have arrived: spins a while (a phase of a step
 * lasts microseconds), then yields the core (a busy machine, or a thread descheduled). */
static void barrier(const Thread *t) {
  Barrier *b = t->b;
  if (b->n == 1) return;
  const int ph = atomic_load_explicit(&b->phase, memory_order_acquire);
  if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == b->n - 1) {
    atomic_store_explicit(&b->count, 0, memory_order_relaxed);
    atomic_store_explicit(&b->phase, ph + 1, memory_order_release);
    return;
  }
  for (long k = 0; atomic_load_explicit(&b->phase, memory_order_acquire) == ph; k++) {
    if (k < 2000) cpu_relax();
    else sched_yield();
  }
}

/* This thread's share [lo, hi) of O columns, on 16-column boundaries */
static void share(const Thread *t, int O, int *lo, int *hi) {
  const int blocks = (O + 15) / 16;
  *lo = (int)((long)blocks * t->id / t->n) * 16;
  *hi = (int)((long)blocks * (t->id + 1) / t->n) * 16;
  if (*hi > O) *hi = O;
  if (*lo > O) *lo = O;
}

/* This thread's columns of y = x @ W (one float32 or int8 matrix) */
static void matmul(const Thread *t, const float *x, int R, int I, const Mat *W, int O, float *y,
                   int accumulate) {
  int lo, hi;
  share(t, O, &lo, &hi);
  if (lo >= hi) return;
  if (!W->q) {
    matmul_f32(x, R, I, W->f, O, lo, hi, NULL, y, accumulate, NULL);
    return;
  }
  /* several rows: a panel on the stack (I <= 1024) or the heap (NULL if refused: the scalar
   * loop converts in place) */
  float stack_panel[16 * 1024], *panel = NULL;
  if (R > 1) panel = I <= 1024 ? stack_panel : malloc(sizeof(float) * 16 * (size_t)I);
  matmul_i8(x, R, I, W->q, O, lo, hi, W->scale, y, accumulate, panel);
  if (panel != stack_panel) free(panel);
}

/* Run fn(arg, thread) on `threads` threads (this one is thread 0); fewer if the system refuses
 * some. Thread 0 returns after every thread has finished. */
typedef struct {
  void (*fn)(void *, const Thread *);
  void *arg;
  Barrier *b;
  atomic_int *go;
  int id;
} Start;

static void *thread_main(void *p) {
  Start *s = p;
  while (!atomic_load_explicit(s->go, memory_order_acquire)) cpu_relax();
  Thread t = {s->id, s->b->n, s->b};
  s->fn(s->arg, &t);
  return NULL;
}

static void run_team(int threads, void (*fn)(void *, const Thread *), void *arg) {
  Barrier b;
  atomic_init(&b.count, 0);
  atomic_init(&b.phase, 0);
  atomic_int go;
  atomic_init(&go, 0);
  pthread_t tid[MAX_THREADS];
  Start st[MAX_THREADS];
  if (threads < 1) threads = 1;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  int n = 1;
  for (; n < threads; n++) {
    st[n] = (Start){fn, arg, &b, &go, n};
    if (pthread_create(&tid[n], NULL, thread_main, &st[n])) break;
  }
  b.n = n; /* the team is the threads that started */
  atomic_store_explicit(&go, 1, memory_order_release);
  Thread self = {0, n, &b};
  fn(arg, &self);
  for (int k = 1; k < n; k++) pthread_join(tid[k], NULL);
}

/* e^x to ~1e-7 relative, vectorisable: 2^n e^f with |f| <= ln2 / 2 (no fminf, rintf or
 * unions: they stop gcc from vectorising a loop that calls this) */
static inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float t = x * 1.44269504088896341f;
  const float n = floorf(t + 0.5f);
  const float f = (t - n) * 0.69314718055994531f;
  float p = 1.0f / 720.0f;
  p = p * f + 1.0f / 120.0f;
  p = p * f + 1.0f / 24.0f;
  p = p * f + 1.0f / 6.0f;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

static void rms_norm(const float *restrict x, int R, int C, float floor_, float *restrict h) {
  for (int r = 0; r < R; r++) {
    const float *xr = x + (size_t)r * C;
    float ss = 0.0f;
    for (int c = 0; c < C; c++) ss += xr[c] * xr[c];
    const float inv = 1.0f / sqrtf(ss + floor_ * floor_);
    float *hr = h + (size_t)r * C;
    for (int c = 0; c < C; c++) hr[c] = xr[c] * inv;
  }
}

static void gelu_tanh(float *restrict u, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const float x = u[i];
    const float z = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    const float th = 1.0f - 2.0f / (fast_exp(2.0f * z) + 1.0f); /* tanh(z) */
    u[i] = 0.5f * x * (1.0f + th);
  }
}

/* Shared buffers of a forward pass of up to R rows, and each thread's own (h: the normalised
 * rows, which every thread computes whole; s: attention scores) */
typedef struct {
  float *y, *q, *a, *u, *x;
  float *h[MAX_THREADS], *s[MAX_THREADS];
  int threads;
} Scratch;

static void scratch_free(Scratch *sc) {
  free(sc->x); free(sc->y); free(sc->q); free(sc->a); free(sc->u);
  for (int t = 0; t < sc->threads; t++) { free(sc->h[t]); free(sc->s[t]); }
}

static int scratch_alloc(Scratch *sc, const Net *m, int R, int maxlen, int threads) {
  size_t C = m->C;
  memset(sc, 0, sizeof *sc);
  sc->threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
  sc->x = malloc(sizeof(float) * R * C);
  sc->y = malloc(sizeof(float) * R * 5 * C);
  sc->q = malloc(sizeof(float) * R * C);
  sc->a = malloc(sizeof(float) * R * C);
  sc->u = malloc(sizeof(float) * R * (size_t)m->F);
  int ok = sc->x && sc->y && sc->q && sc->a && sc->u;
  for (int t = 0; t < sc->threads; t++) {
    sc->h[t] = malloc(sizeof(float) * R * C);
    sc->s[t] = malloc(sizeof(float) * (size_t)maxlen);
    ok = ok && sc->h[t] && sc->s[t];
  }
  if (!ok) scratch_free(sc);
  return ok ? 0 : -1;
}

/* Attention scores s[j] = sum over d of q[d] * k_j[d] for j < n, from keys in tiles of KT
 * positions [hd][KT]: a tile's 32 scores are held in vector registers while the tile is read front
 * to back. Each score is summed over d in order, one multiply-add at a time. A last tile's
 * positions from n on hold zeros or earlier keys: computed, never stored. Defined for a float32
 * cache (LOAD v8_load) and a half one (h8_load). */
#define DEFINE_SCORES(NAME, T, LOAD)                                                          \
  static void NAME(const float *restrict q, const T *restrict kt, int hd, int n,             \
                   float *restrict s) {                                                      \
    for (int j0 = 0; j0 < n; j0 += KT) {                                                     \
      const T *tile = kt + (size_t)j0 * hd;                                                  \
      v8 a0 = v8_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;                                     \
      for (int d = 0; d < hd; d++) {                                                         \
        const v8 b = v8_splat(q[d]);                                                         \
        const T *kd = tile + (size_t)d * KT;                                                 \
        a0 += b * LOAD(kd);                                                                  \
        a1 += b * LOAD(kd + 8);                                                              \
        a2 += b * LOAD(kd + 16);                                                             \
        a3 += b * LOAD(kd + 24);                                                             \
      }                                                                                      \
      float out[KT];                                                                         \
      memcpy(out, &a0, sizeof a0);                                                           \
      memcpy(out + 8, &a1, sizeof a1);                                                       \
      memcpy(out + 16, &a2, sizeof a2);                                                      \
      memcpy(out + 24, &a3, sizeof a3);                                                      \
      memcpy(s + j0, out, sizeof(float) * (size_t)(n - j0 < KT ? n - j0 : KT));              \
    }                                                                                        \
  }

/* out[d] = sum over j < n of (s[j] * inv) * v[j * hd + d]: 32 dimensions at a time in vector
 * registers (8 where fewer are left; a plain loop when hd is not a multiple of 8). Summed over j
 * in order, one multiply-add at a time, as a plain loop would. ONE: a cache value as a float. */
#define DEFINE_MIX_VALUES(NAME, T, LOAD, ONE)                                                 \
  static void NAME(const float *restrict s, float inv, const T *restrict v, int hd, int n,   \
                   float *restrict out) {                                                    \
    if (hd % 8) {                                                                            \
      for (int d = 0; d < hd; d++) out[d] = 0.0f;                                            \
      for (int j = 0; j < n; j++) {                                                          \
        const float p = s[j] * inv;                                                          \
        const T *vj = v + (size_t)j * hd;                                                    \
        for (int d = 0; d < hd; d++) out[d] += p * ONE(vj[d]);                               \
      }                                                                                      \
      return;                                                                                \
    }                                                                                        \
    int d0 = 0;                                                                              \
    for (; d0 + 32 <= hd; d0 += 32) {                                                        \
      v8 a0 = v8_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;                                     \
      for (int j = 0; j < n; j++) {                                                          \
        const v8 p = v8_splat(s[j] * inv);                                                   \
        const T *vj = v + (size_t)j * hd + d0;                                               \
        a0 += p * LOAD(vj);                                                                  \
        a1 += p * LOAD(vj + 8);                                                              \
        a2 += p * LOAD(vj + 16);                                                             \
        a3 += p * LOAD(vj + 24);                                                             \
      }                                                                                      \
      memcpy(out + d0, &a0, sizeof a0);                                                      \
      memcpy(out + d0 + 8, &a1, sizeof a1);                                                  \
      memcpy(out + d0 + 16, &a2, sizeof a2);                                                 \
      memcpy(out + d0 + 24, &a3, sizeof a3);                                                 \
    }                                                                                        \
    for (; d0 < hd; d0 += 8) {                                                               \
      v8 a = v8_splat(0.0f);                                                                 \
      for (int j = 0; j < n; j++) a += v8_splat(s[j] * inv) * LOAD(v + (size_t)j * hd + d0); \
      memcpy(out + d0, &a, sizeof a);                                                        \
    }                                                                                        \
  }

DEFINE_SCORES(scores_f32, float, v8_load)
DEFINE_SCORES(scores_f16, uint16_t, h8_load)
DEFINE_MIX_VALUES(mix_values_f32, float, v8_load, f32_to_float)
DEFINE_MIX_VALUES(mix_values_f16, uint16_t, h8_load, half_to_float)

/* The largest of s[0..n), n >= 1: eight running maxima side by side in a vector (a compare and
 * a select per 8 positions), then the largest of those */
typedef int32_t v8i __attribute__((vector_size(32)));

static float max_of(const float *restrict s, int n) {
  v8 m = v8_splat(s[0]);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const v8 x = v8_load(s + j);
    const v8i gt = x > m;
    m = (v8)(((v8i)x & gt) | ((v8i)m & ~gt));
  }
  float lanes[8];
  memcpy(lanes, &m, sizeof lanes);
  float mx = lanes[0];
  for (int k = 1; k < 8; k++) mx = lanes[k] > mx ? lanes[k] : mx;
  for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
  return mx;
}

/* Rotary on q and k of head h for rows [0, R), k and v into the cache (float32, or half floats
 * when m->kv16), then attention of those rows over positions 0..pos[r] of their sample: head h's
 * columns of sc->q and sc->a. */
static void attend_head(const Net *m, Scratch *sc, float *s, int l, int h, int R,
                        const int *sample, const int *pos, void *kc, void *vc, int maxlen) {
  const int C = m->C, H = m->H, hd = m->hd;
  const size_t per_head = (size_t)hd * cache_len(maxlen);
  float *kf = kc, *vf = vc;
  uint16_t *kh = kc, *vh = vc;
  for (int r = 0; r < R; r++) {
    const float *y = sc->y + (size_t)r * 5 * C;
    const float *cs = m->cos + (size_t)pos[r] * hd, *sn = m->sin + (size_t)pos[r] * hd;
    float *q = sc->q + (size_t)r * C;
    const size_t base = (((size_t)sample[r] * m->L + l) * H + h) * per_head;
    /* the key's tile, its first element, and the value's first element */
    const size_t tile = base + (size_t)(pos[r] / KT) * KT * hd, slot = tile + pos[r] % KT;
    const size_t v0 = base + (size_t)pos[r] * hd;
    if (pos[r] % KT == 0) { /* a new tile: its positions past this one read as zeros until written */
      if (m->kv16) memset(kh + tile, 0, sizeof(uint16_t) * KT * (size_t)hd);
      else memset(kf + tile, 0, sizeof(float) * KT * (size_t)hd);
    }
    for (int d = 0; d < hd; d++) {
      const int j = h * hd + d;
      q[j] = y[j] * cs[d] + y[3 * C + j] * sn[d];
      const float k = y[C + j] * cs[d] + y[4 * C + j] * sn[d], v = y[2 * C + j];
      if (m->kv16) {
        kh[slot + (size_t)d * KT] = float_to_half(k);
        vh[v0 + d] = float_to_half(v);
      } else {
        kf[slot + (size_t)d * KT] = k;
        vf[v0 + d] = v;
      }
    }
  }
  for (int r = 0; r < R; r++) {
    const int n = pos[r] + 1;
    const float *q = sc->q + (size_t)r * C + h * hd;
    float *a = sc->a + (size_t)r * C + h * hd;
    const size_t base = (((size_t)sample[r] * m->L + l) * H + h) * per_head;
    if (m->kv16) scores_f16(q, kh + base, hd, n, s);
    else scores_f32(q, kf + base, hd, n, s);
    const float mx = max_of(s, n);
    for (int j = 0; j < n; j++) s[j] = fast_exp(s[j] - mx);
    float sum = 0.0f;
    for (int j = 0; j < n; j++) sum += s[j];
    const float inv = 1.0f / sum;
    if (m->kv16) mix_values_f16(s, inv, vh + base, hd, n, a);
    else mix_values_f32(s, inv, vf + base, hd, n, a);
  }
}

/* Feed R rows (every thread of the team calls this): row r is token tok[r] of sample sample[r]
 * at position pos[r] (rows of one sample in increasing position). Writes their keys and values
 * into the cache, then leaves the final normalised hidden state of each row in sc->h[thread]. */
static void forward_rows(const Thread *t, const Net *m, Scratch *sc, int R, const int64_t *tok,
                         const int *sample, const int *pos, void *kc, void *vc, int maxlen) {
  const int C = m->C, F = m->F;
  float *x = sc->x, *h = sc->h[t->id];
  if (t->id == 0)
    for (int r = 0; r < R; r++)
      memcpy(x + (size_t)r * C, m->embed + (size_t)tok[r] * C, sizeof(float) * C);
  barrier(t);
  for (int l = 0; l < m->L; l++) {
    rms_norm(x, R, C, m->floor_, h);
    matmul(t, h, R, C, &m->qkv[l], 5 * C, sc->y, 0);
    barrier(t);
    for (int hh = t->id; hh < m->H; hh += t->n)
      attend_head(m, sc, sc->s[t->id], l, hh, R, sample, pos, kc, vc, maxlen);
    barrier(t);
    matmul(t, sc->a, R, C, &m->proj[l], C, x, 1);
    barrier(t);
    rms_norm(x, R, C, m->floor_, h);
    int lo, hi;
    share(t, F, &lo, &hi);
    matmul(t, h, R, C, &m->fc[l], F, sc->u, 0);
    for (int r = 0; r < R; r++) gelu_tanh(sc->u + (size_t)r * F + lo, (size_t)(hi > lo ? hi - lo : 0));
    barrier(t);
    matmul(t, sc->u, R, F, &m->out[l], C, x, 1);
    barrier(t);
  }
  rms_norm(x, R, C, m->floor_, h);
}

typedef struct {
  const Net *m;
  Scratch *sc;
  void *kc, *vc;
  float *logits;
  const int64_t *tok;
  const int *sample, *pos;
  int T, maxlen;
} ForwardJob;

static void forward_job(void *p, const Thread *t) {
  ForwardJob *j = p;
  forward_rows(t, j->m, j->sc, j->T, j->tok, j->sample, j->pos, j->kc, j->vc, j->maxlen);
  matmul(t, j->sc->h[t->id], j->T, j->m->C, &j->m->head, j->m->V, j->logits, 0);
}

/* Logits of every position of one sequence fed from position pos0 (the sample-0 cache):
 * logits [T, V]. Returns 0, or -1 when memory runs out. */
int slm_forward(const int32_t *dims, const float *w, const int8_t *wq, float floor_, void *kc,
                void *vc, int maxlen, int pos0, const int64_t *tok, int T, float *logits,
                int threads) {
  Net m;
  Scratch sc;
  if (net_init(&m, dims, w, wq, floor_)) return -2;
  int rc = scratch_alloc(&sc, &m, T, maxlen, threads);
  if (rc) return -1;
  int *sample = calloc((size_t)T, sizeof(int)), *pos = malloc(sizeof(int) * (size_t)T);
  if (sample && pos) {
    for (int k = 0; k < T; k++) pos[k] = pos0 + k;
    ForwardJob job = {&m, &sc, kc, vc, logits, tok, sample, pos, T, maxlen};
    run_team(sc.threads, forward_job, &job);
  } else {
    rc = -1;
  }
  scratch_free(&sc);
  free(sample); free(pos);
  return rc;
}

typedef struct {
  const Net *m;
  int R, steps;
  float *x, *y;
} BareJob;

static void bare_job(void *p, const Thread *t) {
  BareJob *j = p;
  const Net *m = j->m;
  float *x = j->x, *y = j->y;
  for (int s = 0; s < j->steps; s++) {
    for (int l = 0; l < m->L; l++) {
      matmul(t, x, j->R, m->C, &m->qkv[l], 5 * m->C, y, 0);
      barrier(t);
      matmul(t, x, j->R, m->C, &m->proj[l], m->C, y, 0);
      barrier(t);
      matmul(t, x, j->R, m->C, &m->fc[l], m->F, y, 0);
      barrier(t);
      matmul(t, x, j->R, m->F, &m->out[l], m->C, y, 0);
      barrier(t);
    }
    for (int r = 0; r < j->R; r++) matmul(t, x, 1, m->C, &m->head, m->V, y, 0); /* as slm_generate */
    barrier(t);
    if (t->id == 0) x[0] = y[0] * 1e-30f; /* a dependency between steps */
    barrier(t);
  }
}

/* The floor of a step of R rows (R samples, one token each) on `threads` threads: its matrix
 * products alone, with the barrier each needs before the next can read its output.
 * x and y: R * max(5C, F, V) floats of scratch. */
void slm_bare_matmuls(const int32_t *dims, const float *w, const int8_t *wq, int R, int steps,
                      float *x, float *y, int threads) {
  Net m;
  if (net_init(&m, dims, w, wq, 0.0f)) return;
  BareJob job = {&m, R, steps, x, y};
  run_team(threads, bare_job, &job);
}

/* xoshiro256+: uniform doubles in (0, 1) */
typedef struct { uint64_t s[4]; } Rng;

static uint64_t splitmix(uint64_t *z) {
  uint64_t r = (*z += 0x9E3779B97F4A7C15ull);
  r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
  r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
  return r ^ (r >> 31);
}

static double rng_uniform(Rng *g) {
  uint64_t *s = g->s;
  const uint64_t r = s[0] + s[3], t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return ((double)(r >> 11) + 0.5) * 0x1.0p-53;
}

typedef struct { float v; int i; } Scored;

static int by_score_desc(const void *a, const void *b) {
  const Scored *x = a, *y = b;
  if (x->v > y->v) return -1;
  if (x->v < y->v) return 1;
  return x->i - y->i;
}

static int by_value_desc(const void *a, const void *b) {
  const float x = *(const float *)a, y = *(const float *)b;
  return (x < y) - (x > y);
}

typedef struct {
  float temperature, top_p, penalty;
  int top_k, window, eos;
} Sampling;

/* One draw from logits [V] shaped like speechlm.generate: allowed mask, repetition penalty over
 * hist[0..nh), temperature (0: argmax), top-k, top-p. *raw: log-softmax of the logits at the
 * draw. work: 2V floats + V Scored. */
static int draw(const float *logits, int V, const float *allowed, const int64_t *hist, int nh,
                const Sampling *o, Rng *g, float *work, Scored *sorted, char *seen,
                float *raw) {
  float *s = work, *tmp = work + V;
  const float mx = max_of(logits, V); /* (fmaxf is a library call per unit here) */
  /* the exponentials in a loop the compiler vectorises (fast_exp), summed in double: 8x faster
   * than exp() per unit, to ~1e-7 relative */
  for (int v = 0; v < V; v++) tmp[v] = fast_exp(logits[v] - mx);
  double z = 0.0;
  for (int v = 0; v < V; v++) z += tmp[v];
  const double lse = mx + log(z);
  for (int v = 0; v < V; v++) s[v] = logits[v] + allowed[v];
  if (o->penalty != 1.0f) {
    memset(seen, 0, (size_t)V);
    for (int k = nh > o->window ? nh - o->window : 0; k < nh; k++)
      if (hist[k] >= 0 && hist[k] < V) seen[hist[k]] = 1;
    for (int v = 0; v < V; v++)
      if (seen[v]) s[v] = s[v] > 0 ? s[v] / o->penalty : s[v] * o->penalty;
  }
  int pick = 0;
  if (o->temperature == 0.0f) {
    for (int v = 1; v < V; v++) if (s[v] > s[pick]) pick = v;
  } else {
    for (int v = 0; v < V; v++) s[v] /= o->temperature;
    if (o->top_k > 0 && o->top_k < V) {
      memcpy(tmp, s, sizeof(float) * V);
      qsort(tmp, (size_t)V, sizeof(float), by_value_desc);
      const float kth = tmp[o->top_k - 1];
      for (int v = 0; v < V; v++) if (s[v] < kth) s[v] = -INFINITY;
    }
    const float smx = max_of(s, V);
    if (o->top_p > 0.0f && o->top_p < 1.0f) {
      for (int v = 0; v < V; v++) { sorted[v].v = s[v]; sorted[v].i = v; }
      qsort(sorted, (size_t)V, sizeof(Scored), by_score_desc);
      double tot = 0.0;
      for (int v = 0; v < V; v++) tot += exp((double)(sorted[v].v - smx));
      double before = 0.0; /* drop a unit once the mass before it reaches top_p */
      for (int v = 0; v < V; v++) {
        const double p = exp((double)(sorted[v].v - smx)) / tot;
        if (before >= o->top_p) s[sorted[v].i] = -INFINITY;
        before += p;
      }
    }
    for (int v = 0; v < V; v++) tmp[v] = s[v] > -INFINITY ? fast_exp(s[v] - smx) : 0.0f;
    double cdf = 0.0;
    for (int v = 0; v < V; v++) { tmp[v] = (float)(cdf += tmp[v]); }
    const double u = rng_uniform(g) * cdf;
    pick = V - 1;
    for (int v = 0; v < V; v++) if (tmp[v] >= u && s[v] > -INFINITY) { pick = v; break; }
  }
  *raw = (float)(logits[pick] - lse);
  return pick;
}

typedef struct {
  const Net *m;
  Scratch *sc;
  void *kc, *vc;
  int maxlen, N, P, nh0, max_new;
  const int64_t *prefix, *hist0;
  const float *allowed;
  const Sampling *o;
  Rng *g;
  /* loop state (written by thread 0 between barriers) */
  int *sample, *pos, *active, na, stop;
  int64_t *tok, *hist;
  float *logits, *work;
  Scored *sorted;
  char *seen, *done;
  /* outputs */
  int64_t *tokens, *lengths;
  float *logprobs;
  uint8_t *ended;
} GenerateJob;

static void generate_job(void *p, const Thread *t) {
  GenerateJob *j = p;
  const Net *m = j->m;
  const int V = m->V, P = j->P, N = j->N, max_new = j->max_new;
  const float *h = j->sc->h[t->id];
  if (t->id == 0)
    for (int k = 0; k < P; k++) j->pos[k] = k;
  barrier(t);
  forward_rows(t, m, j->sc, P, j->prefix, j->sample, j->pos, j->kc, j->vc, j->maxlen);
  matmul(t, h + (size_t)(P - 1) * m->C, 1, m->C, &m->head, V, j->logits, 0);
  barrier(t);
  const int hcap = j->nh0 + max_new + 1;
  int nh = j->nh0 > 0 ? j->nh0 : 1;
  if (t->id == 0) {
    const size_t per_sample = (size_t)m->L * m->H * m->hd * cache_len(j->maxlen)
                              * (m->kv16 ? sizeof(uint16_t) : sizeof(float)); /* bytes */
    for (int n = 1; n < N; n++) {
      memcpy((char *)j->kc + n * per_sample, j->kc, per_sample);
      memcpy((char *)j->vc + n * per_sample, j->vc, per_sample);
      memcpy(j->logits + (size_t)n * V, j->logits, sizeof(float) * V);
    }
    for (int n = 0; n < N; n++) {
      if (j->nh0 > 0) memcpy(j->hist + (size_t)n * hcap, j->hist0, sizeof(int64_t) * j->nh0);
      else j->hist[(size_t)n * hcap] = -1;
      j->lengths[n] = max_new;
      j->ended[n] = 0;
    }
    for (size_t k = 0; k < (size_t)N * max_new; k++) { j->tokens[k] = -1; j->logprobs[k] = 0.0f; }
  }
  for (int step = 0; step < max_new; step++) {
    if (t->id == 0) { /* draw the next unit of every live sample */
      int na = 0;
      for (int n = 0; n < N; n++) {
        if (j->done[n]) continue;
        float raw;
        const int64_t nxt = draw(j->logits + (size_t)n * V, V, j->allowed,
                                 j->hist + (size_t)n * hcap, nh, j->o, j->g, j->work, j->sorted,
                                 j->seen, &raw);
        j->hist[(size_t)n * hcap + nh] = nxt;
        if (nxt == j->o->eos) {
          j->lengths[n] = step;
          j->ended[n] = 1;
          j->done[n] = 1;
        } else {
          j->tokens[(size_t)n * max_new + step] = nxt;
          j->logprobs[(size_t)n * max_new + step] = raw;
          j->active[na] = n;
          j->tok[na] = nxt;
          j->sample[na] = n;
          j->pos[na] = P + step;
          na++;
        }
      }
      j->na = na;
      j->stop = na == 0 || step == max_new - 1;
    }
    nh++;
    barrier(t);
    if (j->stop) break;
    const int na = j->na;
    forward_rows(t, m, j->sc, na, j->tok, j->sample, j->pos, j->kc, j->vc, j->maxlen);
    for (int r = 0; r < na; r++)
      matmul(t, h + (size_t)r * m->C, 1, m->C, &m->head, V, j->logits + (size_t)j->active[r] * V, 0);
    barrier(t);
  }
}

/* Prefill prefix [P] (<bos>, prompt, then-tokens) once, copy its cache to every sample, then
 * sample up to max_new units per sample, on `threads` threads. hist0 [nh0]: the prompt's units
 * (the repetition penalty's first history). Outputs: tokens [N, max_new] (-1 past the end),
 * logprobs [N, max_new], lengths [N], ended [N]. Returns 0, -1 out of memory, -2 bad
 * dimensions. */
int slm_generate(const int32_t *dims, const float *w, const int8_t *wq, float floor_, void *kc,
                 void *vc, int maxlen, int N, const int64_t *prefix, int P, const int64_t *hist0,
                 int nh0, const float *allowed, int max_new, float temperature, int top_k,
                 float top_p, float penalty, int window, int eos, uint64_t seed,
                 int64_t *tokens, float *logprobs, int64_t *lengths, uint8_t *ended,
                 int threads) {
  Net m;
  if (net_init(&m, dims, w, wq, floor_)) return -2;
  if (P < 1 || P + max_new - 1 > maxlen || maxlen > m.block) return -2;
  const int V = m.V, R = P > N ? P : N;
  Scratch sc;
  if (scratch_alloc(&sc, &m, R, maxlen, threads)) return -1;
  int rc = 0;
  int *sample = calloc((size_t)R, sizeof(int)), *pos = malloc(sizeof(int) * (size_t)R);
  int *active = malloc(sizeof(int) * (size_t)N);
  int64_t *tok = malloc(sizeof(int64_t) * (size_t)R);
  int64_t *hist = malloc(sizeof(int64_t) * (size_t)N * (nh0 + max_new + 1));
  float *logits = malloc(sizeof(float) * (size_t)N * V), *work = malloc(sizeof(float) * 2 * V);
  Scored *sorted = malloc(sizeof(Scored) * (size_t)V);
  char *seen = malloc((size_t)V), *done = calloc((size_t)N, 1);
  if (!sample || !pos || !active || !tok || !hist || !logits || !work || !sorted || !seen
      || !done) {
    rc = -1;
  } else {
    Rng g;
    uint64_t z = seed;
    for (int k = 0; k < 4; k++) g.s[k] = splitmix(&z);
    Sampling o = {temperature, top_p, penalty, top_k, window, eos};
    GenerateJob job = {&m, &sc, kc, vc, maxlen, N, P, nh0, max_new, prefix, hist0, allowed, &o,
                       &g, sample, pos, active, 0, 0, tok, hist, logits, work, sorted, seen,
                       done, tokens, lengths, logprobs, ended};
    run_team(sc.threads, generate_job, &job);
  }
  scratch_free(&sc);
  free(sample); free(pos); free(active); free(tok); free(hist); free(logits); free(work);
  free(sorted); free(seen); free(done);
  return rc;
}
