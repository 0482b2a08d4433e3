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
 * KV cache, per sample, layer and head: keys transposed [hd, maxlen], values [maxlen, hd].
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ABI_VERSION 4

/* A matrix Wt [I, O]: float32, or int8 with one float scale per output (w = q * scale[o]) */
typedef struct {
  const float *f;
  const int8_t *q;
  const float *scale;
} Mat;

typedef struct {
  int L, H, hd, C, V, block, n_units, F, int8;
  float floor_; /* sqrt(C eps): RMSNorm(x) / sqrt(C) = x / hypot(|x|, floor) */
  const float *embed, *cos, *sin;
  Mat qkv[64], proj[64], fc[64], out[64], head;
} Net;

int slm_abi_version(void) { return ABI_VERSION; }

/* dims: L, H, hd, C, V, block, n_units, F, int8. float32: w holds embed, per layer qkv, proj,
 * fc, out, then head, cos, sin. int8: w holds embed, per layer the scales of qkv, proj, fc, out,
 * then head's scales, cos, sin; wq the int8 matrices in the same order. */
static int net_init(Net *m, const int32_t *dims, const float *w, const int8_t *wq,
                    float floor_) {
  m->L = dims[0]; m->H = dims[1]; m->hd = dims[2]; m->C = dims[3]; m->V = dims[4];
  m->block = dims[5]; m->n_units = dims[6]; m->F = dims[7]; m->int8 = dims[8];
  m->floor_ = floor_;
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

/* y[R, O] (+)= (x[R, I] @ Wt[I, O]) * scale, for float32 or int8 weights (converted to float in
 * registers). One row: blocks of 64 outputs held in registers across the whole input. Several
 * rows: a block of 16 outputs of W (I x 16, in L1 / L2) against blocks of 4 rows. */
/* the store of a block: y (+)= acc * scale */
#define STORE_BLOCK(yr, accr, ob, o0)                                                         \
  for (int o = 0; o < (ob); o++) {                                                            \
    const float v = scale ? (accr)[o] * scale[(o0) + o] : (accr)[o];                          \
    (yr)[o] = accumulate ? (yr)[o] + v : v;                                                   \
  }

#define DEFINE_MATMUL(NAME, WT)                                                                \
  static void NAME(const float *restrict x, int R, int I, const WT *restrict Wt, int O,      \
                   const float *restrict scale, float *restrict y, int accumulate) {         \
    if (R == 1) {                                                                            \
      int o0 = 0;                                                                            \
      for (; o0 + 64 <= O; o0 += 64) {                                                       \
        float acc[64] = {0};                                                                 \
        for (int i = 0; i < I; i++) {                                                        \
          const float a = x[i];                                                              \
          const WT *restrict wi = Wt + (size_t)i * O + o0;                                   \
          for (int o = 0; o < 64; o++) acc[o] += a * (float)wi[o];                           \
        }                                                                                    \
        STORE_BLOCK(y + o0, acc, 64, o0)                                                     \
      }                                                                                      \
      for (; o0 < O; o0 += 16) {                                                             \
        const int ob = O - o0 < 16 ? O - o0 : 16;                                            \
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
    for (int o0 = 0; o0 < O; o0 += 16) {                                                     \
      const int ob = O - o0 < 16 ? O - o0 : 16;                                              \
      for (int r0 = 0; r0 < R; r0 += 4) {                                                    \
        const int rb = R - r0 < 4 ? R - r0 : 4;                                              \
        float acc[4][16] = {{0}};                                                            \
        if (rb == 4 && ob == 16) {                                                           \
          const float *x0 = x + (size_t)r0 * I, *x1 = x0 + I, *x2 = x1 + I, *x3 = x2 + I;   \
          for (int i = 0; i < I; i++) {                                                      \
            const WT *restrict wi = Wt + (size_t)i * O + o0;                                 \
            const float a0 = x0[i], a1 = x1[i], a2 = x2[i], a3 = x3[i];                      \
            for (int o = 0; o < 16; o++) {                                                   \
              const float wv = (float)wi[o];                                                 \
              acc[0][o] += a0 * wv;                                                          \
              acc[1][o] += a1 * wv;                                                          \
              acc[2][o] += a2 * wv;                                                          \
              acc[3][o] += a3 * wv;                                                          \
            }                                                                                \
          }                                                                                  \
        } else {                                                                             \
          for (int i = 0; i < I; i++) {                                                      \
            const WT *restrict wi = Wt + (size_t)i * O + o0;                                 \
            for (int rr = 0; rr < rb; rr++) {                                                \
              const float a = x[(size_t)(r0 + rr) * I + i];                                  \
              for (int o = 0; o < ob; o++) acc[rr][o] += a * (float)wi[o];                   \
            }                                                                                \
          }                                                                                  \
        }                                                                                    \
        for (int rr = 0; rr < rb; rr++) {                                                    \
          STORE_BLOCK(y + (size_t)(r0 + rr) * O + o0, acc[rr], ob, o0)                       \
        }                                                                                    \
      }                                                                                      \
    }                                                                                        \
  }

DEFINE_MATMUL(matmul_f32, float)
DEFINE_MATMUL(matmul_i8, int8_t)

static void matmul(const float *x, int R, int I, const Mat *W, int O, float *y, int accumulate) {
  if (W->q) matmul_i8(x, R, I, W->q, O, W->scale, y, accumulate);
  else matmul_f32(x, R, I, W->f, O, NULL, y, accumulate);
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

typedef struct {
  float *h, *y, *q, *a, *u, *s, *x;
} Scratch;

static int scratch_alloc(Scratch *sc, const Net *m, int R, int maxlen) {
  size_t C = m->C;
  sc->x = malloc(sizeof(float) * R * C);
  sc->h = malloc(sizeof(float) * R * C);
  sc->y = malloc(sizeof(float) * R * 5 * C);
  sc->q = malloc(sizeof(float) * R * C);
  sc->a = malloc(sizeof(float) * R * C);
  sc->u = malloc(sizeof(float) * R * (size_t)m->F);
  sc->s = malloc(sizeof(float) * (size_t)maxlen);
  return (sc->x && sc->h && sc->y && sc->q && sc->a && sc->u && sc->s) ? 0 : -1;
}

static void scratch_free(Scratch *sc) {
  free(sc->x); free(sc->h); free(sc->y); free(sc->q); free(sc->a); free(sc->u); free(sc->s);
}

/* Feed R rows: row r is token tok[r] of sample sample[r] at position pos[r] (rows of one sample
 * in increasing position). Writes their keys and values into the cache, then leaves the final
 * normalised hidden state of each row in sc->h. */
static void forward_rows(const Net *m, Scratch *sc, int R, const int64_t *tok, const int *sample,
                         const int *pos, float *kc, float *vc, int maxlen) {
  const int C = m->C, H = m->H, hd = m->hd, F = m->F;
  const size_t per_head = (size_t)hd * maxlen;
  float *x = sc->x;
  for (int r = 0; r < R; r++) memcpy(x + (size_t)r * C, m->embed + (size_t)tok[r] * C,
                                     sizeof(float) * C);
  for (int l = 0; l < m->L; l++) {
    rms_norm(x, R, C, m->floor_, sc->h);
    matmul(sc->h, R, C, &m->qkv[l], 5 * C, sc->y, 0);
    for (int r = 0; r < R; r++) { /* rotary on q and k; k and v into the cache */
      const float *y = sc->y + (size_t)r * 5 * C;
      const float *cs = m->cos + (size_t)pos[r] * hd, *sn = m->sin + (size_t)pos[r] * hd;
      float *q = sc->q + (size_t)r * C;
      for (int h = 0; h < H; h++) {
        const size_t base = (((size_t)sample[r] * m->L + l) * H + h) * per_head;
        float *kt = kc + base, *v = vc + base + (size_t)pos[r] * hd;
        for (int d = 0; d < hd; d++) {
          const int j = h * hd + d;
          q[j] = y[j] * cs[d] + y[3 * C + j] * sn[d];
          kt[(size_t)d * maxlen + pos[r]] = y[C + j] * cs[d] + y[4 * C + j] * sn[d];
          v[d] = y[2 * C + j];
        }
      }
    }
    for (int r = 0; r < R; r++) { /* attention over positions 0..pos[r] */
      const int n = pos[r] + 1;
      const float *q = sc->q + (size_t)r * C;
      float *a = sc->a + (size_t)r * C, *s = sc->s;
      for (int h = 0; h < H; h++) {
        const size_t base = (((size_t)sample[r] * m->L + l) * H + h) * per_head;
        const float *kt = kc + base, *v = vc + base;
        for (int j = 0; j < n; j++) s[j] = 0.0f;
        for (int d = 0; d < hd; d++) {
          const float qd = q[h * hd + d];
          const float *kd = kt + (size_t)d * maxlen;
          for (int j = 0; j < n; j++) s[j] += qd * kd[j];
        }
        float mx = s[0];
        for (int j = 1; j < n; j++) mx = s[j] > mx ? s[j] : mx;
        for (int j = 0; j < n; j++) s[j] = fast_exp(s[j] - mx);
        float sum = 0.0f;
        for (int j = 0; j < n; j++) sum += s[j];
        const float inv = 1.0f / sum;
        float *ah = a + h * hd;
        for (int d = 0; d < hd; d++) ah[d] = 0.0f;
        for (int j = 0; j < n; j++) {
          const float p = s[j] * inv;
          const float *vj = v + (size_t)j * hd;
          for (int d = 0; d < hd; d++) ah[d] += p * vj[d];
        }
      }
    }
    matmul(sc->a, R, C, &m->proj[l], C, x, 1);
    rms_norm(x, R, C, m->floor_, sc->h);
    matmul(sc->h, R, C, &m->fc[l], F, sc->u, 0);
    gelu_tanh(sc->u, (size_t)R * F);
    matmul(sc->u, R, F, &m->out[l], C, x, 1);
  }
  rms_norm(x, R, C, m->floor_, sc->h);
}

/* Logits of every position of one sequence fed from position pos0 (the sample-0 cache):
 * logits [T, V]. Returns 0, or -1 when memory runs out. */
int slm_forward(const int32_t *dims, const float *w, const int8_t *wq, float floor_, float *kc, float *vc,
                int maxlen, int pos0, const int64_t *tok, int T, float *logits) {
  Net m;
  Scratch sc;
  if (net_init(&m, dims, w, wq, floor_)) return -2;
  int rc = scratch_alloc(&sc, &m, T, maxlen);
  int *sample = calloc((size_t)T, sizeof(int)), *pos = malloc(sizeof(int) * (size_t)T);
  if (!rc && sample && pos) {
    for (int t = 0; t < T; t++) pos[t] = pos0 + t;
    forward_rows(&m, &sc, T, tok, sample, pos, kc, vc, maxlen);
    matmul(sc.h, T, m.C, &m.head, m.V, logits, 0);
  } else {
    rc = -1;
  }
  scratch_free(&sc);
  free(sample); free(pos);
  return rc;
}

/* The floor of a step of R rows (R samples, one token each): its matrix products alone.
 * x and y: R * max(5C, F, V) floats of scratch. */
void slm_bare_matmuls(const int32_t *dims, const float *w, const int8_t *wq, int R, int steps, float *x, float *y) {
  Net m;
  if (net_init(&m, dims, w, wq, 0.0f)) return;
  for (int s = 0; s < steps; s++) {
    for (int l = 0; l < m.L; l++) {
      matmul(x, R, m.C, &m.qkv[l], 5 * m.C, y, 0);
      matmul(x, R, m.C, &m.proj[l], m.C, y, 0);
      matmul(x, R, m.C, &m.fc[l], m.F, y, 0);
      matmul(x, R, m.F, &m.out[l], m.C, y, 0);
    }
    for (int r = 0; r < R; r++) matmul(x, 1, m.C, &m.head, m.V, y, 0); /* as slm_generate */
    x[0] = y[0] * 1e-30f; /* a dependency between steps */
  }
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
  float mx = -INFINITY;
  for (int v = 0; v < V; v++) mx = fmaxf(mx, logits[v]);
  double z = 0.0;
  for (int v = 0; v < V; v++) z += exp((double)(logits[v] - mx));
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
    float smx = -INFINITY;
    for (int v = 0; v < V; v++) smx = fmaxf(smx, s[v]);
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
    double cdf = 0.0;
    for (int v = 0; v < V; v++) { tmp[v] = (float)(cdf += exp((double)(s[v] - smx))); }
    const double u = rng_uniform(g) * cdf;
    pick = V - 1;
    for (int v = 0; v < V; v++) if (tmp[v] >= u && s[v] > -INFINITY) { pick = v; break; }
  }
  *raw = (float)(logits[pick] - lse);
  return pick;
}

/* Prefill prefix [P] (<bos>, prompt, then-tokens) once, copy its cache to every sample, then
 * sample up to max_new units per sample. hist0 [nh0]: the prompt's units (the repetition
 * penalty's first history). Outputs: tokens [N, max_new] (-1 past the end), logprobs
 * [N, max_new], lengths [N], ended [N]. Returns 0, -1 out of memory, -2 bad dimensions. */
int slm_generate(const int32_t *dims, const float *w, const int8_t *wq, float floor_, float *kc, float *vc,
                 int maxlen, int N, const int64_t *prefix, int P, const int64_t *hist0, int nh0,
                 const float *allowed, int max_new, float temperature, int top_k, float top_p,
                 float penalty, int window, int eos, uint64_t seed,
                 int64_t *tokens, float *logprobs, int64_t *lengths, uint8_t *ended) {
  Net m;
  if (net_init(&m, dims, w, wq, floor_)) return -2;
  if (P < 1 || P + max_new - 1 > maxlen || maxlen > m.block) return -2;
  const int V = m.V, R = P > N ? P : N;
  Scratch sc;
  int rc = scratch_alloc(&sc, &m, R, maxlen) ? -1 : 0;
  int *sample = calloc((size_t)R, sizeof(int)), *pos = malloc(sizeof(int) * (size_t)R);
  int *active = malloc(sizeof(int) * (size_t)N);
  int64_t *tok = malloc(sizeof(int64_t) * (size_t)R);
  int64_t *hist = malloc(sizeof(int64_t) * (size_t)N * (nh0 + max_new + 1));
  float *logits = malloc(sizeof(float) * (size_t)N * V), *work = malloc(sizeof(float) * 2 * V);
  Scored *sorted = malloc(sizeof(Scored) * (size_t)V);
  char *seen = malloc((size_t)V), *done = calloc((size_t)N, 1);
  if (rc || !sample || !pos || !active || !tok || !hist || !logits || !work || !sorted || !seen
      || !done) {
    rc = -1;
    goto out;
  }
  Rng g;
  uint64_t z = seed;
  for (int k = 0; k < 4; k++) g.s[k] = splitmix(&z);
  Sampling o = {temperature, top_p, penalty, top_k, window, eos};

  for (int t = 0; t < P; t++) pos[t] = t;
  forward_rows(&m, &sc, P, prefix, sample, pos, kc, vc, maxlen);
  matmul(sc.h + (size_t)(P - 1) * m.C, 1, m.C, &m.head, V, logits, 0);
  const size_t per_sample = (size_t)m.L * m.H * m.hd * maxlen;
  for (int n = 1; n < N; n++) {
    memcpy(kc + n * per_sample, kc, sizeof(float) * per_sample);
    memcpy(vc + n * per_sample, vc, sizeof(float) * per_sample);
    memcpy(logits + (size_t)n * V, logits, sizeof(float) * V);
  }
  const int hcap = nh0 + max_new + 1;
  int nh = nh0 > 0 ? nh0 : 1;
  for (int n = 0; n < N; n++) {
    if (nh0 > 0) memcpy(hist + (size_t)n * hcap, hist0, sizeof(int64_t) * nh0);
    else hist[(size_t)n * hcap] = -1;
    lengths[n] = max_new;
    ended[n] = 0;
  }
  for (size_t k = 0; k < (size_t)N * max_new; k++) { tokens[k] = -1; logprobs[k] = 0.0f; }

  for (int t = 0; t < max_new; t++) {
    int na = 0;
    for (int n = 0; n < N; n++) {
      if (done[n]) continue;
      float raw;
      const int64_t nxt = draw(logits + (size_t)n * V, V, allowed, hist + (size_t)n * hcap, nh,
                               &o, &g, work, sorted, seen, &raw);
      hist[(size_t)n * hcap + nh] = nxt;
      if (nxt == eos) {
        lengths[n] = t;
        ended[n] = 1;
        done[n] = 1;
      } else {
        tokens[(size_t)n * max_new + t] = nxt;
        logprobs[(size_t)n * max_new + t] = raw;
        active[na] = n;
        tok[na] = nxt;
        sample[na] = n;
        pos[na] = P + t;
        na++;
      }
    }
    nh++;
    if (na == 0 || t == max_new - 1) break;
    forward_rows(&m, &sc, na, tok, sample, pos, kc, vc, maxlen);
    for (int r = 0; r < na; r++)
      matmul(sc.h + (size_t)r * m.C, 1, m.C, &m.head, V, logits + (size_t)active[r] * V, 0);
  }
out:
  scratch_free(&sc);
  free(sample); free(pos); free(active); free(tok); free(hist); free(logits); free(work);
  free(sorted); free(seen); free(done);
  return rc;
}
