/* The soft threshold S(W) = W - clamp(W, -lam, lam) of every layer, and its backward pass, each in one pass over the
 * flat weight buffer (see soft_threshold.py: FlatPlan, SoftShrinkAll; built and loaded by native.py).
 *
 * Why C: the same arithmetic in torch ops takes ~8 passes over the 3 MB buffer per step (clamp, sub, sign, cast;
 * widen, mul, 48 sums, mul), and on a machine whose neighbours load the memory bus those passes, not the arithmetic,
 * set AdapMTL's cost over the dense step. Here the forward reads W once and writes S (bf16 or float32) and a 1-byte
 * sign; the backward reads dL/dS and the signs once and writes dL/dW and each layer's threshold sum.
 *
 * Numerics, and why they are exact:
 *  - S: x - clamp(x, -lam, lam) with torch's clamp semantics (NaN propagates); one IEEE subtraction, so the same
 *    floats as torch's kernel (+0 where pruned).
 *  - bf16: round to nearest even, c10::BFloat16's conversion bit for bit (a NaN stays a NaN).
 *  - dL/dW = dL/dS * sign^2 (dL/dS where kept, a signed zero where pruned): the product torch computed.
 *  - Threshold sums: sum over a layer of dL/dS * sign, in float64, in a fixed order (LANES interleaved
 *    accumulators, then lane 0..LANES-1). The products are exact in float; the order is in this source, not in a
 *    compiler's or a thread pool's choice (no -ffast-math: no reassociation), so every build on every CPU gives the
 *    same sum. Single-threaded for the same reason.
 */
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define LANES 16

static inline uint16_t to_bf16(float f) {
    if (f != f) return 0x7FC0;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float from_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float shrink(float x, float lam) {
    /* torch.clamp(x, -lam, lam) (NaN stays NaN: both comparisons are false), then the subtraction */
    float c = x < -lam ? -lam : (x > lam ? lam : x);
    return x - c;
}

static inline int8_t sign_of(float s) { return (int8_t)((s > 0.0f) - (s < 0.0f)); }

/* w: the flat float32 weights; group g spans [bounds[g], bounds[g + 1]) with threshold lams[g]. Writes out (bf16 when
 * out_bf16, else float32) and sgn (sign(S): -1, 0 or 1). One loop per output type: with the type chosen inside the
 * loop gcc vectorises neither (measured: 25x slower). */
void st_forward(const float *w, const int64_t *bounds, const float *lams, int64_t n_groups, void *out,
                int64_t out_bf16, int8_t *sgn) {
    for (int64_t g = 0; g < n_groups; g++) {
        const float lam = lams[g];
        const int64_t a = bounds[g], b = bounds[g + 1];
        if (out_bf16) {
            uint16_t *o = (uint16_t *)out;
            for (int64_t i = a; i < b; i++) {
                float s = shrink(w[i], lam);
                o[i] = to_bf16(s);
                sgn[i] = sign_of(s);
            }
        } else {
            float *o = (float *)out;
            for (int64_t i = a; i < b; i++) {
                float s = shrink(w[i], lam);
                o[i] = s;
                sgn[i] = sign_of(s);
            }
        }
    }
}

/* One layer's backward: dL/dW into o, and sum dL/dS * sign with element i of the layer added to lane i % LANES, the
 * lanes then summed 0..LANES-1. `layer_*_contiguous` read the gradient as one run, `layer_*_rows` as n_rows rows of
 * n / n_rows elements, row_stride apart (small layers only: their lane is indexed at run time, which would keep the
 * contiguous loop from being vectorised if they shared a function). Both give the same sum for the same elements. */
#define LAYER_FUNCTIONS(NAME, T, LOAD)                                                                               \
    static double layer_##NAME##_contiguous(const T *x, int64_t n, const int8_t *s, float *o) {                     \
        double acc[LANES] = {0};                                                                                     \
        int64_t i = 0;                                                                                               \
        for (; i + LANES <= n; i += LANES)                                                                           \
            for (int j = 0; j < LANES; j++) {                                                                        \
                float v = LOAD(x[i + j]), m = (float)s[i + j];                                                       \
                acc[j] += (double)(v * m);                                                                           \
                o[i + j] = v * (m * m);                                                                              \
            }                                                                                                        \
        for (int j = 0; i < n; i++, j++) {                                                                           \
            float v = LOAD(x[i]), m = (float)s[i];                                                                   \
            acc[j] += (double)(v * m);                                                                               \
            o[i] = v * (m * m);                                                                                      \
        }                                                                                                            \
        double total = 0.0;                                                                                          \
        for (int j = 0; j < LANES; j++) total += acc[j];                                                             \
        return total;                                                                                                \
    }                                                                                                                \
    static double layer_##NAME##_rows(const T *x, int64_t n, int64_t n_rows, int64_t row_stride, const int8_t *s,    \
                                      float *o) {                                                                    \
        double acc[LANES] = {0};                                                                                     \
        const int64_t row = n / n_rows;                                                                              \
        for (int64_t i = 0; i < n; i++) {                                                                            \
            float v = LOAD(x[(i / row) * row_stride + i % row]), m = (float)s[i];                                    \
            acc[i % LANES] += (double)(v * m);                                                                       \
            o[i] = v * (m * m);                                                                                      \
        }                                                                                                            \
        double total = 0.0;                                                                                          \
        for (int j = 0; j < LANES; j++) total += acc[j];                                                             \
        return total;                                                                                                \
    }

#define LOAD_F32(x) (x)
LAYER_FUNCTIONS(bf16, uint16_t, from_bf16)
LAYER_FUNCTIONS(f32, float, LOAD_F32)

/* grads[l]: layer l's dL/dS, sizes[l] elements in the buffer's order, laid out as rows[l] rows of sizes[l] / rows[l]
 * contiguous elements, row_strides[l] elements apart (1 row: contiguous; more: a view into a wider gradient, as the
 * fused heads' branch classifiers get); bf16 when grads_bf16, else float32. Writes dL/dW into g (flat float32, layer
 * after layer) and sum_l dL/dS * sign into sums[l]. */
void st_backward(void *const *grads, int64_t grads_bf16, const int64_t *sizes, const int64_t *rows,
                 const int64_t *row_strides, int64_t n_layers, const int8_t *sgn, float *g, double *sums) {
    int64_t offset = 0;
    for (int64_t l = 0; l < n_layers; l++) {
        const int64_t n = sizes[l];
        const int8_t *s = sgn + offset;
        float *o = g + offset;
        if (n == 0)
            sums[l] = 0.0;
        else if (grads_bf16)
            sums[l] = rows[l] == 1 ? layer_bf16_contiguous((const uint16_t *)grads[l], n, s, o)
                                   : layer_bf16_rows((const uint16_t *)grads[l], n, rows[l], row_strides[l], s, o);
        else
            sums[l] = rows[l] == 1 ? layer_f32_contiguous((const float *)grads[l], n, s, o)
                                   : layer_f32_rows((const float *)grads[l], n, rows[l], row_strides[l], s, o);
        offset += n;
    }
}

static inline float clamped_abs(float w, float a_min, float a_max) {
    float a = w < 0.0f ? -w : w; /* torch.abs then clamp_(a_min, a_max): a NaN stays a NaN */
    return a < a_min ? a_min : (a > a_max ? a_max : a);
}

/* The projection's pass (slack.py: kth_slack): a = clamp(|w|, a_min, a_max) as torch computes it; in each group g,
 * weights with a <= lows[g] are only counted (into *below: also a NaN, which is not above), those with
 * lows[g] < a < highs[g] are copied to cand in the buffer's order (counts[g] of them). Returns the number copied.
 * With AVX-512 sixteen weights at a time (compare masks, compress-store: the same comparisons, so the same result);
 * elsewhere one at a time. */
int64_t st_bracket(const float *w, const int64_t *bounds, const float *lows, const float *highs, int64_t n_groups,
                   float a_min, float a_max, float *cand, int64_t *counts, int64_t *below) {
    int64_t m = 0, under = 0;
    for (int64_t g = 0; g < n_groups; g++) {
        const float lo = lows[g], hi = highs[g];
        const int64_t start = m, end = bounds[g + 1];
        int64_t i = bounds[g];
#if defined(__AVX512F__)
        const __m512 vmin = _mm512_set1_ps(a_min), vmax = _mm512_set1_ps(a_max);
        const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi), zero = _mm512_setzero_ps();
        for (; i + 16 <= end; i += 16) {
            __m512 x = _mm512_loadu_ps(w + i);
            __m512 a = _mm512_mask_sub_ps(x, _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ), zero, x); /* w < 0 ? -w : w */
            a = _mm512_mask_mov_ps(a, _mm512_cmp_ps_mask(a, vmin, _CMP_LT_OQ), vmin);
            a = _mm512_mask_mov_ps(a, _mm512_cmp_ps_mask(a, vmax, _CMP_GT_OQ), vmax);
            __mmask16 above = _mm512_cmp_ps_mask(a, vlo, _CMP_GT_OQ);
            __mmask16 inside = above & _mm512_cmp_ps_mask(a, vhi, _CMP_LT_OQ);
            under += 16 - __builtin_popcount((unsigned)above);
            _mm512_mask_compressstoreu_ps(cand + m, inside, a);
            m += __builtin_popcount((unsigned)inside);
        }
#endif
        for (; i < end; i++) {
            float a = clamped_abs(w[i], a_min, a_max);
            if (!(a > lo))
                under++;
            else if (a < hi)
                cand[m++] = a;
        }
        counts[g] = m - start;
    }
    *below = under;
    return m;
}
