/* Compiled kernels for nncodec/nn/exact.py's arithmetic (optional: numpy computes the same values).
 *
 * Every function here reproduces a numpy reference bit for bit. Integer work (int8 dot products,
 * integer-weighted sums of int8 values) is done in int32/int64, which is exact; the few floating
 * point operations are elementwise, in the reference's order, and the module is compiled with
 * -ffp-contract=off so that no multiply-add is fused (which would change roundings);
 * -fno-trapping-math only lets floor/rint vectorize (it ignores FP exception flags, not values).
 *
 * Arrays are passed as writable/readable buffers (no numpy headers needed); shapes are passed
 * explicitly and checked against the buffer sizes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* Hot functions are built twice, for AVX2 and for baseline x86-64, and picked at run time. The two
 * give identical results: vector lanes do the same IEEE operations as scalar code (no reassociation,
 * no FMA contraction), and integer arithmetic is exact. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define MULTIVERSION
#endif

/* Scratch memory for an entry point (freed at its end); NULL with MemoryError set on failure. */
static void *scratch(size_t bytes) {
    void *memory = PyMem_Malloc(bytes);
    if (!memory) PyErr_NoMemory();
    return memory;
}

/* The end of every entry point: release the buffers PyArg_ParseTuple filled and return ``result``
 * (NULL with the exception set when the call failed; Py_None gets its new reference here). */
static PyObject *release_buffers(PyObject *result, Py_buffer *const *buffers, size_t count) {
    for (size_t i = 0; i < count; i++) PyBuffer_Release(buffers[i]);
    if (result == Py_None) Py_INCREF(result);
    return result;
}
#define RELEASE(result, ...)                                        \
    release_buffers((result), (Py_buffer *const[]){__VA_ARGS__}, \
                    sizeof((Py_buffer *const[]){__VA_ARGS__}) / sizeof(Py_buffer *))

static int check_size(Py_buffer *buf, Py_ssize_t items, Py_ssize_t itemsize, const char *name) {
    if (buf->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: buffer holds %zd bytes, expected %zd", name, buf->len,
                     items * itemsize);
        return 0;
    }
    return 1;
}


/* Softmax numerators of one query: w_j = table[(int) min((peak - score_j) * steps, L - 1)] (masked
 * keys have score -inf, hence weight table[L-1] = 0); returns their exact sum. */
static inline __attribute__((always_inline)) int64_t softmax_weights(const double *scores, Py_ssize_t Tk,
                                                                     double peak, double steps, double last,
                                                                     const double *tab, int32_t *weights) {
    int64_t total = 0;
    for (Py_ssize_t j = 0; j < Tk; j++) {
        double index = (peak - scores[j]) * steps; /* +inf for masked keys */
        index = index < last ? index : last;       /* np.minimum; NaN cannot occur */
        const int32_t w = (int32_t)tab[(int32_t)index];
        weights[j] = w;
        total += w;
    }
    return total;
}

/* The score loop over the keys of one query, shared by the portable and the AVX2 attention: a key
 * outside the window scores -inf (as in the reference: its weight is table[L-1] = 0), the others
 * dot * (qs * ks_j) - alibi[h][d], where DOT is the int32 dot product of the query with key j.
 * Uses di, Tk, W, qsi, ksg, al, h and scores; updates peak and inside. */
#define SCORE_KEYS(DOT)                                 \
    for (Py_ssize_t j = 0; j < Tk; j++) {               \
        const int32_t d = di[j];                        \
        if (d < 0 || d >= W) {                          \
            scores[j] = -INFINITY;                      \
            continue;                                   \
        }                                               \
        inside++;                                       \
        const int32_t dot = (DOT);                      \
        const double scale = qsi * ksg[j];              \
        const double prod = (double)dot * scale;        \
        const double s = prod - al[h * W + d];          \
        scores[j] = s;                                  \
        if (s > peak) peak = s;                         \
    }

static inline __attribute__((always_inline)) int32_t dot_i8(const int8_t *q, const int8_t *k, Py_ssize_t D) {
    int32_t dot = 0;
    for (Py_ssize_t e = 0; e < D; e++) dot += (int32_t)q[e] * (int32_t)k[e];
    return dot;
}

/* The work of attend() (below); returns 1 if a query has more than 512 keys inside the window.
 * Inlined into wrappers below so that the usual head size 64 is a compile-time constant. */
static inline __attribute__((always_inline)) int attend_body(const int8_t *qb, const double *qsb, const int8_t *kb, const double *ksb,
                         const int8_t *vb, const int32_t *db, const double *al, const double *tab,
                         double steps, const double *vs, double *ob, double *scores, int32_t *weights,
                         int32_t *mixed, Py_ssize_t G, Py_ssize_t H, Py_ssize_t Tq, Py_ssize_t Tk,
                         Py_ssize_t D, Py_ssize_t W, Py_ssize_t L) {
    const double last = (double)(L - 1);
    for (Py_ssize_t g = 0; g < G; g++) {
        const Py_ssize_t h = g % H;
        const int8_t *kg = kb + g * Tk * D, *vg = vb + g * Tk * D;
        const double *ksg = ksb + g * Tk;
        for (Py_ssize_t i = 0; i < Tq; i++) {
            const int8_t *qi = qb + (g * Tq + i) * D;
            const double qsi = qsb[g * Tq + i];
            const int32_t *di = db + i * Tk;
            double peak = -INFINITY;
            Py_ssize_t inside = 0;
            SCORE_KEYS(dot_i8(qi, kg + j * D, D))
            if (inside > 512) return 1;
            const int64_t total = softmax_weights(scores, Tk, peak, steps, last, tab, weights);
            /* int32 is exact: weights <= 2^15, |v| <= 127, at most 512 keys: sums < 2^31 */
            for (Py_ssize_t e = 0; e < D; e++) mixed[e] = 0;
            for (Py_ssize_t j = 0; j < Tk; j++) {
                const int32_t w = weights[j];
                if (!w) continue;
                const int8_t *vj = vg + j * D;
                for (Py_ssize_t e = 0; e < D; e++) mixed[e] += w * (int32_t)vj[e];
            }
            double *oi = ob + (g * Tq + i) * D;
            const double tot = (double)total;
            for (Py_ssize_t e = 0; e < D; e++) oi[e] = ((double)mixed[e] / tot) * vs[h];
        }
    }
    return 0;
}

#define ATTEND_ARGS                                                                                  \
    const int8_t *qb, const double *qsb, const int8_t *kb, const double *ksb, const int8_t *vb,      \
        const int32_t *db, const double *al, const double *tab, double steps, const double *vs,      \
        double *ob, double *scores, int32_t *weights, int32_t *mixed, Py_ssize_t G, Py_ssize_t H,    \
        Py_ssize_t Tq, Py_ssize_t Tk, Py_ssize_t D, Py_ssize_t W, Py_ssize_t L

MULTIVERSION static int attend_groups_64(ATTEND_ARGS) {
    return attend_body(qb, qsb, kb, ksb, vb, db, al, tab, steps, vs, ob, scores, weights, mixed, G, H, Tq, Tk,
                       64, W, L);
}

MULTIVERSION static int attend_groups_any(ATTEND_ARGS) {
    return attend_body(qb, qsb, kb, ksb, vb, db, al, tab, steps, vs, ob, scores, weights, mixed, G, H, Tq, Tk,
                       D, W, L);
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2_ATTEND 1

/* The value mix of the AVX loops multiplies int16 pairs: a weight above 2^15 - 1 (at most 2^15, the
 * table's peak) enters as 2^15 - 1, and the rest of it times the value row goes to ``extra`` (zeroed
 * on first use, as ``have_extra`` says). Integer sums: the same result in any split. */
static inline void split_weights(int32_t *w0, int32_t *w1, const int8_t *v0, const int8_t *v1, int32_t *extra,
                                 int *have_extra) {
    if (!*have_extra) {
        for (int e = 0; e < 64; e++) extra[e] = 0;
        *have_extra = 1;
    }
    if (*w0 > 32767) {
        for (int e = 0; e < 64; e++) extra[e] += (*w0 - 32767) * v0[e];
        *w0 = 32767;
    }
    if (*w1 > 32767) {
        for (int e = 0; e < 64; e++) extra[e] += (*w1 - 32767) * v1[e];
        *w1 = 32767;
    }
}

/* attend_groups for head size 64 with AVX2 integer instructions (same values as attend_body: every
 * sum here is an exact int32 sum, only the order of additions differs). Dots: four vpmaddwd per key.
 * Value mix: keys in pairs, vpmaddwd of interleaved int16 values with the two weights; a weight of
 * 2^15 (which int16 cannot hold) enters as 2^15 - 1 plus one more copy of the value row. */
__attribute__((target("avx2"))) static inline __m256i load_i16x16(const int8_t *p) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
}

/* the dot product of a query (held as q0..q3) with the 64 int8 values of one key row */
__attribute__((target("avx2"))) static inline int32_t dot_avx2_64(__m256i q0, __m256i q1, __m256i q2, __m256i q3,
                                                                   const int8_t *kj) {
    const __m256i s = _mm256_add_epi32(
        _mm256_add_epi32(_mm256_madd_epi16(load_i16x16(kj), q0), _mm256_madd_epi16(load_i16x16(kj + 16), q1)),
        _mm256_add_epi32(_mm256_madd_epi16(load_i16x16(kj + 32), q2), _mm256_madd_epi16(load_i16x16(kj + 48), q3)));
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
    return _mm_cvtsi128_si32(t);
}

__attribute__((target("avx2"))) static int attend_avx2_64(ATTEND_ARGS) {
    const double last = (double)(L - 1);
    (void)D;
    for (Py_ssize_t g = 0; g < G; g++) {
        const Py_ssize_t h = g % H;
        const int8_t *kg = kb + g * Tk * 64, *vg = vb + g * Tk * 64;
        const double *ksg = ksb + g * Tk;
        for (Py_ssize_t i = 0; i < Tq; i++) {
            const int8_t *qi = qb + (g * Tq + i) * 64;
            const double qsi = qsb[g * Tq + i];
            const int32_t *di = db + i * Tk;
            const __m256i q0 = load_i16x16(qi), q1 = load_i16x16(qi + 16), q2 = load_i16x16(qi + 32),
                          q3 = load_i16x16(qi + 48);
            double peak = -INFINITY;
            Py_ssize_t inside = 0;
            SCORE_KEYS(dot_avx2_64(q0, q1, q2, q3, kg + j * 64))
            if (inside > 512) return 1;
            const int64_t total = softmax_weights(scores, Tk, peak, steps, last, tab, weights);
            __m256i acc[8];
            for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_si256();
            int32_t extra[64];
            int have_extra = 0;
            for (Py_ssize_t j = 0; j < Tk; j += 2) {
                const int second = j + 1 < Tk;
                int32_t w0 = weights[j], w1 = second ? weights[j + 1] : 0;
                if (!(w0 | w1)) continue;
                const int8_t *v0 = vg + j * 64, *v1 = second ? v0 + 64 : v0;
                if (w0 > 32767 || w1 > 32767) split_weights(&w0, &w1, v0, v1, extra, &have_extra);
                const __m256i pair = _mm256_set1_epi32((int32_t)((uint32_t)(uint16_t)w0 | ((uint32_t)(uint16_t)w1 << 16)));
                for (int c = 0; c < 4; c++) {
                    const __m256i x0 = load_i16x16(v0 + 16 * c), x1 = load_i16x16(v1 + 16 * c);
                    acc[2 * c] = _mm256_add_epi32(acc[2 * c], _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, x1), pair));
                    acc[2 * c + 1] = _mm256_add_epi32(acc[2 * c + 1], _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, x1), pair));
                }
            }
            /* unpack{lo,hi} interleave within 128-bit lanes: lo holds e = 0-3 and 8-11, hi 4-7 and 12-15 */
            int32_t mixed[64], part[8];
            for (int c = 0; c < 4; c++) {
                _mm256_storeu_si256((__m256i *)part, acc[2 * c]);
                for (int u = 0; u < 4; u++) mixed[16 * c + u] = part[u], mixed[16 * c + 8 + u] = part[4 + u];
                _mm256_storeu_si256((__m256i *)part, acc[2 * c + 1]);
                for (int u = 0; u < 4; u++) mixed[16 * c + 4 + u] = part[u], mixed[16 * c + 12 + u] = part[4 + u];
            }
            if (have_extra)
                for (int e = 0; e < 64; e++) mixed[e] += extra[e];
            double *oi = ob + (g * Tq + i) * 64;
            const double tot = (double)total;
            for (int e = 0; e < 64; e++) oi[e] = ((double)mixed[e] / tot) * vs[h];
        }
    }
    return 0;
}
#endif

/* set by set_level(): 0 uses the best loops the CPU has (AVX-512 VNNI, AVX2), 1 at most AVX2, 2 only
 * baseline x86-64 loops (the determinism tests run every level; the results are the same integers) */
static int kernel_level = 0;
#define force_portable (kernel_level >= 2)

#ifdef HAVE_AVX2_ATTEND
static int have_vnni(void) {
    static int known = -1;
    if (known < 0)
        known = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                __builtin_cpu_supports("avx512vnni");
    return known;
}
#endif

#ifdef HAVE_AVX2_ATTEND
#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define VNNI_ATTEND_MAX_KEYS 1024

/* 16 vectors of int32 partial sums -> one vector whose lane u is the sum of a[u]'s lanes */
static inline __attribute__((always_inline)) VNNI_TARGET __m512i sum_lanes16(const __m512i *a) {
    __m512i b[8], c[4];
    for (int p = 0; p < 8; p++) /* lanes of each 128-bit chunk: keys 2p, 2p+1, 2p, 2p+1 */
        b[p] = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2 * p], a[2 * p + 1]),
                                _mm512_unpackhi_epi32(a[2 * p], a[2 * p + 1]));
    for (int q = 0; q < 4; q++) /* each 128-bit chunk: keys 4q .. 4q+3 */
        c[q] = _mm512_add_epi32(_mm512_unpacklo_epi64(b[2 * q], b[2 * q + 1]),
                                _mm512_unpackhi_epi64(b[2 * q], b[2 * q + 1]));
    const __m512i f01 = _mm512_add_epi32(_mm512_shuffle_i32x4(c[0], c[1], 0x88), _mm512_shuffle_i32x4(c[0], c[1], 0xDD));
    const __m512i f23 = _mm512_add_epi32(_mm512_shuffle_i32x4(c[2], c[3], 0x88), _mm512_shuffle_i32x4(c[2], c[3], 0xDD));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(f01, f23, 0x88), _mm512_shuffle_i32x4(f01, f23, 0xDD));
}

/* attend_body for head size 64 with AVX-512 (the same values: integer sums are exact in any order,
 * and each floating point lane does the reference's IEEE operations in its order). Dots: vpdpbusd of
 * (k + 128) as unsigned bytes with q, minus 128 * sum(q), 16 keys per vector; scores and softmax
 * numerators 8 keys per vector; the value mix runs over the keys of nonzero weight only. */
VNNI_TARGET static int attend_vnni_64(ATTEND_ARGS) {
    const double last = (double)(L - 1);
    const __m512i flip = _mm512_set1_epi32((int32_t)0x80808080u);
    const __m256i zero8 = _mm256_setzero_si256();
    const __m512d last8 = _mm512_set1_pd(last), steps8 = _mm512_set1_pd(steps), none8 = _mm512_set1_pd(-INFINITY);
    int32_t keys[VNNI_ATTEND_MAX_KEYS + 8], held[VNNI_ATTEND_MAX_KEYS + 8]; /* + 8: whole-vector stores */
    (void)D, (void)mixed;
    for (Py_ssize_t g = 0; g < G; g++) {
        const Py_ssize_t h = g % H;
        const int8_t *kg = kb + g * Tk * 64, *vg = vb + g * Tk * 64;
        const double *ksg = ksb + g * Tk;
        const __m256i alibi_row = _mm256_set1_epi32((int32_t)(h * W));
        for (Py_ssize_t i = 0; i < Tq; i++) {
            const int8_t *qi = qb + (g * Tq + i) * 64;
            const double qsi = qsb[g * Tq + i];
            const int32_t *di = db + i * Tk;
            const __m512i qv = _mm512_loadu_si512(qi);
            const int8_t *next_keys = i + 1 < Tq || g + 1 == G ? kg : kg + Tk * 64;
            int32_t qsum = 0;
            for (int e = 0; e < 64; e++) qsum += qi[e];
            const __m512i correction = _mm512_set1_epi32(128 * qsum);
            const __m512d qs8 = _mm512_set1_pd(qsi);
            __m512d peak8 = none8;
            Py_ssize_t inside = 0, j = 0;
            for (; j + 16 <= Tk; j += 16) {
                const __m512i d16 = _mm512_loadu_si512(di + j);
                const __mmask16 in16 = _mm512_cmpge_epi32_mask(d16, _mm512_setzero_si512()) &
                                       _mm512_cmplt_epi32_mask(d16, _mm512_set1_epi32((int32_t)W));
                if (!in16) { /* 16 keys outside the window (the encoder's first keys of later queries) */
                    _mm512_storeu_pd(scores + j, none8);
                    _mm512_storeu_pd(scores + j + 8, none8);
                    continue;
                }
                __m512i a[16];
                for (int u = 0; u < 16; u++) {
                    /* the value rows this query mixes next, and the keys of the next query */
                    _mm_prefetch((const char *)(vg + (j + u) * 64), _MM_HINT_T0);
                    _mm_prefetch((const char *)(next_keys + (j + u) * 64), _MM_HINT_T0);
                    a[u] = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                               _mm512_xor_si512(_mm512_loadu_si512(kg + (j + u) * 64), flip), qv);
                }
                const __m512i dots = _mm512_sub_epi32(sum_lanes16(a), correction);
                for (int half = 0; half < 2; half++) {
                    const Py_ssize_t at = j + 8 * half;
                    const __m256i d = _mm256_loadu_si256((const __m256i *)(di + at));
                    const __mmask8 in = (__mmask8)(in16 >> (8 * half));
                    inside += __builtin_popcount(in);
                    const __m256i dot = half ? _mm512_extracti32x8_epi32(dots, 1) : _mm512_castsi512_si256(dots);
                    const __m512d scale = _mm512_mul_pd(qs8, _mm512_loadu_pd(ksg + at));
                    const __m512d prod = _mm512_mul_pd(_mm512_cvtepi32_pd(dot), scale);
                    const __m512d bias = _mm512_mask_i32gather_pd(_mm512_setzero_pd(), in,
                                                                  _mm256_add_epi32(alibi_row, d), al, 8);
                    const __m512d score = _mm512_mask_sub_pd(none8, in, prod, bias);
                    _mm512_storeu_pd(scores + at, score);
                    peak8 = _mm512_max_pd(peak8, score);
                }
            }
            double peak = _mm512_reduce_max_pd(peak8);
            for (; j < Tk; j++) { /* the last keys, one at a time (as SCORE_KEYS) */
                const int32_t d = di[j];
                if (d < 0 || d >= W) {
                    scores[j] = -INFINITY;
                    continue;
                }
                inside++;
                const double scale = qsi * ksg[j];
                const double prod = (double)dot_i8(qi, kg + j * 64, 64) * scale;
                const double s = prod - al[h * W + d];
                scores[j] = s;
                if (s > peak) peak = s;
            }
            if (inside > 512) return 1;
            /* softmax numerators; the keys of nonzero weight listed in ``keys`` (weights in ``held``) */
            const __m512d peak_8 = _mm512_set1_pd(peak);
            __m512i total8 = _mm512_setzero_si512();
            Py_ssize_t count = 0;
            j = 0;
            for (; j + 8 <= Tk; j += 8) {
                const __m512d index = _mm512_min_pd(_mm512_mul_pd(_mm512_sub_pd(peak_8, _mm512_loadu_pd(scores + j)), steps8), last8);
                const __m256i w = _mm512_cvttpd_epi32(_mm512_i32gather_pd(_mm512_cvttpd_epi32(index), tab, 8));
                total8 = _mm512_add_epi64(total8, _mm512_cvtepi32_epi64(w));
                const __mmask8 nonzero = _mm256_cmpneq_epi32_mask(w, zero8);
                const __m256i at = _mm256_add_epi32(_mm256_set1_epi32((int32_t)j), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                /* compress in a register, then store all 8 lanes (a compressing store is slow on some CPUs) */
                _mm256_storeu_si256((__m256i *)(keys + count), _mm256_maskz_compress_epi32(nonzero, at));
                _mm256_storeu_si256((__m256i *)(held + count), _mm256_maskz_compress_epi32(nonzero, w));
                count += __builtin_popcount(nonzero);
            }
            int64_t total = _mm512_reduce_add_epi64(total8);
            for (; j < Tk; j++) {
                double index = (peak - scores[j]) * steps;
                index = index < last ? index : last;
                const int32_t w = (int32_t)tab[(int32_t)index];
                total += w;
                if (w) keys[count] = (int32_t)j, held[count++] = w;
            }
            /* value mix: keys in pairs, vpdpwssd of interleaved int16 values with the two weights; a
             * weight of 2^15 (which int16 cannot hold) enters as 2^15 - 1 plus one more value row */
            __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                              _mm512_setzero_si512()};
            int32_t extra[64];
            int have_extra = 0;
            for (Py_ssize_t n = 0; n < count; n += 2) {
                int32_t w0 = held[n], w1 = n + 1 < count ? held[n + 1] : 0;
                const int8_t *v0 = vg + (Py_ssize_t)keys[n] * 64, *v1 = n + 1 < count ? vg + (Py_ssize_t)keys[n + 1] * 64 : v0;
                if (w0 > 32767 || w1 > 32767) split_weights(&w0, &w1, v0, v1, extra, &have_extra);
                const __m512i pair = _mm512_set1_epi32((int32_t)((uint32_t)(uint16_t)w0 | ((uint32_t)(uint16_t)w1 << 16)));
                for (int c = 0; c < 2; c++) {
                    const __m512i x0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(v0 + 32 * c)));
                    const __m512i x1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(v1 + 32 * c)));
                    acc[2 * c] = _mm512_dpwssd_epi32(acc[2 * c], _mm512_unpacklo_epi16(x0, x1), pair);
                    acc[2 * c + 1] = _mm512_dpwssd_epi32(acc[2 * c + 1], _mm512_unpackhi_epi16(x0, x1), pair);
                }
            }
            /* unpack{lo,hi} work within 128-bit chunks: chunk L of lo holds e = 8L..8L+3, of hi 8L+4..8L+7 */
            const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
            const __m512i second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
            int32_t sums[64];
            for (int c = 0; c < 2; c++) {
                _mm512_storeu_si512(sums + 32 * c, _mm512_permutex2var_epi32(acc[2 * c], first, acc[2 * c + 1]));
                _mm512_storeu_si512(sums + 32 * c + 16, _mm512_permutex2var_epi32(acc[2 * c], second, acc[2 * c + 1]));
            }
            if (have_extra)
                for (int e = 0; e < 64; e++) sums[e] += extra[e];
            double *oi = ob + (g * Tq + i) * 64;
            const __m512d tot = _mm512_set1_pd((double)total), vsh = _mm512_set1_pd(vs[h]);
            for (int e = 0; e < 64; e += 8) {
                const __m512d x = _mm512_cvtepi32_pd(_mm256_loadu_si256((const __m256i *)(sums + e)));
                _mm512_storeu_pd(oi + e, _mm512_mul_pd(_mm512_div_pd(x, tot), vsh));
            }
        }
    }
    return 0;
}
#endif

static int attend_groups(ATTEND_ARGS) {
#ifdef HAVE_AVX2_ATTEND
    if (D == 64 && kernel_level == 0 && Tk <= VNNI_ATTEND_MAX_KEYS && have_vnni())
        return attend_vnni_64(qb, qsb, kb, ksb, vb, db, al, tab, steps, vs, ob, scores, weights, mixed, G, H, Tq,
                              Tk, D, W, L);
    if (D == 64 && !force_portable && __builtin_cpu_supports("avx2"))
        return attend_avx2_64(qb, qsb, kb, ksb, vb, db, al, tab, steps, vs, ob, scores, weights, mixed, G, H, Tq,
                              Tk, D, W, L);
#endif
    return (D == 64 ? attend_groups_64 : attend_groups_any)(qb, qsb, kb, ksb, vb, db, al, tab, steps, vs, ob,
                                                           scores, weights, mixed, G, H, Tq, Tk, D, W, L);
}

/* attend(q, qs, k, ks, v, dist, alibi, table, steps, vscale, out, G, H, Tq, Tk, D, W, L)
 *
 * q: int8 [G][Tq][D], qs: f64 [G][Tq], k, v: int8 [G][Tk][D], ks: f64 [G][Tk],
 * dist: int32 [Tq][Tk] query-minus-key distance (keys with dist < 0 or >= W are masked),
 * alibi: f64 [H][W], table: f64 [L] (integers, table[L-1] == 0), vscale: f64 [H],
 * out: f64 [G][Tq][D]. Group g uses head g % H.
 *
 * Reference (NumpyOps.attend in nncodec/nn/rowops.py), per group and query:
 *   score_j = dot_j * (qs * ks_j) - alibi[h][dist_j]      (masked: -inf)
 *   w_j = table[(int64) min((max_j score_j - score_j) * steps, L - 1)]   (masked: table[L-1] = 0)
 *   out_d = ((sum_j w_j * v_jd) / (sum_j w_j)) * vscale[h]
 */
static PyObject *attend(PyObject *self, PyObject *args) {
    Py_buffer q, qs, k, ks, v, dist, alibi, table, vscale, out;
    double steps;
    Py_ssize_t G, H, Tq, Tk, D, W, L;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*dy*w*nnnnnnn", &q, &qs, &k, &ks, &v, &dist, &alibi,
                          &table, &steps, &vscale, &out, &G, &H, &Tq, &Tk, &D, &W, &L))
        return NULL;
    PyObject *result = NULL;
    double *scores = NULL;
    int32_t *weights = NULL;
    int32_t *mixed = NULL;
    if (G < 0 || H <= 0 || Tq < 0 || Tk <= 0 || D <= 0 || W <= 0 || W > 512 || L <= 0 || L > (1 << 30) || G % H) {
        PyErr_SetString(PyExc_ValueError, "attend: bad dimensions");
        goto done;
    }
    if (!check_size(&q, G * Tq * D, 1, "q") || !check_size(&qs, G * Tq, 8, "qs") ||
        !check_size(&k, G * Tk * D, 1, "k") || !check_size(&ks, G * Tk, 8, "ks") ||
        !check_size(&v, G * Tk * D, 1, "v") || !check_size(&dist, Tq * Tk, 4, "dist") ||
        !check_size(&alibi, H * W, 8, "alibi") || !check_size(&table, L, 8, "table") ||
        !check_size(&vscale, H, 8, "vscale") || !check_size(&out, G * Tq * D, 8, "out"))
        goto done;
    const double *tab = (const double *)table.buf;
    if (tab[L - 1] != 0.0) {
        PyErr_SetString(PyExc_ValueError, "attend: table must end in 0");
        goto done;
    }
    scores = PyMem_Malloc(sizeof(double) * Tk);
    weights = PyMem_Malloc(sizeof(int32_t) * Tk);
    mixed = PyMem_Malloc(sizeof(int32_t) * D);
    if (!scores || !weights || !mixed) {
        PyErr_NoMemory();
        goto done;
    }
    int too_many;
    Py_BEGIN_ALLOW_THREADS
    too_many = attend_groups(q.buf, qs.buf, k.buf, ks.buf, v.buf, dist.buf, alibi.buf, table.buf, steps,
                             vscale.buf, out.buf, scores, weights, mixed, G, H, Tq, Tk, D, W, L);
    Py_END_ALLOW_THREADS
    if (too_many) {
        PyErr_SetString(PyExc_ValueError, "attend: more than 512 keys inside the window");
        goto done;
    }
    result = Py_None;
done:
    PyMem_Free(scores);
    PyMem_Free(weights);
    PyMem_Free(mixed);
    return RELEASE(result, &q, &qs, &k, &ks, &v, &dist, &alibi, &table, &vscale, &out);
}


/* ---------------------------------------------------------------------------------------------
 * matmul_i8(q [R][K] f32 or i8, w i8 [N][K], packed i8, colsum i32, out f32 [R][N], R, K, N):
 * out[r][n] = sum_k q[r][k] * w[n][k] for int8-valued q and weights in [-127, 127] (checked by the
 * caller at model load). Every sum is an exact int32 (|sum| <= 127^2 * K < 2^24 for K <= 1040), so
 * ``out`` holds the same integers as the float32 BLAS product of nncodec/nn/exact.py's int_matmul,
 * in any summation order.
 *
 * ``packed`` is the same weights in the AVX-512 VNNI layout [N/16][K/4][16][4] (16 outputs x 4
 * inputs per 64 bytes) and ``colsum`` [N] the weight rows' sums; both may be empty (no VNNI loop).
 * The VNNI loop multiplies q + 128 (unsigned bytes) with the weights, 4 products per int32 lane
 * with no intermediate rounding or saturation (vpdpbusd), and subtracts 128 * colsum: exact. */

static void matmul_i8_portable(const int8_t *qi, const int8_t *w, float *ob, Py_ssize_t R, Py_ssize_t K,
                               Py_ssize_t N, Py_ssize_t n0, Py_ssize_t n1) {
    for (Py_ssize_t n = n0; n < n1; n++)
        for (Py_ssize_t r = 0; r < R; r++) ob[r * N + n] = (float)dot_i8(qi + r * K, w + n * K, K);
}

#ifdef HAVE_AVX2_ATTEND
/* four weight rows against one query row, 32 bytes at a time: vpmaddubsw of |q| with sign(q)-adjusted
 * weights (pairs stay below 2 * 127^2 < 2^15: no saturation), vpmaddwd into int32 lanes */
__attribute__((target("avx2"))) static void matmul_i8_avx2(const int8_t *qi, const int8_t *w, float *ob,
                                                           Py_ssize_t R, Py_ssize_t K, Py_ssize_t N,
                                                           Py_ssize_t n0, Py_ssize_t n1) {
    const __m256i ones = _mm256_set1_epi16(1);
    Py_ssize_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        const int8_t *w0 = w + n * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
        for (Py_ssize_t r = 0; r < R; r++) {
            const int8_t *qr = qi + r * K;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            for (Py_ssize_t k = 0; k < K; k += 32) {
                const __m256i qv = _mm256_loadu_si256((const __m256i *)(qr + k));
                const __m256i aq = _mm256_abs_epi8(qv);
#define MATMUL_ROW(acc, wr)                                                                          \
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(                              \
                                    aq, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(wr + k)), qv)), \
                                ones))
                MATMUL_ROW(a0, w0);
                MATMUL_ROW(a1, w1);
                MATMUL_ROW(a2, w2);
                MATMUL_ROW(a3, w3);
#undef MATMUL_ROW
            }
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
            const __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            _mm_storeu_ps(ob + r * N + n, _mm_cvtepi32_ps(sums));
        }
    }
    for (; n < n1; n++)
        for (Py_ssize_t r = 0; r < R; r++) ob[r * N + n] = (float)dot_i8(qi + r * K, w + n * K, K);
}

#define VNNI_ROWS 4   /* query rows per tile */
#define VNNI_BLOCKS 4 /* blocks of 16 outputs per tile: N must be a multiple of 64 */
#define VNNI_CHUNK 64 /* query rows kept hot in cache while the tiles walk over N */

/* RB query rows x 64 outputs over the whole K; pk: the tile's first block, colsum/ob: its first output */
static inline __attribute__((always_inline)) VNNI_TARGET void vnni_tile(const int8_t *qi, const int8_t *pk,
                                                                      const int32_t *colsum, float *ob,
                                                                      Py_ssize_t K, Py_ssize_t N, int RB) {
    __m512i acc[VNNI_ROWS][VNNI_BLOCKS];
    for (int r = 0; r < RB; r++)
        for (int b = 0; b < VNNI_BLOCKS; b++) acc[r][b] = _mm512_setzero_si512();
    const __m512i flip = _mm512_set1_epi32((int32_t)0x80808080u); /* q ^ 0x80 == q + 128 as a u8 */
    for (Py_ssize_t k = 0; k < K; k += 4) {
        __m512i w[VNNI_BLOCKS];
        for (int b = 0; b < VNNI_BLOCKS; b++) w[b] = _mm512_loadu_si512(pk + b * 16 * K + 16 * k);
        for (int r = 0; r < RB; r++) {
            int32_t four;
            memcpy(&four, qi + r * K + k, 4);
            const __m512i x = _mm512_xor_si512(_mm512_set1_epi32(four), flip);
            for (int b = 0; b < VNNI_BLOCKS; b++) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], x, w[b]);
        }
    }
    for (int b = 0; b < VNNI_BLOCKS; b++) {
        const __m512i offset = _mm512_slli_epi32(_mm512_loadu_si512(colsum + 16 * b), 7);
        for (int r = 0; r < RB; r++)
            _mm512_storeu_ps(ob + r * N + 16 * b, _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][b], offset)));
    }
}

VNNI_TARGET static void matmul_i8_vnni(const int8_t *qi, const int8_t *packed, const int32_t *colsum, float *ob,
                                       Py_ssize_t R, Py_ssize_t K, Py_ssize_t N, Py_ssize_t n0, Py_ssize_t n1) {
    for (Py_ssize_t r0 = 0; r0 < R; r0 += VNNI_CHUNK) {
        const Py_ssize_t r1 = r0 + VNNI_CHUNK < R ? r0 + VNNI_CHUNK : R;
        for (Py_ssize_t n = n0; n < n1; n += 16 * VNNI_BLOCKS) {
            const int8_t *pk = packed + n * K;
            Py_ssize_t r = r0;
            for (; r + VNNI_ROWS <= r1; r += VNNI_ROWS) vnni_tile(qi + r * K, pk, colsum + n, ob + r * N + n, K, N, 4);
            switch (r1 - r) {
            case 3: vnni_tile(qi + r * K, pk, colsum + n, ob + r * N + n, K, N, 3); break;
            case 2: vnni_tile(qi + r * K, pk, colsum + n, ob + r * N + n, K, N, 2); break;
            case 1: vnni_tile(qi + r * K, pk, colsum + n, ob + r * N + n, K, N, 1); break;
            default: break;
            }
        }
    }
}
#endif

/* output columns n0 .. n1 - 1 (multiples of 64 when the VNNI loop may run) of the product, with the
 * best loop for this CPU and kernel_level; ``packed`` NULL: no VNNI layout given */
static void matmul_i8_cols(const int8_t *qi, const int8_t *w, const int8_t *packed, const int32_t *colsum,
                           float *ob, Py_ssize_t R, Py_ssize_t K, Py_ssize_t N, Py_ssize_t n0, Py_ssize_t n1) {
#ifdef HAVE_AVX2_ATTEND
    if (packed && kernel_level == 0 && N % (16 * VNNI_BLOCKS) == 0 && K % 4 == 0 && have_vnni()) {
        matmul_i8_vnni(qi, packed, colsum, ob, R, K, N, n0, n1);
        return;
    }
    if (K % 32 == 0 && kernel_level <= 1 && __builtin_cpu_supports("avx2")) {
        matmul_i8_avx2(qi, w, ob, R, K, N, n0, n1);
        return;
    }
#endif
    matmul_i8_portable(qi, w, ob, R, K, N, n0, n1);
}

static void matmul_i8_rows(const int8_t *qi, const int8_t *w, const int8_t *packed, const int32_t *colsum,
                           float *ob, Py_ssize_t R, Py_ssize_t K, Py_ssize_t N) {
    matmul_i8_cols(qi, w, packed, colsum, ob, R, K, N, 0, N);
}

/* pack_vnni(weight i8 [N][K], packed i8 [N/16][K/4][16][4], colsum i32 [N], N, K): the VNNI layout of
 * a weight matrix and its row sums (nncodec/text/model.py's pack_vnni is the reference) */
static PyObject *pack_vnni(PyObject *self, PyObject *args) {
    Py_buffer weight, packed, colsum;
    Py_ssize_t N, K;
    if (!PyArg_ParseTuple(args, "y*w*w*nn", &weight, &packed, &colsum, &N, &K)) return NULL;
    PyObject *result = NULL;
    if (N <= 0 || K <= 0 || N % 16 || K % 4) {
        PyErr_SetString(PyExc_ValueError, "pack_vnni: N must be a multiple of 16 and K of 4");
        goto done;
    }
    if (!check_size(&weight, N * K, 1, "weight") || !check_size(&packed, N * K, 1, "packed") ||
        !check_size(&colsum, N, 4, "colsum"))
        goto done;
    const int8_t *w = weight.buf;
    int8_t *p = packed.buf;
    int32_t *sums = colsum.buf;
    for (Py_ssize_t nb = 0; nb < N / 16; nb++)
        for (Py_ssize_t kb = 0; kb < K / 4; kb++)
            for (Py_ssize_t i = 0; i < 16; i++)
                memcpy(p + ((nb * (K / 4) + kb) * 16 + i) * 4, w + (nb * 16 + i) * K + kb * 4, 4);
    for (Py_ssize_t n = 0; n < N; n++) {
        int32_t sum = 0;
        for (Py_ssize_t k = 0; k < K; k++) sum += w[n * K + k];
        sums[n] = sum;
    }
    result = Py_None;
done:
    return RELEASE(result, &weight, &packed, &colsum);
}

/* q[j] = x[j] for float values that are integers in [-127, 127]; 0 if any is not (branch-free, so the
 * loop vectorizes; out-of-range values and NaN are clamped to 128 before the cast, then refused) */
MULTIVERSION static int floats_to_int8(const float *x, int8_t *q, Py_ssize_t n) {
    int bad = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        const float c = x[j] >= -128.0f && x[j] <= 128.0f ? x[j] : 128.0f;
        const int32_t i = (int32_t)c;
        bad |= (c != x[j]) | (c != (float)i) | (i < -127) | (i > 127);
        q[j] = (int8_t)i;
    }
    return !bad;
}

/* whether every q[j] lies in [-127, 127] (no -128) */
MULTIVERSION static int int8_in_range(const int8_t *q, Py_ssize_t n) {
    int bad = 0;
    for (Py_ssize_t j = 0; j < n; j++) bad |= q[j] == -128;
    return !bad;
}

/* whether ``packed``/``colsum`` hold the VNNI layout of an N x K weight matrix (else: not used) */
static int vnni_given(Py_buffer *packed, Py_buffer *colsum, Py_ssize_t K, Py_ssize_t N) {
    if (packed->len == 0 && colsum->len == 0) return 0;
    if (packed->len != N * K || colsum->len != N * 4) {
        PyErr_SetString(PyExc_ValueError, "matmul_i8: packed weights or column sums of the wrong size");
        return -1;
    }
    return 1;
}

static PyObject *matmul_i8(PyObject *self, PyObject *args) {
    Py_buffer q, w, packed, colsum, out;
    Py_ssize_t R, K, N;
    if (!PyArg_ParseTuple(args, "y*y*y*y*w*nnn", &q, &w, &packed, &colsum, &out, &R, &K, &N)) return NULL;
    PyObject *result = NULL;
    int8_t *qi = NULL;
    if (R < 0 || K <= 0 || K > 1040 || N <= 0) {
        PyErr_SetString(PyExc_ValueError, "matmul_i8: bad dimensions");
        goto done;
    }
    if (q.len != R * K && !check_size(&q, R * K, 4, "q")) goto done; /* int8 or float32 */
    if (!check_size(&w, N * K, 1, "w") || !check_size(&out, R * N, 4, "out")) goto done;
    const int vnni = vnni_given(&packed, &colsum, K, N);
    if (vnni < 0) goto done;
    const int8_t *rows = q.buf;
    if (q.len != R * K) {
        if (!(qi = scratch(R * K + 1))) goto done;
        if (!floats_to_int8(q.buf, qi, R * K)) {
            PyErr_SetString(PyExc_ValueError, "matmul_i8: q holds a value that is not an int8 in [-127, 127]");
            goto done;
        }
        rows = qi;
    } else if (!int8_in_range(rows, R * K)) {
        PyErr_SetString(PyExc_ValueError, "matmul_i8: q holds -128 (int8 values must lie in [-127, 127])");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    matmul_i8_rows(rows, w.buf, vnni ? packed.buf : NULL, vnni ? colsum.buf : NULL, out.buf, R, K, N);
    Py_END_ALLOW_THREADS
    result = Py_None;
done:
    PyMem_Free(qi);
    return RELEASE(result, &q, &w, &packed, &colsum, &out);
}


/* ---------------------------------------------------------------------------------------------
 * Row kernels: the elementwise work around the model's matmuls (nncodec/text/model.py's NumpyOps
 * is the reference). ``acc`` is a float32 matmul result holding exact integers; a linear layer's
 * value is acc * (row_scale * col_scale), computed in that order in float64. */

/* quantize one row: q = rint(x * (127 / safe)), scale = safe / 127, safe = max|x| or 1; |q| <= 127
 * (|x| <= safe), so q is stored as int8 (the numpy reference holds the same integers in float32) */
static double quantize_row(const double *x, int8_t *q, Py_ssize_t C) {
    double peak = 0.0;
    for (Py_ssize_t j = 0; j < C; j++) {
        const double a = fabs(x[j]);
        if (a > peak) peak = a;
    }
    const double safe = peak > 0.0 ? peak : 1.0;
    const double factor = 127.0 / safe;
    for (Py_ssize_t j = 0; j < C; j++) q[j] = (int8_t)(int32_t)rint(x[j] * factor);
    return safe / 127.0;
}

MULTIVERSION
static void quantize_rows(const double *xb, int8_t *qb, double *sb, Py_ssize_t R, Py_ssize_t C) {
    for (Py_ssize_t r = 0; r < R; r++) sb[r] = quantize_row(xb + r * C, qb + r * C, C);
}

/* quantize(x f64 [R][C], q i8 [R][C], scale f64 [R], R, C) */
static PyObject *quantize(PyObject *self, PyObject *args) {
    Py_buffer x, q, scale;
    Py_ssize_t R, C;
    if (!PyArg_ParseTuple(args, "y*w*w*nn", &x, &q, &scale, &R, &C)) return NULL;
    PyObject *result = NULL;
    if (R < 0 || C <= 0 || !check_size(&x, R * C, 8, "x") || !check_size(&q, R * C, 1, "q") ||
        !check_size(&scale, R, 8, "scale"))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    quantize_rows(x.buf, q.buf, scale.buf, R, C);
    Py_END_ALLOW_THREADS
    result = Py_None;
done:
    return RELEASE(result, &x, &q, &scale);
}

/* norm_quantize(residual i64 [R][C], eps, limit, q i8, scale f64 [R], R, C) -> bool
 * RMSNorm then quantize: scale = (peak scale) / sqrt(sum_sq / C + eps). Returns False (and writes
 * nothing meaningful) if some |residual| >= limit. */
MULTIVERSION
static int norm_quantize_rows(const int64_t *rb, double eps, int64_t limit, int8_t *qb, double *sb, double *work,
                              Py_ssize_t R, Py_ssize_t C) {
    for (Py_ssize_t r = 0; r < R; r++) {
        const int64_t *row = rb + r * C;
        int64_t sum_sq = 0;
        for (Py_ssize_t j = 0; j < C; j++) {
            if (row[j] >= limit || row[j] <= -limit) return 1;
            sum_sq += row[j] * row[j];
            work[j] = (double)row[j];
        }
        const double rms = sqrt((double)sum_sq / (double)C + eps);
        sb[r] = quantize_row(work, qb + r * C, C) / rms;
    }
    return 0;
}

static PyObject *norm_quantize(PyObject *self, PyObject *args) {
    Py_buffer res, q, scale;
    double eps;
    long long limit;
    Py_ssize_t R, C;
    if (!PyArg_ParseTuple(args, "y*dLw*w*nn", &res, &eps, &limit, &q, &scale, &R, &C)) return NULL;
    PyObject *result = NULL;
    double *work = NULL;
    int overflow = 0;
    if (R < 0 || C <= 0 || !check_size(&res, R * C, 8, "residual") || !check_size(&q, R * C, 1, "q") ||
        !check_size(&scale, R, 8, "scale"))
        goto done;
    if (!(work = scratch(sizeof(double) * C))) goto done;
    Py_BEGIN_ALLOW_THREADS
    overflow = norm_quantize_rows(res.buf, eps, (int64_t)limit, q.buf, scale.buf, work, R, C);
    Py_END_ALLOW_THREADS
    result = PyBool_FromLong(!overflow);
done:
    PyMem_Free(work);
    return RELEASE(result, &res, &q, &scale);
}

/* residual_add(residual i64 [R][C] (in place), acc f32, row_scale [R], col_scale [C], unit, R, C):
 * residual += rint(acc * (row_scale * col_scale) / unit) */
MULTIVERSION
static void residual_add_rows(int64_t *rb, const float *ab, const double *rsb, const double *csb, double unit,
                              Py_ssize_t R, Py_ssize_t C) {
    for (Py_ssize_t r = 0; r < R; r++) {
        for (Py_ssize_t j = 0; j < C; j++) {
            double step = rint(((double)ab[r * C + j] * (rsb[r] * csb[j])) / unit);
            if (step > 4.0e18) step = 4.0e18;  /* far past the overflow check; avoids UB */
            if (step < -4.0e18) step = -4.0e18;
            rb[r * C + j] += (int64_t)step;
        }
    }
}

static PyObject *residual_add(PyObject *self, PyObject *args) {
    Py_buffer res, acc, rs, cs;
    double unit;
    Py_ssize_t R, C;
    if (!PyArg_ParseTuple(args, "w*y*y*y*dnn", &res, &acc, &rs, &cs, &unit, &R, &C)) return NULL;
    PyObject *result = NULL;
    if (R < 0 || C <= 0 || !check_size(&res, R * C, 8, "residual") || !check_size(&acc, R * C, 4, "acc") ||
        !check_size(&rs, R, 8, "row_scale") || !check_size(&cs, C, 8, "col_scale"))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    residual_add_rows(res.buf, acc.buf, rs.buf, cs.buf, unit, R, C);
    Py_END_ALLOW_THREADS
    result = Py_None;
done:
    return RELEASE(result, &res, &acc, &rs, &cs);
}

/* relu_quantize(acc f32 [R][C], row_scale, col_scale, q i8, scale f64 [R], R, C):
 * quantize rows of max(acc * (row_scale * col_scale), 0) */
MULTIVERSION
static void relu_quantize_rows(const float *ab, const double *rsb, const double *csb, int8_t *qb, double *sb,
                               double *work, Py_ssize_t R, Py_ssize_t C) {
    for (Py_ssize_t r = 0; r < R; r++) {
        for (Py_ssize_t j = 0; j < C; j++) {
            const double value = (double)ab[r * C + j] * (rsb[r] * csb[j]);
            work[j] = value >= 0.0 ? value : 0.0;
        }
        sb[r] = quantize_row(work, qb + r * C, C);
    }
}

static PyObject *relu_quantize(PyObject *self, PyObject *args) {
    Py_buffer acc, rs, cs, q, scale;
    Py_ssize_t R, C;
    if (!PyArg_ParseTuple(args, "y*y*y*w*w*nn", &acc, &rs, &cs, &q, &scale, &R, &C)) return NULL;
    PyObject *result = NULL;
    double *work = NULL;
    if (R < 0 || C <= 0 || !check_size(&acc, R * C, 4, "acc") || !check_size(&rs, R, 8, "row_scale") ||
        !check_size(&cs, C, 8, "col_scale") || !check_size(&q, R * C, 1, "q") ||
        !check_size(&scale, R, 8, "scale"))
        goto done;
    if (!(work = scratch(sizeof(double) * C))) goto done;
    Py_BEGIN_ALLOW_THREADS
    relu_quantize_rows(acc.buf, rs.buf, cs.buf, q.buf, scale.buf, work, R, C);
    Py_END_ALLOW_THREADS
    result = Py_None;
done:
    PyMem_Free(work);
    return RELEASE(result, &acc, &rs, &cs, &q, &scale);
}

/* qkv_split(acc f32 [R][3*H*D], row_scale [R], col_scale [3*H*D], q_factor, v_scale [H],
 *           q i8 [R][H][D], qs f64 [R][H], k i8, ks, v i8 [R][H][D], R, H, D)
 * value = acc * (row_scale * col_scale); per head: q, k quantized (qs additionally * q_factor),
 * v = clip(rint(value / v_scale[h]), -127, 127). */
MULTIVERSION
static void qkv_split_rows(const float *ab, const double *rsb, const double *csb, double q_factor, const double *vs,
                           int8_t *qb, double *qsb, int8_t *kb, double *ksb, int8_t *vb, double *work,
                           Py_ssize_t R, Py_ssize_t H, Py_ssize_t D) {
    const Py_ssize_t C = H * D;
    for (Py_ssize_t r = 0; r < R; r++) {
        for (Py_ssize_t j = 0; j < 3 * C; j++) work[j] = (double)ab[r * 3 * C + j] * (rsb[r] * csb[j]);
        for (Py_ssize_t h = 0; h < H; h++) {
            const Py_ssize_t at = (r * H + h) * D;
            qsb[r * H + h] = quantize_row(work + h * D, qb + at, D) * q_factor;
            ksb[r * H + h] = quantize_row(work + C + h * D, kb + at, D);
            for (Py_ssize_t e = 0; e < D; e++) {
                double x = rint(work[2 * C + h * D + e] / vs[h]);
                if (x < -127.0) x = -127.0;
                if (x > 127.0) x = 127.0;
                vb[at + e] = (int8_t)x;
            }
        }
    }
}

static PyObject *qkv_split(PyObject *self, PyObject *args) {
    Py_buffer acc, rs, cs, vsc, q, qs, k, ks, v;
    double q_factor;
    Py_ssize_t R, H, D;
    if (!PyArg_ParseTuple(args, "y*y*y*dy*w*w*w*w*w*nnn", &acc, &rs, &cs, &q_factor, &vsc, &q, &qs, &k, &ks,
                          &v, &R, &H, &D))
        return NULL;
    PyObject *result = NULL;
    double *work = NULL;
    const Py_ssize_t C = H * D;
    if (R < 0 || H <= 0 || D <= 0 || !check_size(&acc, R * 3 * C, 4, "acc") ||
        !check_size(&rs, R, 8, "row_scale") || !check_size(&cs, 3 * C, 8, "col_scale") ||
        !check_size(&vsc, H, 8, "v_scale") || !check_size(&q, R * C, 1, "q") ||
        !check_size(&qs, R * H, 8, "qs") || !check_size(&k, R * C, 1, "k") ||
        !check_size(&ks, R * H, 8, "ks") || !check_size(&v, R * C, 1, "v"))
        goto done;
    if (!(work = scratch(sizeof(double) * 3 * C))) goto done;
    Py_BEGIN_ALLOW_THREADS
    qkv_split_rows(acc.buf, rs.buf, cs.buf, q_factor, vsc.buf, q.buf, qs.buf, k.buf, ks.buf, v.buf, work, R, H, D);
    Py_END_ALLOW_THREADS
    result = Py_None;
done:
    PyMem_Free(work);
    return RELEASE(result, &acc, &rs, &cs, &vsc, &q, &qs, &k, &ks, &v);
}

/* lut_rows(x, table, steps, out, R, C): per row, out_j = table[(int64) min((max x - x_j) * steps,
 * L - 1)] + 1 (the output softmax numerators, IntGPT.frequencies). x, out: f64 [R][C]. */
MULTIVERSION
static PyObject *lut_rows(PyObject *self, PyObject *args) {
    Py_buffer x, table, out;
    double steps;
    Py_ssize_t R, C, L;
    if (!PyArg_ParseTuple(args, "y*y*dw*nnn", &x, &table, &steps, &out, &R, &C, &L)) return NULL;
    PyObject *result = NULL;
    if (R < 0 || C <= 0 || L <= 0) {
        PyErr_SetString(PyExc_ValueError, "lut_rows: bad dimensions");
        goto done;
    }
    if (!check_size(&x, R * C, 8, "x") || !check_size(&table, L, 8, "table") ||
        !check_size(&out, R * C, 8, "out"))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    const double *xb = x.buf, *tab = table.buf;
    double *ob = out.buf;
    const double last = (double)(L - 1);
    for (Py_ssize_t r = 0; r < R; r++) {
        const double *xr = xb + r * C;
        double *orow = ob + r * C;
        double peak = xr[0];
        for (Py_ssize_t j = 1; j < C; j++)
            if (xr[j] > peak) peak = xr[j];
        for (Py_ssize_t j = 0; j < C; j++) {
            double index = (peak - xr[j]) * steps;
            if (!(index < last)) index = last;
            orow[j] = tab[(int64_t)index] + 1.0;
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
done:
    return RELEASE(result, &x, &table, &out);
}


/* ---------------------------------------------------------------------------------------------
 * Mixer: the compiled form of nncodec/nn/mixing.py's ContextMixer (same tables, same arithmetic).
 *
 * Each order k has a hash table from a context key (the previous k tokens, as in
 * ContextMixer._keys) to the counts of the tokens that followed it. */

typedef struct {
    int32_t token;
    int32_t count;
} TokenCount;

#define INLINE_ITEMS 2 /* token counts kept inside a context before it allocates its own */

typedef struct {
    int64_t key;      /* -1: empty slot */
    int64_t seen;     /* sum of counts */
    TokenCount *items; /* inline_items while capacity is INLINE_ITEMS (most contexts of fine orders) */
    uint16_t *slot_of; /* small vocabularies, contexts with many tokens: item index + 1 by token (0: none) */
    int32_t distinct;
    int32_t capacity;
    TokenCount inline_items[INLINE_ITEMS];
} Context;

#define INDEX_VOCAB 1024 /* contexts of vocabularies up to this size get a token index ... */
#define INDEX_AT 16      /* ... once they list this many tokens (a lookup only: counts unchanged) */

typedef struct {
    Context *slots;
    Py_ssize_t size, used;
} ContextTable;

#define MAX_ORDERS 8

#define N_BUCKETS 11 /* learned weights' classes (nncodec/nn/mixing.py): n buckets, d buckets */
#define D_BUCKETS 6

typedef struct {
    PyObject_HEAD
    Py_ssize_t vocab;
    int orders;
    double priors[MAX_ORDERS];
    ContextTable tables[MAX_ORDERS];
    int learned;                                          /* text format 3: learned weights */
    int product;                                          /* image format 4: product-form rows */
    int32_t squash[4095], stretch[4096];                  /* mixing.SQUASH, mixing.STRETCH */
    int64_t limit[2];                                     /* mixing.W0_LIMIT, W1_LIMIT */
    double err_limit, err_scale;                          /* mixing.ERR_LIMIT, ERR_SCALE */
    int64_t rate_w0, rate_shift, rate_w1;                 /* mixing.RATE_W0, RATE_SHIFT, RATE_W1 */
    int64_t weights[MAX_ORDERS][N_BUCKETS][D_BUCKETS][2]; /* (w0, w1), 16 fractional bits */
} MixerObject;

static uint64_t hash_key(int64_t key) {
    uint64_t x = (uint64_t)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static Context *table_find(ContextTable *t, int64_t key) {
    Py_ssize_t mask = t->size - 1, i = (Py_ssize_t)(hash_key(key) & (uint64_t)mask);
    while (t->slots[i].key != -1) {
        if (t->slots[i].key == key) return &t->slots[i];
        i = (i + 1) & mask;
    }
    return NULL;
}

static int table_grow(ContextTable *t) {
    Py_ssize_t size = t->size ? t->size * 2 : 1024;
    Context *slots = PyMem_RawCalloc(size, sizeof(Context));
    if (!slots) return -1;
    for (Py_ssize_t i = 0; i < size; i++) slots[i].key = -1;
    for (Py_ssize_t i = 0; i < t->size; i++) {
        if (t->slots[i].key == -1) continue;
        Py_ssize_t j = (Py_ssize_t)(hash_key(t->slots[i].key) & (uint64_t)(size - 1));
        while (slots[j].key != -1) j = (j + 1) & (size - 1);
        slots[j] = t->slots[i];
        if (slots[j].capacity == INLINE_ITEMS) slots[j].items = slots[j].inline_items; /* moved with it */
    }
    PyMem_RawFree(t->slots);
    t->slots = slots;
    t->size = size;
    return 0;
}

static Context *table_insert(ContextTable *t, int64_t key) {
    Context *c = t->size ? table_find(t, key) : NULL;
    if (c) return c;
    if ((t->used + 1) * 2 > t->size && table_grow(t) < 0) return NULL;
    Py_ssize_t mask = t->size - 1, i = (Py_ssize_t)(hash_key(key) & (uint64_t)mask);
    while (t->slots[i].key != -1) i = (i + 1) & mask;
    t->slots[i].key = key;
    t->used++;
    return &t->slots[i];
}

/* The item of ``token`` in context c, or NULL. */
static TokenCount *context_item(const Context *c, int32_t token) {
    if (c->slot_of) return c->slot_of[token] ? &c->items[c->slot_of[token] - 1] : NULL;
    for (int32_t i = 0; i < c->distinct; i++)
        if (c->items[i].token == token) return &c->items[i];
    return NULL;
}

static int context_add(Context *c, int32_t token, Py_ssize_t vocab) {
    TokenCount *item = context_item(c, token);
    if (item) {
        item->count++;
        c->seen++;
        return 0;
    }
    if (!c->slot_of && vocab <= INDEX_VOCAB && c->distinct >= INDEX_AT) {
        if (!(c->slot_of = PyMem_RawCalloc((size_t)vocab, sizeof(uint16_t)))) return -1;
        for (int32_t i = 0; i < c->distinct; i++) c->slot_of[c->items[i].token] = (uint16_t)(i + 1);
    }
    if (!c->capacity) {
        c->items = c->inline_items;
        c->capacity = INLINE_ITEMS;
    } else if (c->distinct == c->capacity) {
        const int32_t capacity = c->capacity * 2;
        TokenCount *items = c->capacity == INLINE_ITEMS ? PyMem_RawMalloc(sizeof(TokenCount) * capacity)
                                                        : PyMem_RawRealloc(c->items, sizeof(TokenCount) * capacity);
        if (!items) return -1;
        if (c->capacity == INLINE_ITEMS) memcpy(items, c->inline_items, sizeof(c->inline_items));
        c->items = items;
        c->capacity = capacity;
    }
    c->items[c->distinct].token = token;
    c->items[c->distinct].count = 1;
    c->distinct++;
    if (c->slot_of) c->slot_of[token] = (uint16_t)c->distinct;
    c->seen++;
    return 0;
}

/* Context keys of orders 1..orders for one stream (ContextMixer._keys); -1 where there is none. */
static void context_keys(const MixerObject *m, const int64_t *history, int64_t *keys) {
    int64_t key = 0;
    int missing = 0;
    for (int k = 1; k <= m->orders; k++) {
        const int64_t token = history[m->orders - k];
        if (missing || token < 0) {
            missing = 1;
            keys[k - 1] = -1;
            continue;
        }
        key = key * m->vocab + token;
        keys[k - 1] = key;
    }
}

static int bit_length(int64_t v) {
    int n = 0;
    while (v) n++, v >>= 1;
    return n;
}

/* An order's blending weight (mixing.ContextMixer._weight): the formula's l, or for a learned mixer
 * the refined l, with its stretch value and class index (into weights[order]). */
static double mixer_weight(const MixerObject *m, int order, int64_t seen, int32_t distinct, int32_t *stretched,
                           int *cls) {
    const double weight = (double)seen / ((double)seen + m->priors[order] * (double)distinct);
    if (!m->learned) return weight;
    int index = (int)(weight * 4096.0);
    index = index < 1 ? 1 : index > 4095 ? 4095 : index;
    const int32_t s = m->stretch[index];
    int nb = bit_length(seen) - 1, db = bit_length(distinct) - 1;
    nb = nb > N_BUCKETS - 1 ? N_BUCKETS - 1 : nb;
    db = db > D_BUCKETS - 1 ? D_BUCKETS - 1 : db;
    const int64_t *w = m->weights[order][nb][db];
    int64_t a = (w[0] * s + w[1]) >> 16; /* arithmetic shift (floor), as Python's >> */
    a = a < -2047 ? -2047 : a > 2047 ? 2047 : a;
    if (stretched) *stretched = s;
    if (cls) *cls = nb * D_BUCKETS + db;
    return (double)m->squash[a + 2047] / 4096.0;
}

static int Mixer_init(MixerObject *self, PyObject *args, PyObject *kwds) {
    Py_ssize_t vocab;
    PyObject *priors, *learned = Py_None;
    int product = 0;
    if (!PyArg_ParseTuple(args, "nO|Op", &vocab, &priors, &learned, &product)) return -1;
    self->product = product;
    if (learned != Py_None) {
        /* mixing.LEARNED_SETTINGS: (squash int32 bytes [4095], stretch int32 bytes [4096], w_one,
         * w0_limit, w1_limit, err_limit, err_scale, rate_w0, rate_shift, rate_w1) */
        const char *squash, *stretch;
        Py_ssize_t n_squash, n_stretch;
        long long one, l0, l1, r0, shift, r1;
        double err_limit, err_scale;
        if (!PyArg_ParseTuple(learned, "y#y#LLLddLLL", &squash, &n_squash, &stretch, &n_stretch, &one, &l0, &l1,
                              &err_limit, &err_scale, &r0, &shift, &r1))
            return -1;
        /* bounds that keep every product of mixer_weight and mixer_learn inside int64 */
        if (n_squash != 4 * 4095 || n_stretch != 4 * 4096 || one < 0 || one > l0 || l0 > 1LL << 30 || l1 < 0 ||
            l1 > 1LL << 30 || !(err_limit >= 0.0 && err_limit * err_scale <= 1 << 20) || r0 < 0 || r0 > 4096 ||
            shift < 0 || shift > 30 || r1 < 0 || r1 > 1 << 20) {
            PyErr_SetString(PyExc_ValueError, "Mixer: learned settings out of range");
            return -1;
        }
        memcpy(self->squash, squash, sizeof(self->squash));
        memcpy(self->stretch, stretch, sizeof(self->stretch));
        self->learned = 1;
        self->limit[0] = l0, self->limit[1] = l1, self->err_limit = err_limit, self->err_scale = err_scale;
        self->rate_w0 = r0, self->rate_shift = shift, self->rate_w1 = r1;
        for (int k = 0; k < MAX_ORDERS; k++)
            for (int i = 0; i < N_BUCKETS; i++)
                for (int j = 0; j < D_BUCKETS; j++) self->weights[k][i][j][0] = one, self->weights[k][i][j][1] = 0;
    }
    PyObject *seq = PySequence_Fast(priors, "priors must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    /* keys up to vocab^orders must fit in int64 */
    double largest = 1.0;
    for (Py_ssize_t i = 0; i < n; i++) largest *= (double)vocab;
    if (n < 1 || n > MAX_ORDERS || vocab < 1 || vocab > (1 << 24) || largest >= 9.0e18) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "Mixer: bad vocabulary size or number of orders");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        self->priors[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    self->vocab = vocab;
    self->orders = (int)n;
    return 0;
}

static void mixer_clear(MixerObject *self) {
    for (int k = 0; k < MAX_ORDERS; k++) {
        ContextTable *t = &self->tables[k];
        for (Py_ssize_t i = 0; i < t->size; i++)
            if (t->slots[i].key != -1) {
                if (t->slots[i].capacity > INLINE_ITEMS) PyMem_RawFree(t->slots[i].items);
                PyMem_RawFree(t->slots[i].slot_of);
            }
        PyMem_RawFree(t->slots);
        t->slots = NULL;
        t->size = t->used = 0;
    }
}

static void Mixer_dealloc(MixerObject *self) {
    mixer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* forget(): drop every count (the learned weights stay), as a new mixer with these weights. */
static PyObject *Mixer_forget(MixerObject *self, PyObject *unused) {
    (void)unused;
    Py_BEGIN_ALLOW_THREADS
    mixer_clear(self);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* The mixed rows of S streams: model_rows f64 [S][V], history int64 [S][orders], out f64 [S][V]; work
 * int32 [(orders + 1) * V], zero on entry and on return. Only reads the mixer, so several threads may
 * call it at once (on different rows), never during an update. Needs no GIL. */
MULTIVERSION
static void mixer_rows(const MixerObject *self, const double *rb, const int64_t *hb, double *ob, Py_ssize_t S,
                       int32_t *work) {
    const Py_ssize_t V = self->vocab;
    int32_t stamp = 0;
    int64_t keys[MAX_ORDERS];
    for (Py_ssize_t s = 0; s < S; s++) {
        const double *row = rb + s * V;
        double *p = ob + s * V;
        /* exact in any order (integers, sum < 2^53): four partial sums let the loop vectorize */
        double part[4] = {0.0, 0.0, 0.0, 0.0};
        Py_ssize_t j4 = 0;
        for (; j4 + 4 <= V; j4 += 4)
            for (int u = 0; u < 4; u++) part[u] += row[j4 + u];
        for (; j4 < V; j4++) part[0] += row[j4];
        const double total = (part[0] + part[1]) + (part[2] + part[3]);
        /* The reference (ContextMixer) computes p = row / total, then for each order with a context
         * p *= keep over all tokens and p[t] += count_t * per_count for the tokens seen there, then
         * floor(p * 2^24) + 1. Here: one pass for every token as if it were seen in no context, then
         * the same sequence of operations redone for the tokens that were. */
        context_keys(self, hb + s * self->orders, keys);
        const Context *ctx[MAX_ORDERS];
        double keep[MAX_ORDERS], per_count[MAX_ORDERS];
        int n = 0;
        for (int k = 0; k < self->orders; k++) {
            if (keys[k] < 0 || !self->tables[k].size) continue;
            const Context *c = table_find((ContextTable *)&self->tables[k], keys[k]);
            if (!c || !c->distinct) continue;
            const double seen = (double)c->seen;
            const double weight = mixer_weight(self, k, c->seen, c->distinct, NULL, NULL);
            ctx[n] = c;
            keep[n] = 1.0 - weight;
            per_count[n] = weight / seen;
            n++;
        }
        if (self->product) {
            /* product form (ContextMixer, product=True): the same blend with the keeps multiplied
             * out, p = (row / total) * K + sum_b count_b * coef_b, K = keep_0 * ... * keep_(n-1),
             * coef_b = per_count_b * keep_(n-1) * ... * keep_(b+1) (products from the top down);
             * the counts added order by order, lowest first */
            double coef[MAX_ORDERS], suffix = 1.0;
            for (int b = n - 1; b >= 0; b--) {
                coef[b] = per_count[b] * suffix;
                suffix = suffix * keep[b];
            }
            for (Py_ssize_t j = 0; j < V; j++) p[j] = (row[j] / total) * suffix;
            for (int b = 0; b < n; b++)
                for (int32_t i = 0; i < ctx[b]->distinct; i++)
                    p[ctx[b]->items[i].token] += (double)ctx[b]->items[i].count * coef[b];
            for (Py_ssize_t j = 0; j < V; j++) p[j] = floor(p[j] * 16777216.0) + 1.0;
            continue;
        }
        Py_ssize_t listed = 0;
        for (int a = 0; a < n; a++) listed += ctx[a]->distinct;
        if (4 * listed > V) {
            /* Many tokens seen (small vocabularies: the image codec's 256): every token through the
             * same sequence, x = x * keep[b] + count * per_count[b] for each context. An unseen
             * token adds count * per_count = +0.0 to x >= 0, which leaves x as the sparse path's
             * x * keep[b]: the same values bit for bit (no FMA: -ffp-contract=off). */
            for (int a = 0; a < n; a++) {
                int32_t *counts = work + (Py_ssize_t)a * V;
                for (int32_t i = 0; i < ctx[a]->distinct; i++) counts[ctx[a]->items[i].token] = ctx[a]->items[i].count;
            }
            for (Py_ssize_t j = 0; j < V; j++) p[j] = row[j] / total; /* pass by pass: each vectorizes */
            for (int b = 0; b < n; b++) {
                const int32_t *counts = work + (Py_ssize_t)b * V;
                const double k = keep[b], c = per_count[b];
                for (Py_ssize_t j = 0; j < V; j++) p[j] = p[j] * k + (double)counts[j] * c;
            }
            for (Py_ssize_t j = 0; j < V; j++) p[j] = floor(p[j] * 16777216.0) + 1.0;
            for (int a = 0; a < n; a++) {
                int32_t *counts = work + (Py_ssize_t)a * V;
                for (int32_t i = 0; i < ctx[a]->distinct; i++) counts[ctx[a]->items[i].token] = 0;
            }
            continue;
        }
        switch (n) {
        case 0:
            for (Py_ssize_t j = 0; j < V; j++) p[j] = floor((row[j] / total) * 16777216.0) + 1.0;
            break;
        case 1:
            for (Py_ssize_t j = 0; j < V; j++) p[j] = floor(((row[j] / total) * keep[0]) * 16777216.0) + 1.0;
            break;
        case 2:
            for (Py_ssize_t j = 0; j < V; j++)
                p[j] = floor((((row[j] / total) * keep[0]) * keep[1]) * 16777216.0) + 1.0;
            break;
        default:
            for (Py_ssize_t j = 0; j < V; j++) {
                double x = row[j] / total;
                for (int a = 0; a < n; a++) x *= keep[a];
                p[j] = floor(x * 16777216.0) + 1.0;
            }
        }
        if (!n) continue;
        int32_t *seen_mark = work + (Py_ssize_t)self->orders * V;
        for (int a = 0; a < n; a++) {
            int32_t *counts = work + (Py_ssize_t)a * V;
            for (int32_t i = 0; i < ctx[a]->distinct; i++) counts[ctx[a]->items[i].token] = ctx[a]->items[i].count;
        }
        if (++stamp == INT32_MAX) {
            for (Py_ssize_t j = 0; j < V; j++) seen_mark[j] = 0;
            stamp = 1;
        }
        for (int a = 0; a < n; a++) {
            for (int32_t i = 0; i < ctx[a]->distinct; i++) {
                const int32_t t = ctx[a]->items[i].token;
                if (seen_mark[t] == stamp) continue;
                seen_mark[t] = stamp;
                double x = row[t] / total;
                for (int b = 0; b < n; b++) {
                    x *= keep[b];
                    const int32_t count = work[(Py_ssize_t)b * V + t];
                    if (count) x += (double)count * per_count[b];
                }
                p[t] = floor(x * 16777216.0) + 1.0;
            }
        }
        for (int a = 0; a < n; a++) {
            int32_t *counts = work + (Py_ssize_t)a * V;
            for (int32_t i = 0; i < ctx[a]->distinct; i++) counts[ctx[a]->items[i].token] = 0;
        }
    }
    if (stamp) /* the marks back to zero */
        for (Py_ssize_t j = 0; j < V; j++) work[(Py_ssize_t)self->orders * V + j] = 0;
}

/* A learned mixer's step (mixing.ContextMixer._learn): from the rows S streams' frequencies were
 * computed from (row s at rows + s * stride), the gradient of each coded token's log probability
 * for the classes used, summed over the streams and added once. Before mixer_add. Needs no GIL. */
static void mixer_learn(MixerObject *self, const double *rows, Py_ssize_t stride, const int64_t *hb,
                        const int64_t *tb, Py_ssize_t S) {
    if (!self->learned) return;
    const Py_ssize_t V = self->vocab;
    int64_t delta[MAX_ORDERS][N_BUCKETS * D_BUCKETS][2];
    memset(delta, 0, sizeof(delta));
    int64_t keys[MAX_ORDERS];
    for (Py_ssize_t s = 0; s < S; s++) {
        const double *row = rows + s * stride;
        const int32_t token = (int32_t)tb[s];
        double part[4] = {0.0, 0.0, 0.0, 0.0}; /* exact in any order: integers, sum < 2^53 */
        Py_ssize_t j4 = 0;
        for (; j4 + 4 <= V; j4 += 4)
            for (int u = 0; u < 4; u++) part[u] += row[j4 + u];
        for (; j4 < V; j4++) part[0] += row[j4];
        double p = row[token] / ((part[0] + part[1]) + (part[2] + part[3]));
        context_keys(self, hb + s * self->orders, keys);
        double weight[MAX_ORDERS], before[MAX_ORDERS], share[MAX_ORDERS];
        int32_t stretched[MAX_ORDERS];
        int cls[MAX_ORDERS], order[MAX_ORDERS], n = 0;
        for (int k = 0; k < self->orders; k++) {
            if (keys[k] < 0 || !self->tables[k].size) continue;
            const Context *c = table_find(&self->tables[k], keys[k]);
            if (!c || !c->distinct) continue;
            const TokenCount *item = context_item(c, token);
            const int32_t count = item ? item->count : 0;
            const double l = mixer_weight(self, k, c->seen, c->distinct, &stretched[n], &cls[n]);
            const double seen = (double)c->seen;
            weight[n] = l, before[n] = p, share[n] = (double)count / seen, order[n] = k;
            p = p * (1.0 - l);
            if (count) p = p + (double)count * (l / seen);
            n++;
        }
        double gradient = 1.0 / p;
        for (int b = n - 1; b >= 0; b--) {
            double err = gradient * (share[b] - before[b]) * (weight[b] * (1.0 - weight[b]));
            const double bound = self->err_limit;
            err = err < -bound ? -bound : err > bound ? bound : err;
            const int64_t e = (int64_t)(err * self->err_scale); /* toward zero, as Python's int() */
            int64_t *d = delta[order[b]][cls[b]];
            d[0] += (e * stretched[b] * self->rate_w0) >> self->rate_shift;
            d[1] += e * self->rate_w1;
            gradient = gradient * (1.0 - weight[b]);
        }
    }
    for (int k = 0; k < self->orders; k++)
        for (int c = 0; c < N_BUCKETS * D_BUCKETS; c++)
            for (int i = 0; i < 2; i++) {
                int64_t *w = &self->weights[k][c / D_BUCKETS][c % D_BUCKETS][i];
                const int64_t v = *w + delta[k][c][i];
                *w = v < -self->limit[i] ? -self->limit[i] : v > self->limit[i] ? self->limit[i] : v;
            }
}

/* Count each of S streams' token (int64 [S], checked < vocab) under its contexts, in stream order.
 * -1 when memory ran out. Needs no GIL (raw allocations). */
static int mixer_add(MixerObject *self, const int64_t *hb, const int64_t *tb, Py_ssize_t S) {
    int64_t keys[MAX_ORDERS];
    for (Py_ssize_t s = 0; s < S; s++) {
        context_keys(self, hb + s * self->orders, keys);
        for (int k = 0; k < self->orders; k++) {
            if (keys[k] < 0) break;
            Context *c = table_insert(&self->tables[k], keys[k]);
            if (!c || context_add(c, (int32_t)tb[s], self->vocab) < 0) return -1;
        }
    }
    return 0;
}

/* frequencies(model_rows f64 [S][V], history int64 [S][orders], out f64 [S][V], S): mixer_rows */
static PyObject *Mixer_frequencies(MixerObject *self, PyObject *args) {
    Py_buffer rows, history, out;
    Py_ssize_t S;
    if (!PyArg_ParseTuple(args, "y*y*w*n", &rows, &history, &out, &S)) return NULL;
    PyObject *result = NULL;
    const Py_ssize_t V = self->vocab;
    int32_t *work = NULL; /* per call, so that calls may run at once */
    if (S < 0 || !check_size(&rows, S * V, 8, "model_rows") ||
        !check_size(&history, S * self->orders, 8, "history") || !check_size(&out, S * V, 8, "out"))
        goto done;
    if (!(work = PyMem_Calloc((size_t)(self->orders + 1) * V, sizeof(int32_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    mixer_rows(self, rows.buf, history.buf, out.buf, S, work);
    Py_END_ALLOW_THREADS
    result = Py_None;
done:
    PyMem_Free(work);
    return RELEASE(result, &rows, &history, &out);
}

/* update(history int64 [S][orders], tokens int64 [S], S[, model_rows f64 [S][V]]): count each
 * stream's token, in order; a learned mixer first learns from the rows the step was computed from. */
static PyObject *Mixer_update(MixerObject *self, PyObject *args) {
    Py_buffer history, tokens, rows = {0};
    Py_ssize_t S;
    if (!PyArg_ParseTuple(args, "y*y*n|y*", &history, &tokens, &S, &rows)) return NULL;
    PyObject *result = NULL;
    if (S < 0 || !check_size(&history, S * self->orders, 8, "history") || !check_size(&tokens, S, 8, "tokens"))
        goto done;
    if (self->learned && (!rows.buf || !check_size(&rows, S * self->vocab, 8, "model_rows"))) {
        if (!rows.buf) PyErr_SetString(PyExc_ValueError, "Mixer.update: a learned mixer needs the model rows");
        goto done;
    }
    const int64_t *tb = tokens.buf;
    for (Py_ssize_t s = 0; s < S; s++)
        if (tb[s] < 0 || tb[s] >= self->vocab) {
            PyErr_SetString(PyExc_ValueError, "Mixer.update: token out of range");
            goto done;
        }
    int added;
    Py_BEGIN_ALLOW_THREADS /* the tables are this mixer's own: callers never share one across threads */
    mixer_learn(self, rows.buf, self->vocab, history.buf, tb, S);
    added = mixer_add(self, history.buf, tb, S);
    Py_END_ALLOW_THREADS
    if (added < 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_None;
done:
    return RELEASE(result, &history, &tokens, &rows); /* rows: released only if given */
}

static PyMethodDef Mixer_methods[] = {
    {"frequencies", (PyCFunction)Mixer_frequencies, METH_VARARGS, "Mixed integer frequency rows."},
    {"forget", (PyCFunction)Mixer_forget, METH_NOARGS, "Drop every count; learned weights stay."},
    {"update", (PyCFunction)Mixer_update, METH_VARARGS, "Count each stream's new token."},
    {NULL, NULL, 0, NULL},
};

static PyObject *Mixer_get_product(MixerObject *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->product);
}

static PyGetSetDef Mixer_getset[] = {
    {"product", (getter)Mixer_get_product, NULL, "Whether rows are computed in product form.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject MixerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nncodec.nn._kernels.Mixer",
    .tp_basicsize = sizeof(MixerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Order-k token counts mixed into model rows (nncodec/nn/mixing.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Mixer_init,
    .tp_dealloc = (destructor)Mixer_dealloc,
    .tp_methods = Mixer_methods,
    .tp_getset = Mixer_getset,
};

/* head_lut(acc f32 [R][C], row_scale [R], col_scale [C], table, steps, out f64 [R][C], R, C, L):
 * lut_rows of the linear layer's value acc * (row_scale * col_scale). */
MULTIVERSION
static void head_lut_rows(const float *ab, const double *rsb, const double *csb, const double *tab, double steps,
                          double *ob, Py_ssize_t R, Py_ssize_t C, Py_ssize_t L) {
    const double last = (double)(L - 1);
    for (Py_ssize_t r = 0; r < R; r++) {
        double *orow = ob + r * C;
        const float *arow = ab + r * C;
        double peak = -INFINITY;
        for (Py_ssize_t j = 0; j < C; j++) {
            const double value = (double)arow[j] * (rsb[r] * csb[j]);
            orow[j] = value;
            peak = value > peak ? value : peak;
        }
        for (Py_ssize_t j = 0; j < C; j++) {
            double index = (peak - orow[j]) * steps;
            index = index < last ? index : last;
            orow[j] = tab[(int32_t)index] + 1.0;
        }
    }
}

static PyObject *head_lut(PyObject *self, PyObject *args) {
    Py_buffer acc, rs, cs, table, out;
    double steps;
    Py_ssize_t R, C, L;
    if (!PyArg_ParseTuple(args, "y*y*y*y*dw*nnn", &acc, &rs, &cs, &table, &steps, &out, &R, &C, &L))
        return NULL;
    PyObject *result = NULL;
    if (R < 0 || C <= 0 || L <= 0 || L > (1 << 30) || !check_size(&acc, R * C, 4, "acc") ||
        !check_size(&rs, R, 8, "row_scale") ||
        !check_size(&cs, C, 8, "col_scale") || !check_size(&table, L, 8, "table") ||
        !check_size(&out, R * C, 8, "out"))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    head_lut_rows(acc.buf, rs.buf, cs.buf, table.buf, steps, out.buf, R, C, L);
    Py_END_ALLOW_THREADS
    result = Py_None;
done:
    return RELEASE(result, &acc, &rs, &cs, &table, &out);
}


/* ---------------------------------------------------------------------------------------------
 * decoder_step: one step of nncodec/text/model.py's Decoder in one call (the same kernels as the
 * per-operation entry points above, in the same order, so the tables are the same bits).
 *
 * decoder_step(tokens i64 [B], distance i32 [W], out f64 [B][V], model, caches, scalars, dims)
 *   model:  (embed i32 [V][C], alibi f64 [H][W], attn_exp f64 [La], out_exp f64 [Lo], head, then per
 *            layer qkv [3C][C], proj [C][C], up [F][C], down [C][F], v_scale f64 [H]), where each
 *            linear layer [N][K] is four arrays: w i8 [N][K], packed i8 (matmul_i8's VNNI layout, or
 *            empty), colsum i32 [N] (or empty), s f64 [N]
 *   caches: per layer (k i8 [B][H][W][D], ks f64 [B][H][W], v i8 [B][H][W][D]); slot ``slot`` is
 *           written with this step's keys and values before the attention reads the ring
 *   scalars: (eps_units, limit, res_unit, inv_sqrt_hd, attn_steps, out_steps)
 *   dims: B, C, H, F, V, W, n_layer, slot
 * Returns False (tables not written) if the residual stream leaves the exact range. */

#define STEP_LINEAR 4                                 /* arrays per linear layer */
#define STEP_MODEL_FIXED (4 + STEP_LINEAR)            /* embed, alibi, the two tables, head */
#define STEP_PER_LAYER (4 * STEP_LINEAR + 1)          /* qkv, proj, up, down, v_scale */
#define ANY_SIZE (-1)                                 /* buffers_get: any number of items */

typedef struct {
    Py_buffer *items;
    Py_ssize_t count;
} BufferList;

static void buffers_release(BufferList *list) {
    for (Py_ssize_t i = 0; i < list->count; i++) PyBuffer_Release(&list->items[i]);
    PyMem_Free(list->items);
    list->items = NULL;
    list->count = 0;
}

/* fill ``list`` with buffers of the tuple's items, each checked to hold ``sizes[i]`` items (or any
 * whole number of items where ANY_SIZE) of ``itemsizes[i]`` bytes (writable where ``writable[i]``) */
static int buffers_get(PyObject *tuple, BufferList *list, const Py_ssize_t *sizes, const Py_ssize_t *itemsizes,
                       const char *writable, Py_ssize_t count, const char *what) {
    list->items = NULL;
    list->count = 0;
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != count) {
        PyErr_Format(PyExc_ValueError, "decoder_step: %s must be a tuple of %zd arrays", what, count);
        return 0;
    }
    list->items = PyMem_Calloc(count ? count : 1, sizeof(Py_buffer));
    if (!list->items) {
        PyErr_NoMemory();
        return 0;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        const int flags = writable[i] ? PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS : PyBUF_C_CONTIGUOUS;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(tuple, i), &list->items[i], flags) < 0) return 0;
        list->count = i + 1;
        const Py_ssize_t items = sizes[i] == ANY_SIZE ? list->items[i].len / itemsizes[i] : sizes[i];
        if (!check_size(&list->items[i], items, itemsizes[i], what)) return 0;
    }
    return 1;
}

/* A linear layer's arrays in a BufferList (w, packed, colsum, s: see decoder_step) */
typedef struct {
    const int8_t *w, *packed;
    const int32_t *colsum;
    const double *scale;
} StepLinear;

/* the linear layer at ``items`` (N outputs, K inputs): sizes checked, packed NULL when empty */
static int step_linear(Py_buffer *items, Py_ssize_t N, Py_ssize_t K, StepLinear *linear) {
    if (!check_size(&items[0], N * K, 1, "linear weights") || !check_size(&items[3], N, 8, "linear scales"))
        return 0;
    const int vnni = vnni_given(&items[1], &items[2], K, N);
    if (vnni < 0) return 0;
    linear->w = items[0].buf;
    linear->packed = vnni ? items[1].buf : NULL;
    linear->colsum = vnni ? items[2].buf : NULL;
    linear->scale = items[3].buf;
    return 1;
}

/* Byte offsets of the step's scratch arrays in one block (each 64-byte aligned), and its size */
typedef struct {
    size_t residual, qi, acc, attended, work, rscale, rscale2, q_s, k_s, q_q, k_q, v_q, scores, weights, mixed,
        total;
} StepScratch;

static StepScratch step_scratch(Py_ssize_t B, Py_ssize_t C, Py_ssize_t H, Py_ssize_t F, Py_ssize_t V,
                                Py_ssize_t W) {
    const Py_ssize_t D = C / H, wide = C > F ? C : F, workw = 3 * C > F ? 3 * C : F;
    const Py_ssize_t accw = workw > V ? workw : V;
    StepScratch o;
    size_t at = 0;
#define PLACE(field, type, n) (o.field = at, at += (sizeof(type) * (size_t)(n) + 63) & ~(size_t)63)
    PLACE(residual, int64_t, B * C); /* the residual stream */
    PLACE(qi, int8_t, B * wide);     /* a matmul's quantized input */
    PLACE(acc, float, B * accw);     /* a matmul's output */
    PLACE(attended, double, B * C);
    PLACE(work, double, workw);      /* one row's values */
    PLACE(rscale, double, B);
    PLACE(rscale2, double, B);
    PLACE(q_s, double, B * H);
    PLACE(k_s, double, B * H);
    PLACE(q_q, int8_t, B * C);       /* this step's queries, keys and values */
    PLACE(k_q, int8_t, B * C);
    PLACE(v_q, int8_t, B * C);
    PLACE(scores, double, W);        /* one query's attention */
    PLACE(weights, int32_t, W);
    PLACE(mixed, int32_t, D);
#undef PLACE
    o.total = at;
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * Helper: a second thread that shares a step's work (TextDecoder with two threads). A job is a
 * number of independent tasks; the posting thread and the helper claim tasks from one atomic word
 * (generation << 40 | tasks << 20 | next task), so a task runs exactly once whichever thread takes it
 * and the poster never depends on the helper (it takes every task the helper does not). Each task
 * writes its own outputs with the same loops as the one-thread step: the results do not depend on
 * which thread ran what. An idle helper spins briefly, then sleeps until the next job. */

#include <pthread.h>
#include <sched.h>

typedef void (*TaskFn)(void *ctx, Py_ssize_t task, int who);

#define HELPER_SPINS 20000 /* idle polls before the helper sleeps */

typedef struct {
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    uint64_t word;     /* atomic: generation << 40 | tasks << 20 | next */
    int64_t finished;  /* atomic: tasks of the current job done */
    int sleeping, quit; /* atomic */
    TaskFn fn;
    void *ctx;
    /* the helper's own scratch: one row's values, one query's attention */
    double *work, *scores;
    int32_t *weights, *mixed;
} Helper;

/* claim and run tasks of the job in ``word`` until none is left */
static void helper_work(Helper *h, int who) {
    for (;;) {
        const uint64_t w = __atomic_load_n(&h->word, __ATOMIC_ACQUIRE);
        if ((w & 0xFFFFF) >= ((w >> 20) & 0xFFFFF)) return;
        const uint64_t c = __atomic_fetch_add(&h->word, 1, __ATOMIC_ACQ_REL);
        const uint64_t task = c & 0xFFFFF, tasks = (c >> 20) & 0xFFFFF;
        if (task >= tasks) return;
        h->fn(h->ctx, (Py_ssize_t)task, who);
        __atomic_fetch_add(&h->finished, 1, __ATOMIC_ACQ_REL);
    }
}

static void *helper_main(void *arg) {
    Helper *h = arg;
    int idle = 0;
    while (!__atomic_load_n(&h->quit, __ATOMIC_ACQUIRE)) {
        const uint64_t w = __atomic_load_n(&h->word, __ATOMIC_ACQUIRE);
        if ((w & 0xFFFFF) < ((w >> 20) & 0xFFFFF)) {
            helper_work(h, 1);
            idle = 0;
            continue;
        }
        if (++idle < HELPER_SPINS) {
            __builtin_ia32_pause();
            continue;
        }
        pthread_mutex_lock(&h->lock);
        __atomic_store_n(&h->sleeping, 1, __ATOMIC_SEQ_CST);
        const uint64_t again = __atomic_load_n(&h->word, __ATOMIC_SEQ_CST);
        if ((again & 0xFFFFF) >= ((again >> 20) & 0xFFFFF) && !__atomic_load_n(&h->quit, __ATOMIC_SEQ_CST))
            pthread_cond_wait(&h->wake, &h->lock);
        __atomic_store_n(&h->sleeping, 0, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&h->lock);
        idle = 0;
    }
    return NULL;
}

/* start the helper (scratch for rows of ``width`` values and attention over W keys of D values); 0 with
 * an exception on failure */
static int helper_start(Helper *h, Py_ssize_t width, Py_ssize_t W, Py_ssize_t D) {
    memset(h, 0, sizeof(*h));
    h->work = PyMem_RawMalloc(sizeof(double) * width);
    h->scores = PyMem_RawMalloc(sizeof(double) * W);
    h->weights = PyMem_RawMalloc(sizeof(int32_t) * W);
    h->mixed = PyMem_RawMalloc(sizeof(int32_t) * D);
    if (!h->work || !h->scores || !h->weights || !h->mixed) {
        PyErr_NoMemory();
        return 0;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    if (pthread_create(&h->thread, NULL, helper_main, h) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "could not start a decoder thread");
        return 0;
    }
    h->started = 1;
    return 1;
}

static void helper_stop(Helper *h) {
    if (h->started) {
        __atomic_store_n(&h->quit, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_lock(&h->lock);
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
        pthread_mutex_destroy(&h->lock);
        pthread_cond_destroy(&h->wake);
        h->started = 0;
    }
    PyMem_RawFree(h->work);
    PyMem_RawFree(h->scores);
    PyMem_RawFree(h->weights);
    PyMem_RawFree(h->mixed);
    h->work = NULL, h->scores = NULL, h->weights = NULL, h->mixed = NULL;
}

/* run fn(ctx, task, who) for task 0 .. tasks - 1 on this thread (who 0) and the helper (who 1) */
static void helper_run(Helper *h, TaskFn fn, void *ctx, Py_ssize_t tasks) {
    h->fn = fn;
    h->ctx = ctx;
    __atomic_store_n(&h->finished, 0, __ATOMIC_RELAXED);
    const uint64_t generation = (__atomic_load_n(&h->word, __ATOMIC_RELAXED) >> 40) + 1;
    __atomic_store_n(&h->word, generation << 40 | (uint64_t)tasks << 20, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&h->sleeping, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&h->lock);
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
    }
    helper_work(h, 0);
    /* the helper holds the last tasks: wait (yielding the core after a while, in case the helper
     * thread is not running, e.g. more threads than cores) */
    for (int spins = 0; __atomic_load_n(&h->finished, __ATOMIC_ACQUIRE) < tasks; spins++) {
        if (spins < HELPER_SPINS) __builtin_ia32_pause();
        else sched_yield();
    }
}


typedef struct {
    const int8_t *qi;
    const StepLinear *lin;
    float *acc;
    Py_ssize_t B, K, N, cols;
} MatmulJob;

static void matmul_task(void *ctx, Py_ssize_t task, int who) {
    const MatmulJob *j = ctx;
    const Py_ssize_t n0 = task * j->cols, n1 = n0 + j->cols < j->N ? n0 + j->cols : j->N;
    matmul_i8_cols(j->qi, j->lin->w, j->lin->packed, j->lin->colsum, j->acc, j->B, j->K, j->N, n0, n1);
}

/* a linear layer's product for B rows: on this thread, or in column tiles shared with the helper */
static void step_matmul(Helper *h, const int8_t *qi, const StepLinear *lin, float *acc, Py_ssize_t B, Py_ssize_t K,
                        Py_ssize_t N) {
    const Py_ssize_t cols = N % 128 == 0 ? 128 : N % 64 == 0 ? 64 : N;
    if (!h || cols == N) {
        matmul_i8_rows(qi, lin->w, lin->packed, lin->colsum, acc, B, K, N);
        return;
    }
    MatmulJob job = {qi, lin, acc, B, K, N, cols};
    helper_run(h, matmul_task, &job, N / cols);
}

/* The model's arrays and constants, read from decoder_step's ``model`` tuple and scalars */
typedef struct {
    Py_ssize_t C, H, D, F, V, W, NL, La, Lo;
    double eps, res_unit, inv_sqrt_hd, attn_steps, out_steps;
    int64_t limit;
    const int32_t *embed;
    const double *alibi, *attn_tab, *out_tab;
    StepLinear *linears;     /* head, then qkv, proj, up, down per layer */
    const double **v_scales; /* per layer */
} StepModel;

static void step_model_free(StepModel *m, BufferList *buffers) {
    buffers_release(buffers);
    PyMem_Free(m->linears);
    PyMem_Free((void *)m->v_scales);
    m->linears = NULL;
    m->v_scales = NULL;
}

/* Fill ``m`` from the model tuple (buffers held in ``buffers`` until step_model_free); dims C, H, F, V,
 * W, NL and the scalars must be set. 0 with an exception on a malformed model. */
static int step_model_get(PyObject *model_tuple, StepModel *m, BufferList *buffers) {
    const Py_ssize_t C = m->C, H = m->H, F = m->F, V = m->V, W = m->W, NL = m->NL;
    buffers->items = NULL;
    buffers->count = 0;
    m->linears = NULL;
    m->v_scales = NULL;
    if (C <= 0 || H <= 0 || C % H || F <= 0 || V <= 0 || W <= 0 || W > 512 || NL < 0 || NL > 1024 || C > 1040 ||
        F > 1040) {
        PyErr_SetString(PyExc_ValueError, "decoder_step: bad dimensions");
        return 0;
    }
    m->D = C / H;
    const Py_ssize_t n_model = STEP_MODEL_FIXED + STEP_PER_LAYER * NL;
    Py_ssize_t *sizes = PyMem_Malloc(sizeof(Py_ssize_t) * n_model);
    Py_ssize_t *itemsizes = PyMem_Malloc(sizeof(Py_ssize_t) * n_model);
    char *writable = PyMem_Calloc(n_model, 1);
    m->linears = PyMem_Calloc(1 + 4 * NL, sizeof(StepLinear));
    m->v_scales = PyMem_Calloc(NL ? NL : 1, sizeof(double *));
    int ok = 0;
    if (!sizes || !itemsizes || !writable || !m->linears || !m->v_scales) {
        PyErr_NoMemory();
        goto done;
    }
    /* linear layers are checked by step_linear below: ANY_SIZE here, item sizes i8, i8, i32, f64 */
    for (Py_ssize_t i = 0; i < n_model; i++) sizes[i] = ANY_SIZE, itemsizes[i] = 8;
    sizes[0] = V * C, itemsizes[0] = 4, sizes[1] = H * W; /* embed (i32), alibi; the tables: any length */
#define LINEAR_ITEMS(at) (itemsizes[(at)] = 1, itemsizes[(at) + 1] = 1, itemsizes[(at) + 2] = 4)
    LINEAR_ITEMS(4); /* head */
    for (Py_ssize_t l = 0; l < NL; l++) {
        const Py_ssize_t first = STEP_MODEL_FIXED + l * STEP_PER_LAYER;
        for (int j = 0; j < 4; j++) LINEAR_ITEMS(first + j * STEP_LINEAR);
        sizes[first + 4 * STEP_LINEAR] = H; /* v_scale */
    }
#undef LINEAR_ITEMS
    if (!buffers_get(model_tuple, buffers, sizes, itemsizes, writable, n_model, "model")) goto done;
    if (!step_linear(buffers->items + 4, V, C, &m->linears[0])) goto done;
    for (Py_ssize_t l = 0; l < NL; l++) {
        Py_buffer *b = buffers->items + STEP_MODEL_FIXED + l * STEP_PER_LAYER;
        StepLinear *lin = m->linears + 1 + 4 * l;
        if (!step_linear(b, 3 * C, C, &lin[0]) || !step_linear(b + STEP_LINEAR, C, C, &lin[1]) ||
            !step_linear(b + 2 * STEP_LINEAR, F, C, &lin[2]) || !step_linear(b + 3 * STEP_LINEAR, C, F, &lin[3]))
            goto done;
        m->v_scales[l] = b[4 * STEP_LINEAR].buf;
    }
    m->La = buffers->items[2].len / 8, m->Lo = buffers->items[3].len / 8;
    if (m->La <= 0 || m->Lo <= 0 || m->La > (1 << 30) || m->Lo > (1 << 30)) {
        PyErr_SetString(PyExc_ValueError, "decoder_step: lookup tables malformed");
        goto done;
    }
    m->embed = buffers->items[0].buf;
    m->alibi = buffers->items[1].buf;
    m->attn_tab = buffers->items[2].buf, m->out_tab = buffers->items[3].buf;
    if (m->attn_tab[m->La - 1] != 0.0 || m->out_tab[m->Lo - 1] != 0.0) {
        PyErr_SetString(PyExc_ValueError, "decoder_step: tables must end in 0");
        goto done;
    }
    ok = 1;
done:
    PyMem_Free(sizes);
    PyMem_Free(itemsizes);
    PyMem_Free(writable);
    if (!ok) step_model_free(m, buffers);
    return ok;
}

/* A step's row-wise work between its matrix products, one phase at a time: each row's part of a phase
 * depends only on that row, so rows may run on either thread with the same results. */
enum { PHASE_NORM, PHASE_ATTEND, PHASE_PROJ, PHASE_RELU, PHASE_DOWN, PHASE_HEAD };

typedef struct {
    const StepModel *m;
    int phase;
    Py_ssize_t l, slot;
    int64_t *residual;
    float *acc;
    int8_t *qi, *q_q, *k_q, *v_q;
    double *attended, *rscale, *rscale2, *q_s, *k_s, *out;
    double *work, *scores; /* this thread's scratch (the helper has its own) */
    int32_t *weights, *mixed;
    Helper *h;
    int8_t *const *kcs, *const *vcs;
    double *const *kscs;
    const int32_t *distance;
    int overflow; /* set (to 1) by any row whose residual stream left the exact range */
} StepJob;

static void step_row(void *ctx, Py_ssize_t b, int who) {
    StepJob *j = ctx;
    const StepModel *m = j->m;
    const Py_ssize_t C = m->C, H = m->H, D = m->D, F = m->F, V = m->V, W = m->W, l = j->l;
    double *work = who ? j->h->work : j->work, *scores = who ? j->h->scores : j->scores;
    int32_t *weights = who ? j->h->weights : j->weights, *mixed = who ? j->h->mixed : j->mixed;
    const StepLinear *lin = m->linears + 1 + 4 * l;
    int64_t *residual = j->residual + b * C;
    switch (j->phase) {
    case PHASE_NORM: /* the layer's input (the residual stream was just set from the embedding) */
        if (norm_quantize_rows(residual, m->eps, m->limit, j->qi + b * C, j->rscale + b, work, 1, C)) j->overflow = 1;
        break;
    case PHASE_ATTEND: { /* queries, keys and values; the keys and values into the ring; attention */
        const double *v_scale = m->v_scales[l];
        const Py_ssize_t g = b * H;
        qkv_split_rows(j->acc + b * 3 * C, j->rscale + b, lin[0].scale, m->inv_sqrt_hd, v_scale, j->q_q + b * C,
                       j->q_s + g, j->k_q + b * C, j->k_s + g, j->v_q + b * C, work, 1, H, D);
        int8_t *kc = j->kcs[l], *vc = j->vcs[l];
        double *ksc = j->kscs[l];
        for (Py_ssize_t e = g; e < g + H; e++) {
            memcpy(kc + (e * W + j->slot) * D, j->k_q + e * D, D);
            memcpy(vc + (e * W + j->slot) * D, j->v_q + e * D, D);
            ksc[e * W + j->slot] = j->k_s[e];
        }
        attend_groups(j->q_q + g * D, j->q_s + g, kc + g * W * D, ksc + g * W, vc + g * W * D, j->distance, m->alibi,
                      m->attn_tab, m->attn_steps, v_scale, j->attended + b * C, scores, weights, mixed, H, H, 1, W,
                      D, W, m->La);
        quantize_rows(j->attended + b * C, j->qi + b * C, j->rscale2 + b, 1, C);
        break;
    }
    case PHASE_PROJ: /* the projection added, then the MLP's input */
        residual_add_rows(residual, j->acc + b * C, j->rscale2 + b, lin[1].scale, m->res_unit, 1, C);
        if (norm_quantize_rows(residual, m->eps, m->limit, j->qi + b * C, j->rscale + b, work, 1, C)) j->overflow = 1;
        break;
    case PHASE_RELU:
        relu_quantize_rows(j->acc + b * F, j->rscale + b, lin[2].scale, j->qi + b * F, j->rscale2 + b, work, 1, F);
        break;
    case PHASE_DOWN: /* the MLP's output added, then the next layer's (or the head's) input */
        residual_add_rows(residual, j->acc + b * C, j->rscale2 + b, lin[3].scale, m->res_unit, 1, C);
        if (norm_quantize_rows(residual, m->eps, m->limit, j->qi + b * C, j->rscale + b, work, 1, C)) j->overflow = 1;
        break;
    case PHASE_HEAD:
        head_lut_rows(j->acc + b * V, j->rscale + b, m->linears[0].scale, m->out_tab, m->out_steps, j->out + b * V, 1,
                      V, m->Lo);
        break;
    }
}

/* run one phase for rows 0 .. B - 1; 1 if a row overflowed */
static int step_phase(StepJob *j, int phase, Py_ssize_t B) {
    j->phase = phase;
    if (j->h && B > 1) {
        helper_run(j->h, step_row, j, B);
    } else {
        for (Py_ssize_t b = 0; b < B; b++) step_row(j, b, 0);
    }
    return j->overflow;
}

/* One step for B streams (tokens checked by the caller): caches per layer k[l], ks[l], v[l] hold
 * [at least B][H][W][D]; out f64 [B][V]; work a step_scratch(B, ...) block; helper NULL or a started
 * helper (it takes column tiles of the products and rows of the rest). Runs without the GIL.
 * Returns 1 when the residual stream left the exact range (out not written), else 0. */
static int step_run(const StepModel *m, const int64_t *tok, Py_ssize_t B, const int32_t *distance, Py_ssize_t slot,
                    int8_t *const *kcs, double *const *kscs, int8_t *const *vcs, double *out, char *work_block,
                    Helper *helper) {
    const Py_ssize_t C = m->C, H = m->H, F = m->F, V = m->V, W = m->W;
    const StepScratch at = step_scratch(B, C, H, F, V, W);
    StepJob j = {
        .m = m, .slot = slot, .residual = (int64_t *)(work_block + at.residual), .acc = (float *)(work_block + at.acc),
        .qi = (int8_t *)(work_block + at.qi), .q_q = (int8_t *)(work_block + at.q_q),
        .k_q = (int8_t *)(work_block + at.k_q), .v_q = (int8_t *)(work_block + at.v_q),
        .attended = (double *)(work_block + at.attended), .rscale = (double *)(work_block + at.rscale),
        .rscale2 = (double *)(work_block + at.rscale2), .q_s = (double *)(work_block + at.q_s),
        .k_s = (double *)(work_block + at.k_s), .out = out, .work = (double *)(work_block + at.work),
        .scores = (double *)(work_block + at.scores), .weights = (int32_t *)(work_block + at.weights),
        .mixed = (int32_t *)(work_block + at.mixed), .h = helper, .kcs = kcs, .vcs = vcs, .kscs = kscs,
        .distance = distance, .overflow = 0,
    };
    for (Py_ssize_t b = 0; b < B; b++)
        for (Py_ssize_t c = 0; c < C; c++) j.residual[b * C + c] = (int64_t)m->embed[tok[b] * C + c];
#define MATMUL(linear, K, N) step_matmul(helper, j.qi, &(linear), j.acc, B, K, N)
    if (step_phase(&j, PHASE_NORM, B)) return 1;
    for (Py_ssize_t l = 0; l < m->NL; l++) {
        const StepLinear *lin = m->linears + 1 + 4 * l;
        j.l = l;
        MATMUL(lin[0], C, 3 * C);
        step_phase(&j, PHASE_ATTEND, B);
        MATMUL(lin[1], C, C);
        if (step_phase(&j, PHASE_PROJ, B)) return 1;
        MATMUL(lin[2], C, F);
        step_phase(&j, PHASE_RELU, B);
        MATMUL(lin[3], F, C);
        if (step_phase(&j, PHASE_DOWN, B)) return 1;
    }
    MATMUL(m->linears[0], C, V);
    step_phase(&j, PHASE_HEAD, B);
#undef MATMUL
    return 0;
}

static PyObject *decoder_step(PyObject *self, PyObject *args) {
    Py_buffer tokens, distance, out;
    PyObject *model_tuple, *cache_tuple;
    long long limit;
    Py_ssize_t B, slot;
    StepModel m = {0};
    if (!PyArg_ParseTuple(args, "y*y*w*O!O!(dLdddd)(nnnnnnnn)", &tokens, &distance, &out, &PyTuple_Type,
                          &model_tuple, &PyTuple_Type, &cache_tuple, &m.eps, &limit, &m.res_unit, &m.inv_sqrt_hd,
                          &m.attn_steps, &m.out_steps, &B, &m.C, &m.H, &m.F, &m.V, &m.W, &m.NL, &slot))
        return NULL;
    m.limit = (int64_t)limit;
    PyObject *result = NULL;
    BufferList model = {NULL, 0}, caches = {NULL, 0};
    Py_ssize_t *sizes = NULL, *itemsizes = NULL;
    char *writable = NULL, *work_block = NULL;
    int8_t **kcs = NULL, **vcs = NULL;
    double **kscs = NULL;
    if (!step_model_get(model_tuple, &m, &model)) goto done;
    const Py_ssize_t H = m.H, W = m.W, D = m.D, NL = m.NL;
    if (B <= 0 || slot < 0 || slot >= W) {
        PyErr_SetString(PyExc_ValueError, "decoder_step: bad dimensions");
        goto done;
    }
    if (!check_size(&tokens, B, 8, "tokens") || !check_size(&distance, W, 4, "distance") ||
        !check_size(&out, B * m.V, 8, "out"))
        goto done;
    const Py_ssize_t n_cache = 3 * NL;
    sizes = PyMem_Malloc(sizeof(Py_ssize_t) * (n_cache + 1));
    itemsizes = PyMem_Malloc(sizeof(Py_ssize_t) * (n_cache + 1));
    writable = PyMem_Calloc(n_cache + 1, 1);
    kcs = PyMem_Calloc(NL + 1, sizeof(int8_t *));
    vcs = PyMem_Calloc(NL + 1, sizeof(int8_t *));
    kscs = PyMem_Calloc(NL + 1, sizeof(double *));
    if (!sizes || !itemsizes || !writable || !kcs || !vcs || !kscs) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t l = 0; l < NL; l++) {
        sizes[3 * l] = B * H * W * D, itemsizes[3 * l] = 1;
        sizes[3 * l + 1] = B * H * W, itemsizes[3 * l + 1] = 8;
        sizes[3 * l + 2] = B * H * W * D, itemsizes[3 * l + 2] = 1;
        writable[3 * l] = writable[3 * l + 1] = writable[3 * l + 2] = 1;
    }
    if (!buffers_get(cache_tuple, &caches, sizes, itemsizes, writable, n_cache, "caches")) goto done;
    for (Py_ssize_t l = 0; l < NL; l++) {
        kcs[l] = caches.items[3 * l].buf;
        kscs[l] = caches.items[3 * l + 1].buf;
        vcs[l] = caches.items[3 * l + 2].buf;
    }
    const int64_t *tok = tokens.buf;
    for (Py_ssize_t b = 0; b < B; b++)
        if (tok[b] < 0 || tok[b] >= m.V) {
            PyErr_SetString(PyExc_ValueError, "decoder_step: token out of range");
            goto done;
        }
    if (!(work_block = scratch(step_scratch(B, m.C, H, m.F, m.V, W).total))) goto done;
    int overflow;
    Py_BEGIN_ALLOW_THREADS
    overflow = step_run(&m, tok, B, distance.buf, slot, kcs, kscs, vcs, out.buf, work_block, NULL);
    Py_END_ALLOW_THREADS
    result = PyBool_FromLong(!overflow);
done:
    step_model_free(&m, &model);
    buffers_release(&caches);
    PyMem_Free(sizes);
    PyMem_Free(itemsizes);
    PyMem_Free(writable);
    PyMem_Free(kcs);
    PyMem_Free(vcs);
    PyMem_Free(kscs);
    PyMem_Free(work_block);
    return RELEASE(result, &tokens, &distance, &out);
}

/* ---------------------------------------------------------------------------------------------
 * TextDecoder: the text codec's decode loop (nncodec/codecs/text.py, TextCodec._decode_streams, for
 * one mix group stepped by one thread) without returning to Python per token. Each step t runs, as
 * there: the model for the active streams fed with their tokens t - 1 (step_run), the mixer's rows
 * (mixer_rows), the match model's adjustment (MatchModel.adjust), the range decoding of every stream
 * (constriction's RangeDecoder with its leaky categorical model, below), then the match model's and
 * the mixer's updates in stream order. The Python loop stays the reference: tests decode the same
 * streams both ways.
 *
 * Range decoding reproduces constriction 0.5's queue RangeDecoder<u32 words, u64 state> with
 * Categorical(perfect=False), precision 24: for a row of integer frequencies f (exact float64 sums),
 * scale = (2^24 - V) / sum(f), symbol s covers [floor(F_s * scale) + s, floor(F_{s+1} * scale) + s + 1)
 * with F_s = f_0 + ... + f_{s-1}, and the last symbol ends at 2^24. */

typedef struct {
    uint32_t *words;
    Py_ssize_t n, pos;
    uint64_t lower, range, point;
} RangeDec;

static void range_dec_start(RangeDec *d) {
    d->pos = 0;
    d->lower = 0;
    d->range = UINT64_MAX;
    uint64_t point = 0;
    int read = 0;
    while (read < 2 && d->pos < d->n) {
        point = point << 32 | d->words[d->pos++];
        read++;
    }
    d->point = read == 1 ? point << 32 : point;
}

/* Decode one symbol against an integer frequency row (every entry >= 1); -1 on invalid data. */
static int32_t range_dec_symbol(RangeDec *d, const double *row, Py_ssize_t V) {
    const uint64_t scale = d->range >> 24;
    const uint64_t quantile = (d->point - d->lower) / scale;
    if (quantile >= (1u << 24)) return -1;
    double norm = 0.0;
    for (Py_ssize_t j = 0; j < V; j++) norm += row[j]; /* exact: integers, sum < 2^53 */
    const double fscale = (double)((1u << 24) - (uint32_t)V) / norm;
    uint32_t left = 0, right = 1u << 24;
    double cum = 0.0;
    Py_ssize_t s = 0;
    for (; s < V - 1; s++) {
        cum += row[s];
        const uint32_t next = (uint32_t)(cum * fscale) + (uint32_t)s + 1;
        if (next > quantile) {
            right = next;
            break;
        }
        left = next;
    }
    d->lower += scale * left;
    d->range = scale * (uint64_t)(right - left);
    if (d->range < ((uint64_t)1 << 32)) {
        d->lower <<= 32;
        d->range <<= 32;
        d->point <<= 32;
        if (d->pos < d->n) d->point |= d->words[d->pos++];
    }
    return (int32_t)s;
}

/* The match model (nncodec/nn/matching.py) of one mix group: a hash table from the last match_min
 * tokens (as one int64 key) to stream << 32 | position, the current matches, and hit counts. Its
 * history is the decoder's token array (column orders + p holds position p, -1 until decoded). */
typedef struct {
    int64_t key, value; /* key -1: empty */
} MatchSlot;

typedef struct {
    int on;
    Py_ssize_t n_len, n_prob; /* LENGTH_BUCKETS has n_len + 1 lower bounds, PROB_EDGES n_prob - 1 edges */
    int64_t *len_bounds;
    double *prob_edges;
    double prior, p_min, p_max;
    Py_ssize_t match_min, max_verify;
    MatchSlot *slots;
    Py_ssize_t size, used;
    int64_t *source, *length; /* [S][2], [S] */
    int64_t *hits, *tries;    /* [n_len][n_prob] */
    int64_t hits_all, tries_all; /* sums of hits and tries before this step */
    int64_t *used_pred, *used_cell; /* this step's prediction per stream (-1: none) and its cell */
} Match;

static int match_table_put(Match *mt, int64_t key, int64_t value) {
    if ((mt->used + 1) * 2 > mt->size) {
        const Py_ssize_t size = mt->size ? mt->size * 2 : 4096;
        MatchSlot *slots = PyMem_RawMalloc(sizeof(MatchSlot) * size);
        if (!slots) return -1;
        for (Py_ssize_t i = 0; i < size; i++) slots[i].key = -1;
        for (Py_ssize_t i = 0; i < mt->size; i++) {
            if (mt->slots[i].key == -1) continue;
            Py_ssize_t j = (Py_ssize_t)(hash_key(mt->slots[i].key) & (uint64_t)(size - 1));
            while (slots[j].key != -1) j = (j + 1) & (size - 1);
            slots[j] = mt->slots[i];
        }
        PyMem_RawFree(mt->slots);
        mt->slots = slots;
        mt->size = size;
    }
    Py_ssize_t i = (Py_ssize_t)(hash_key(key) & (uint64_t)(mt->size - 1));
    while (mt->slots[i].key != -1 && mt->slots[i].key != key) i = (i + 1) & (mt->size - 1);
    if (mt->slots[i].key == -1) mt->used++;
    mt->slots[i].key = key;
    mt->slots[i].value = value;
    return 0;
}

static int64_t match_table_get(const Match *mt, int64_t key) {
    if (!mt->size) return -1;
    Py_ssize_t i = (Py_ssize_t)(hash_key(key) & (uint64_t)(mt->size - 1));
    while (mt->slots[i].key != -1) {
        if (mt->slots[i].key == key) return mt->slots[i].value;
        i = (i + 1) & (mt->size - 1);
    }
    return -1;
}

/* n zeroed items (at least one, so that NULL always means no memory) */
static void *zeroed(size_t n, size_t size) {
    return PyMem_Calloc(n ? n : 1, size);
}

/* self->field = n zeroed items of type, or (no memory) goto done: for the coders' init functions */
#define ALLOC(field, type, n)                                           \
    if (!(self->field = (type *)zeroed((size_t)(n), sizeof(type)))) { \
        PyErr_NoMemory();                                               \
        goto done;                                                      \
    }

/* For stream lengths (int64 [S], non-increasing, each at most 2^30): how many streams are active at
 * each step t = 0 .. len[0] (stream s while t < len[s]); NULL with an exception when they are not. */
static int64_t *active_counts(const int64_t *len, Py_ssize_t S, const char *who) {
    for (Py_ssize_t s = 0; s < S; s++)
        if (len[s] < 0 || len[s] > (1 << 30) || (s && len[s] > len[s - 1])) {
            PyErr_Format(PyExc_ValueError, "%s: lengths must be non-increasing", who);
            return NULL;
        }
    int64_t *active = zeroed((size_t)len[0] + 1, sizeof(int64_t));
    if (!active) {
        PyErr_NoMemory();
        return NULL;
    }
    for (int64_t t = 0; t <= len[0]; t++) {
        Py_ssize_t a = 0;
        while (a < S && len[a] > t) a++;
        active[t] = a;
    }
    return active;
}

/* A mix group's tokens as the coder has them: int32 [S][orders + longest], -1 where none (yet) */
typedef struct {
    int32_t *buf;
    Py_ssize_t orders, longest;
} Grid;

#define GRID_AT(g, s, p) ((g)->buf[(s) * ((g)->orders + (g)->longest) + (g)->orders + (p)])

/* MatchModel.adjust of stream s's row (in place); hits_all and tries_all set for this step */
static void match_adjust(Match *mt, const Grid *g, Py_ssize_t V, double *row, Py_ssize_t s) {
    mt->used_pred[s] = -1;
    if (mt->length[s] <= 0) return;
    const int64_t src = mt->source[2 * s], pos = mt->source[2 * s + 1];
    const int64_t predicted = pos < g->longest ? GRID_AT(g, src, pos) : -1;
    if (predicted < 0) return;
    double total = 0.0;
    for (Py_ssize_t j = 0; j < V; j++) total += row[j]; /* exact */
    const double own = row[predicted], x = own / total;
    Py_ssize_t lb = 0, pb = 0;
    while (lb + 1 <= mt->n_len && mt->len_bounds[lb + 1] <= mt->length[s]) lb++;
    if (lb >= mt->n_len) lb = mt->n_len - 1;
    while (pb < mt->n_prob - 1 && mt->prob_edges[pb] <= x) pb++;
    int64_t hits_len = 0, tries_len = 0;
    for (Py_ssize_t c = 0; c < mt->n_prob; c++)
        hits_len += mt->hits[lb * mt->n_prob + c], tries_len += mt->tries[lb * mt->n_prob + c];
    double q = ((double)mt->hits_all + mt->prior * x) / ((double)mt->tries_all + mt->prior);
    q = ((double)hits_len + mt->prior * q) / ((double)tries_len + mt->prior);
    const Py_ssize_t cell = lb * mt->n_prob + pb;
    double p = ((double)mt->hits[cell] + mt->prior * q) / ((double)mt->tries[cell] + mt->prior);
    p = p > mt->p_min ? p : mt->p_min;
    p = p < mt->p_max ? p : mt->p_max;
    row[predicted] = floor(p / (1.0 - p) * (total - own)) + 1.0;
    mt->used_pred[s] = predicted;
    mt->used_cell[s] = cell;
}

/* MatchModel.update after step t decoded the B active streams (their tokens are in the array) */
static int match_update(Match *mt, const Grid *g, int64_t V, Py_ssize_t B, Py_ssize_t t) {
    for (Py_ssize_t s = 0; s < B; s++) {
        if (mt->used_pred[s] < 0) continue;
        mt->tries[mt->used_cell[s]]++, mt->tries_all++;
        const int hit = GRID_AT(g, s, t) == mt->used_pred[s];
        mt->hits[mt->used_cell[s]] += hit, mt->hits_all += hit;
        mt->used_pred[s] = -1;
    }
    for (Py_ssize_t s = 0; s < B; s++) {
        if (!mt->length[s]) continue;
        const int64_t src = mt->source[2 * s], pos = mt->source[2 * s + 1];
        const int on = pos + 1 <= t && GRID_AT(g, src, pos) == GRID_AT(g, s, t);
        if (on) {
            mt->source[2 * s + 1]++;
            mt->length[s]++;
        } else {
            mt->length[s] = 0;
        }
    }
    if (t + 1 < mt->match_min) return 0;
    for (Py_ssize_t s = 0; s < B; s++) {
        int64_t key = 0;
        for (Py_ssize_t c = t + 1 - mt->match_min; c <= t; c++) key = key * V + GRID_AT(g, s, c);
        if (!mt->length[s]) {
            const int64_t found = match_table_get(mt, key);
            if (found >= 0) {
                const int64_t src = found >> 32, pos = found & 0xFFFFFFFF;
                mt->source[2 * s] = src;
                mt->source[2 * s + 1] = pos;
                int64_t length = 0;
                while (length < mt->max_verify && pos - 1 - length >= 0 && t - length >= 0 &&
                       GRID_AT(g, src, pos - 1 - length) == GRID_AT(g, s, t - length))
                    length++;
                mt->length[s] = length;
            }
        }
        if (match_table_put(mt, key, (int64_t)s << 32 | (t + 1)) < 0) return -1;
    }
    return 0;
}


/* Parse the match model's parameters (None: off) for S streams over a vocabulary of V */
static int match_init(Match *mt, PyObject *match_args, Py_ssize_t V, Py_ssize_t S) {
    mt->on = match_args != Py_None;
    if (!mt->on) return 1;
    PyObject *bounds, *edges;
    if (!PyArg_ParseTuple(match_args, "OOdddnn", &bounds, &edges, &mt->prior, &mt->p_min, &mt->p_max,
                          &mt->match_min, &mt->max_verify))
        return 0;
    Py_buffer b, e;
    if (PyObject_GetBuffer(bounds, &b, PyBUF_C_CONTIGUOUS) < 0) return 0;
    if (PyObject_GetBuffer(edges, &e, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&b);
        return 0;
    }
    mt->n_len = b.len / 8 - 1, mt->n_prob = e.len / 8 + 1;
    double largest = 1.0;
    for (Py_ssize_t i = 0; i < mt->match_min; i++) largest *= (double)V;
    int bad = mt->n_len < 1 || b.itemsize != 8 || e.itemsize != 8 || mt->match_min < 1 || largest >= 9.0e18;
    if (!bad && (mt->len_bounds = PyMem_Malloc(b.len)) && (mt->prob_edges = PyMem_Malloc(e.len ? e.len : 1))) {
        memcpy(mt->len_bounds, b.buf, b.len);
        memcpy(mt->prob_edges, e.buf, e.len);
    }
    PyBuffer_Release(&b);
    PyBuffer_Release(&e);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "bad match model parameters");
        return 0;
    }
    if (!mt->len_bounds || !mt->prob_edges || !(mt->source = zeroed(2 * S, sizeof(int64_t))) ||
        !(mt->length = zeroed(S, sizeof(int64_t))) || !(mt->hits = zeroed(mt->n_len * mt->n_prob, sizeof(int64_t))) ||
        !(mt->tries = zeroed(mt->n_len * mt->n_prob, sizeof(int64_t))) ||
        !(mt->used_pred = zeroed(S, sizeof(int64_t))) || !(mt->used_cell = zeroed(S, sizeof(int64_t)))) {
        PyErr_NoMemory();
        return 0;
    }
    for (Py_ssize_t i = 0; i < S; i++) mt->used_pred[i] = -1;
    return 1;
}

static void match_free(Match *mt) {
    void *blocks[] = {mt->len_bounds, mt->prob_edges, mt->source, mt->length, mt->hits, mt->tries, mt->used_pred,
                      mt->used_cell};
    for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) PyMem_Free(blocks[i]);
    PyMem_RawFree(mt->slots);
}

typedef struct {
    PyObject_HEAD
    StepModel model;
    BufferList model_buffers;
    Py_buffer tokens; /* int32 [S][orders + longest], -1 where no token */
    int have_tokens;
    MixerObject *mixer;
    Py_ssize_t S, orders, longest, t;
    int64_t *active_at; /* [longest + 1] */
    RangeDec *decoders;
    int8_t **kcs, **vcs;
    double **kscs;
    int64_t *slot_position, *tok, *history, *coded;
    int32_t *distance, *mix_work, *mix_work2, *symbols;
    double *model_rows, *mixed;
    char *work_block;
    Match match;
    Helper helper; /* started when decoding with two threads */
} TextDecoderObject;

#define TOKEN_AT(self, s, p) (((int32_t *)(self)->tokens.buf)[(s) * ((self)->orders + (self)->longest) + (self)->orders + (p)])
#define DECODER_GRID(self) {(int32_t *)(self)->tokens.buf, (self)->orders, (self)->longest}

static void TextDecoder_dealloc(TextDecoderObject *self) {
    helper_stop(&self->helper);
    step_model_free(&self->model, &self->model_buffers);
    if (self->have_tokens) PyBuffer_Release(&self->tokens);
    Py_XDECREF(self->mixer);
    if (self->decoders)
        for (Py_ssize_t s = 0; s < self->S; s++) PyMem_Free(self->decoders[s].words);
    PyMem_Free(self->decoders);
    for (Py_ssize_t l = 0; self->kcs && l < self->model.NL; l++) {
        PyMem_Free(self->kcs[l]);
        PyMem_Free(self->vcs[l]);
        PyMem_Free(self->kscs[l]);
    }
    PyMem_Free(self->kcs);
    PyMem_Free(self->vcs);
    PyMem_Free(self->kscs);
    void *blocks[] = {self->active_at, self->slot_position, self->tok, self->history, self->coded, self->distance,
                      self->mix_work, self->mix_work2, self->symbols, self->model_rows, self->mixed, self->work_block};
    for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) PyMem_Free(blocks[i]);
    match_free(&self->match);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* TextDecoder(model, scalars, (C, H, F, V, W, n_layer), streams, lengths, tokens, mixer, match)
 *   model, scalars: as decoder_step; streams: tuple of S bytes (range-coded, 4-byte words);
 *   lengths: int64 [S], non-increasing; tokens: int32 [S][orders + longest], -1 filled (written);
 *   mixer: a Mixer (its orders are ``orders``); match: None or (length bounds int64 [n + 1],
 *   probability edges f64 [m], prior, p_min, p_max, match_min, max_verify); threads: 2 shares each
 *   step's products and attention with a helper thread (the same values). */
static int TextDecoder_init(TextDecoderObject *self, PyObject *args, PyObject *kwds) {
    PyObject *model_tuple, *streams, *match_args;
    Py_buffer lengths;
    long long limit;
    StepModel *m = &self->model;
    int threads = 1;
    (void)kwds;
    if (self->decoders || self->have_tokens) {
        PyErr_SetString(PyExc_RuntimeError, "TextDecoder: initialized twice");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "O!(dLdddd)(nnnnnn)O!y*w*O!O|i", &PyTuple_Type, &model_tuple, &m->eps, &limit,
                          &m->res_unit, &m->inv_sqrt_hd, &m->attn_steps, &m->out_steps, &m->C, &m->H, &m->F, &m->V,
                          &m->W, &m->NL, &PyTuple_Type, &streams, &lengths, &self->tokens, &MixerType,
                          &self->mixer, &match_args, &threads))
        return -1;
    m->limit = (int64_t)limit;
    self->have_tokens = 1;
    Py_INCREF(self->mixer);
    int ok = 0;
    const Py_ssize_t S = PyTuple_GET_SIZE(streams);
    self->S = S;
    self->orders = self->mixer->orders;
    if (!step_model_get(model_tuple, m, &self->model_buffers)) goto done;
    const Py_ssize_t V = m->V, C = m->C, H = m->H, W = m->W, D = m->D, NL = m->NL, orders = self->orders;
    if (S < 1 || self->mixer->vocab != V || !check_size(&lengths, S, 8, "lengths")) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "TextDecoder: bad streams or mixer");
        goto done;
    }
    const int64_t *len = lengths.buf;
    if (!(self->active_at = active_counts(len, S, "TextDecoder"))) goto done;
    self->longest = len[0];
    if (!check_size(&self->tokens, S * (orders + self->longest), 4, "tokens")) goto done;
    ALLOC(decoders, RangeDec, S);
    for (Py_ssize_t s = 0; s < S; s++) {
        PyObject *item = PyTuple_GET_ITEM(streams, s);
        if (!PyBytes_Check(item) || PyBytes_GET_SIZE(item) % 4) {
            PyErr_SetString(PyExc_ValueError, "range-coded stream has a length that is not a multiple of 4");
            goto done;
        }
        const Py_ssize_t n = PyBytes_GET_SIZE(item) / 4;
        const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(item);
        ALLOC(decoders[s].words, uint32_t, n);
        for (Py_ssize_t i = 0; i < n; i++)
            self->decoders[s].words[i] = (uint32_t)bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8 |
                                         (uint32_t)bytes[4 * i + 2] << 16 | (uint32_t)bytes[4 * i + 3] << 24;
        self->decoders[s].n = n;
        range_dec_start(&self->decoders[s]);
    }
    ALLOC(kcs, int8_t *, NL + 1);
    ALLOC(vcs, int8_t *, NL + 1);
    ALLOC(kscs, double *, NL + 1);
    for (Py_ssize_t l = 0; l < NL; l++) {
        ALLOC(kcs[l], int8_t, S * H * W * D);
        ALLOC(vcs[l], int8_t, S * H * W * D);
        ALLOC(kscs[l], double, S * H * W);
        for (Py_ssize_t i = 0; i < S * H * W; i++) self->kscs[l][i] = 1.0;
    }
    ALLOC(slot_position, int64_t, W);
    for (Py_ssize_t i = 0; i < W; i++) self->slot_position[i] = -1;
    ALLOC(tok, int64_t, S);
    ALLOC(history, int64_t, S * orders);
    ALLOC(coded, int64_t, S);
    ALLOC(distance, int32_t, W);
    ALLOC(mix_work, int32_t, (orders + 1) * V);
    ALLOC(mix_work2, int32_t, (orders + 1) * V);
    ALLOC(symbols, int32_t, S);
    ALLOC(model_rows, double, S * V);
    ALLOC(mixed, double, S * V);
    ALLOC(work_block, char, step_scratch(S, C, H, m->F, V, W).total);
    if (!match_init(&self->match, match_args, V, S)) goto done;
    if (threads > 1 && !helper_start(&self->helper, 3 * C > m->F ? 3 * C : m->F, W, D)) goto done;
    ok = 1;
done:
    PyBuffer_Release(&lengths);
    return ok ? 0 : -1;
}

/* stream s's part of a step: the mixer's row, the match model's adjustment, the range decoder; only
 * reads the mixer and the match model, so streams may run on both threads (who: which one) */
static void decode_task(void *ctx, Py_ssize_t s, int who) {
    TextDecoderObject *self = ctx;
    const Py_ssize_t V = self->model.V;
    double *row = self->mixed + s * V;
    mixer_rows(self->mixer, self->model_rows + s * V, self->history + s * self->orders, row, 1,
               who ? self->mix_work2 : self->mix_work);
    const Grid g = DECODER_GRID(self);
    if (self->match.on) match_adjust(&self->match, &g, V, row, s);
    self->symbols[s] = range_dec_symbol(&self->decoders[s], row, V);
}

/* run(stop): decode steps self.t .. stop - 1 (step 0: every stream's first token, uniform). Returns
 * True, or False when the model's residual stream left the exact range; ValueError on invalid data. */
static PyObject *TextDecoder_run(TextDecoderObject *self, PyObject *args) {
    Py_ssize_t stop;
    if (!PyArg_ParseTuple(args, "n", &stop)) return NULL;
    if (!self->decoders) {
        PyErr_SetString(PyExc_ValueError, "TextDecoder: not initialized");
        return NULL;
    }
    if (stop > self->longest) stop = self->longest;
    const StepModel *m = &self->model;
    const Py_ssize_t V = m->V, W = m->W, orders = self->orders;
    const Grid grid = DECODER_GRID(self);
    int status = 0; /* 1: overflow, -1: invalid data, -2: no memory */
    Py_BEGIN_ALLOW_THREADS
    for (; self->t < stop && !status; self->t++) {
        const Py_ssize_t t = self->t, B = self->active_at[t];
        if (t == 0) {
            for (Py_ssize_t j = 0; j < V; j++) self->mixed[j] = 1.0;
            for (Py_ssize_t s = 0; s < B && !status; s++) {
                const int32_t symbol = range_dec_symbol(&self->decoders[s], self->mixed, V);
                if (symbol < 0) status = -1;
                else TOKEN_AT(self, s, 0) = symbol;
            }
            if (!status && self->match.on && match_update(&self->match, &grid, V, B, 0) < 0) status = -2;
            continue;
        }
        /* the model, fed with tokens t - 1 (its position t - 1) */
        const Py_ssize_t position = t - 1, slot = position % W;
        self->slot_position[slot] = position;
        for (Py_ssize_t i = 0; i < W; i++)
            self->distance[i] = self->slot_position[i] >= 0 ? (int32_t)(position - self->slot_position[i]) : -1;
        for (Py_ssize_t s = 0; s < B; s++) self->tok[s] = TOKEN_AT(self, s, t - 1);
        if (step_run(m, self->tok, B, self->distance, slot, self->kcs, self->kscs, self->vcs, self->model_rows,
                     self->work_block, self->helper.started ? &self->helper : NULL)) {
            status = 1;
            break;
        }
        /* mixing, the match model, the range decoders */
        for (Py_ssize_t s = 0; s < B; s++)
            for (Py_ssize_t j = 0; j < orders; j++) self->history[s * orders + j] = TOKEN_AT(self, s, t - orders + j);
        if (self->helper.started && B > 1) {
            helper_run(&self->helper, decode_task, self, B);
        } else {
            for (Py_ssize_t s = 0; s < B; s++) decode_task(self, s, 0);
        }
        for (Py_ssize_t s = 0; s < B && !status; s++) {
            if (self->symbols[s] < 0) status = -1;
            else TOKEN_AT(self, s, t) = self->symbols[s], self->coded[s] = self->symbols[s];
        }
        if (status) break;
        /* the updates, in stream order */
        if (self->match.on && match_update(&self->match, &grid, V, B, t) < 0) status = -2;
        else {
            mixer_learn(self->mixer, self->model_rows, V, self->history, self->coded, B);
            if (mixer_add(self->mixer, self->history, self->coded, B) < 0) status = -2;
        }
    }
    Py_END_ALLOW_THREADS
    if (status == -1) {
        PyErr_SetString(PyExc_ValueError, "range-coded data invalid");
        return NULL;
    }
    if (status == -2) return PyErr_NoMemory();
    return PyBool_FromLong(status != 1);
}

static PyMethodDef TextDecoder_methods[] = {
    {"run", (PyCFunction)TextDecoder_run, METH_VARARGS, "Decode the steps up to ``stop``."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TextDecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nncodec.nn._kernels.TextDecoder",
    .tp_basicsize = sizeof(TextDecoderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The text codec's decode loop for one mix group (see nncodec/nn/_kernels.c).",
    .tp_methods = TextDecoder_methods,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)TextDecoder_init,
    .tp_dealloc = (destructor)TextDecoder_dealloc,
};

/* ---------------------------------------------------------------------------------------------
 * TextEncoder: the text encoder's walk (nncodec/codecs/text.py, TextCodec._encode_group) for one mix
 * group, given the model's rows: per step t, for the active streams, the mixer's row (mixer_rows),
 * the match model's adjustment, the range encoding of each stream's token, then the match model's
 * and the mixer's updates in stream order, exactly as the Python walk (its reference: tests compare
 * the bytes) and the decoders do.
 *
 * Range encoding reproduces constriction 0.5's queue RangeEncoder<u32 words, u64 state> with
 * Categorical(perfect=False), precision 24 (the intervals of range_dec_symbol above): each symbol
 * narrows [lower, lower + range) to scale * [left, right), scale = range >> 24; when range falls
 * below 2^32 the top word of lower is emitted and both shift by 32 bits. A word whose value a later
 * carry may still change (lower + range wrapped past 2^64) is held back ("inverted" situation) with
 * the words after it, which are then all 0xFFFFFFFF, until the carry is known. Sealing emits the
 * held words, then a point of the final interval as one word (two when one would not identify it). */

typedef struct {
    uint32_t *words;
    Py_ssize_t n, capacity;
    uint64_t lower, range;
    Py_ssize_t inverted;     /* held-back words (0: normal situation) */
    uint32_t first_inverted; /* the first of them, before any carry */
} RangeEnc;

static int range_enc_put(RangeEnc *e, uint32_t word) {
    if (e->n == e->capacity) {
        const Py_ssize_t capacity = e->capacity ? 2 * e->capacity : 256;
        uint32_t *words = PyMem_RawRealloc(e->words, sizeof(uint32_t) * capacity);
        if (!words) return -1;
        e->words = words;
        e->capacity = capacity;
    }
    e->words[e->n++] = word;
    return 0;
}

/* the held-back words, resolved: carried (the first plus one, then zeros) or not */
static int range_enc_release(RangeEnc *e, int carried) {
    if (range_enc_put(e, carried ? e->first_inverted + 1 : e->first_inverted) < 0) return -1;
    for (Py_ssize_t i = 1; i < e->inverted; i++)
        if (range_enc_put(e, carried ? 0u : 0xFFFFFFFFu) < 0) return -1;
    e->inverted = 0;
    return 0;
}

/* Encode ``symbol`` against an integer frequency row (every entry >= 1); -1: no memory */
static int range_enc_symbol(RangeEnc *e, const double *row, Py_ssize_t V, Py_ssize_t symbol) {
    double norm = 0.0;
    for (Py_ssize_t j = 0; j < V; j++) norm += row[j]; /* exact: integers, sum < 2^53 */
    const double fscale = (double)((1u << 24) - (uint32_t)V) / norm;
    double cum = 0.0;
    for (Py_ssize_t j = 0; j < symbol; j++) cum += row[j];
    const uint32_t left = symbol ? (uint32_t)(cum * fscale) + (uint32_t)symbol : 0;
    const uint32_t right =
        symbol == V - 1 ? 1u << 24 : (uint32_t)((cum + row[symbol]) * fscale) + (uint32_t)symbol + 1;
    const uint64_t scale = e->range >> 24;
    const uint64_t lower = e->lower + scale * left; /* wraps past 2^64 on a carry */
    e->range = scale * (uint64_t)(right - left);
    if (e->inverted && lower + e->range > lower) {
        if (range_enc_release(e, lower < e->lower) < 0) return -1; /* the interval no longer wraps */
    }
    e->lower = lower;
    if (e->range < ((uint64_t)1 << 32)) {
        e->range <<= 32;
        const uint32_t word = (uint32_t)(e->lower >> 32);
        e->lower <<= 32;
        if (e->inverted) {
            e->inverted++;
        } else if (e->lower + e->range > e->lower) {
            if (range_enc_put(e, word) < 0) return -1;
        } else {
            e->inverted = 1;
            e->first_inverted = word;
        }
    }
    return 0;
}

/* The coded words as little-endian bytes, sealed (nothing coded: empty) */
static PyObject *range_enc_bytes(RangeEnc *e) {
    if (e->range != UINT64_MAX) {
        const uint64_t point = e->lower + (((uint64_t)1 << 32) - 1);
        if (e->inverted && range_enc_release(e, point < e->lower) < 0) return PyErr_NoMemory();
        const uint32_t point_word = (uint32_t)(point >> 32);
        if (range_enc_put(e, point_word) < 0) return PyErr_NoMemory();
        if ((uint32_t)((e->lower + e->range) >> 32) == point_word && range_enc_put(e, 0) < 0)
            return PyErr_NoMemory();
        e->range = UINT64_MAX; /* sealed once */
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, 4 * e->n);
    if (!out) return NULL;
    unsigned char *bytes = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < e->n; i++) {
        const uint32_t w = e->words[i];
        bytes[4 * i] = (unsigned char)w, bytes[4 * i + 1] = (unsigned char)(w >> 8);
        bytes[4 * i + 2] = (unsigned char)(w >> 16), bytes[4 * i + 3] = (unsigned char)(w >> 24);
    }
    return out;
}

typedef struct {
    PyObject_HEAD
    MixerObject *mixer;
    Py_ssize_t S, V, orders, longest, t;
    int64_t *lengths, *active_at, *history, *coded;
    int32_t *all;  /* every token: [S][longest] */
    Grid grid;     /* the tokens coded so far (what the decoder has) */
    int32_t *mix_work;
    double *row;
    RangeEnc *encoders;
    Match match;
} TextEncoderObject;

static void TextEncoder_dealloc(TextEncoderObject *self) {
    Py_XDECREF(self->mixer);
    if (self->encoders)
        for (Py_ssize_t s = 0; s < self->S; s++) PyMem_RawFree(self->encoders[s].words);
    void *blocks[] = {self->lengths, self->active_at, self->history, self->coded, self->all, self->grid.buf,
                      self->mix_work, self->row, self->encoders};
    for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) PyMem_Free(blocks[i]);
    match_free(&self->match);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* TextEncoder(tokens int32 [S][longest] (padded), lengths int64 [S] non-increasing, mixer, match):
 * mixer: a fresh Mixer; match: None or the match model's parameters (as TextDecoder's). */
static int TextEncoder_init(TextEncoderObject *self, PyObject *args, PyObject *kwds) {
    Py_buffer tokens, lengths;
    PyObject *match_args;
    MixerObject *mixer;
    (void)kwds;
    if (self->encoders) {
        PyErr_SetString(PyExc_RuntimeError, "TextEncoder: initialized twice");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "y*y*O!O", &tokens, &lengths, &MixerType, &mixer, &match_args)) return -1;
    int ok = 0;
    const Py_ssize_t S = lengths.len / 8;
    if (S < 1 || lengths.itemsize != 8 || tokens.itemsize != 4) {
        PyErr_SetString(PyExc_ValueError, "TextEncoder: bad tokens or lengths");
        goto done;
    }
    const int64_t *len = lengths.buf;
    if (!(self->active_at = active_counts(len, S, "TextEncoder"))) goto done;
    const Py_ssize_t longest = len[0], V = mixer->vocab, orders = mixer->orders;
    if (tokens.len != 4 * S * longest) {
        PyErr_SetString(PyExc_ValueError, "TextEncoder: tokens must be [streams][longest]");
        goto done;
    }
    for (Py_ssize_t s = 0; s < S; s++)
        for (Py_ssize_t p = 0; p < len[s]; p++) {
            const int32_t token = ((const int32_t *)tokens.buf)[s * longest + p];
            if (token < 0 || token >= V) {
                PyErr_SetString(PyExc_ValueError, "TextEncoder: token out of range");
                goto done;
            }
        }
    self->mixer = mixer;
    Py_INCREF(mixer);
    self->S = S, self->V = V, self->orders = orders, self->longest = longest;
    self->grid.orders = orders, self->grid.longest = longest;
    ALLOC(lengths, int64_t, S);
    memcpy(self->lengths, len, 8 * S);
    ALLOC(history, int64_t, S * orders);
    ALLOC(coded, int64_t, S);
    ALLOC(all, int32_t, S * longest);
    memcpy(self->all, tokens.buf, 4 * S * longest);
    ALLOC(grid.buf, int32_t, S * (orders + longest));
    for (Py_ssize_t i = 0; i < S * (orders + longest); i++) self->grid.buf[i] = -1;
    ALLOC(mix_work, int32_t, (orders + 1) * V);
    ALLOC(row, double, V);
    ALLOC(encoders, RangeEnc, S);
    for (Py_ssize_t s = 0; s < S; s++) self->encoders[s].range = UINT64_MAX;
    if (!match_init(&self->match, match_args, V, S)) goto done;
    ok = 1;
done:
    PyBuffer_Release(&tokens);
    PyBuffer_Release(&lengths);
    return ok ? 0 : -1;
}

/* run(rows, start, stop): code steps start..stop-1 (start == the step after the last one run; step
 * 0: every stream's first token, uniform), rows: float64 [S][stop - start][V] (row s, column t -
 * start: the model's integer frequencies for stream s's token t; only active streams are read). */
static PyObject *TextEncoder_run(TextEncoderObject *self, PyObject *args) {
    Py_buffer rows;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "y*nn", &rows, &start, &stop)) return NULL;
    if (!self->encoders || start != self->t || stop < start || stop > self->longest ||
        rows.len != (Py_ssize_t)sizeof(double) * self->S * (stop - start) * self->V) {
        PyBuffer_Release(&rows);
        PyErr_SetString(PyExc_ValueError, "TextEncoder.run: bad steps or rows");
        return NULL;
    }
    const Py_ssize_t V = self->V, orders = self->orders, span = stop - start;
    const double *model_rows = rows.buf;
    Grid *g = &self->grid;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t t = start; t < stop && !failed; t++) {
        const Py_ssize_t B = self->active_at[t];
        if (t == 0) {
            for (Py_ssize_t j = 0; j < V; j++) self->row[j] = 1.0;
            for (Py_ssize_t s = 0; s < B && !failed; s++) {
                const int32_t token = self->all[s * self->longest];
                failed = range_enc_symbol(&self->encoders[s], self->row, V, token) < 0;
                GRID_AT(g, s, 0) = token;
            }
            if (!failed && self->match.on) failed = match_update(&self->match, g, V, B, 0) < 0;
            continue;
        }
        for (Py_ssize_t s = 0; s < B; s++)
            for (Py_ssize_t j = 0; j < orders; j++) self->history[s * orders + j] = GRID_AT(g, s, t - orders + j);
        for (Py_ssize_t s = 0; s < B && !failed; s++) {
            mixer_rows(self->mixer, model_rows + (s * span + (t - start)) * V, self->history + s * orders,
                       self->row, 1, self->mix_work);
            if (self->match.on) match_adjust(&self->match, g, V, self->row, s);
            const int32_t token = self->all[s * self->longest + t];
            failed = range_enc_symbol(&self->encoders[s], self->row, V, token) < 0;
            self->coded[s] = token;
        }
        for (Py_ssize_t s = 0; s < B; s++) GRID_AT(g, s, t) = (int32_t)self->coded[s];
        if (!failed && self->match.on) failed = match_update(&self->match, g, V, B, t) < 0;
        if (!failed) {
            mixer_learn(self->mixer, model_rows + (t - start) * V, span * V, self->history, self->coded, B);
            failed = mixer_add(self->mixer, self->history, self->coded, B) < 0;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&rows);
    if (failed) return PyErr_NoMemory();
    self->t = stop;
    Py_RETURN_NONE;
}

/* finish() -> list of S bytes: each stream's range-coded words, sealed */
static PyObject *TextEncoder_finish(TextEncoderObject *self, PyObject *Py_UNUSED(ignored)) {
    if (!self->encoders) {
        PyErr_SetString(PyExc_ValueError, "TextEncoder: not initialized");
        return NULL;
    }
    PyObject *out = PyList_New(self->S);
    for (Py_ssize_t s = 0; out && s < self->S; s++) {
        PyObject *item = range_enc_bytes(&self->encoders[s]);
        if (!item) Py_CLEAR(out);
        else PyList_SET_ITEM(out, s, item);
    }
    return out;
}

static PyMethodDef TextEncoder_methods[] = {
    {"run", (PyCFunction)TextEncoder_run, METH_VARARGS, "Code the steps start .. stop - 1."},
    {"finish", (PyCFunction)TextEncoder_finish, METH_NOARGS, "The coded streams."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TextEncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nncodec.nn._kernels.TextEncoder",
    .tp_basicsize = sizeof(TextEncoderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The text codec's encoder walk for one mix group (see nncodec/nn/_kernels.c).",
    .tp_methods = TextEncoder_methods,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)TextEncoder_init,
    .tp_dealloc = (destructor)TextEncoder_dealloc,
};

static PyObject *set_level(PyObject *self, PyObject *args) {
    int level;
    if (!PyArg_ParseTuple(args, "i", &level)) return NULL;
    if (level < 0 || level > 2) {
        PyErr_SetString(PyExc_ValueError, "set_level: 0 (best), 1 (at most AVX2) or 2 (portable)");
        return NULL;
    }
    kernel_level = level;
    Py_RETURN_NONE;
}

/* the loops the matmuls run at the current level: "avx512-vnni", "avx2" or "portable" */
static PyObject *matmul_kind(PyObject *self, PyObject *args) {
#ifdef HAVE_AVX2_ATTEND
    if (kernel_level == 0 && have_vnni()) return PyUnicode_FromString("avx512-vnni");
    if (kernel_level <= 1 && __builtin_cpu_supports("avx2")) return PyUnicode_FromString("avx2");
#endif
    return PyUnicode_FromString("portable");
}

static PyMethodDef methods[] = {
    {"set_level", set_level, METH_VARARGS, "0: best loops for this CPU, 1: at most AVX2, 2: baseline x86-64."},
    {"matmul_kind", matmul_kind, METH_NOARGS, "The matmul loops used at the current level."},
    {"attend", attend, METH_VARARGS, "Exact integer attention (see nncodec/nn/_kernels.c)."},
    {"decoder_step", decoder_step, METH_VARARGS, "One step of the text model's decoder (see above)."},
    {"pack_vnni", pack_vnni, METH_VARARGS, "The VNNI layout of an int8 weight matrix and its row sums."},
    {"matmul_i8", matmul_i8, METH_VARARGS, "Exact int8 matrix product of few rows (int32 sums as float32)."},
    {"lut_rows", lut_rows, METH_VARARGS, "Lookup-table softmax numerators per row, plus one."},
    {"head_lut", head_lut, METH_VARARGS, "lut_rows of a linear layer's scaled output."},
    {"quantize", quantize, METH_VARARGS, "Symmetric int8 quantization per row."},
    {"norm_quantize", norm_quantize, METH_VARARGS, "RMSNorm + int8 quantization per row."},
    {"residual_add", residual_add, METH_VARARGS, "Add a linear layer's output to the residual."},
    {"relu_quantize", relu_quantize, METH_VARARGS, "ReLU of a linear layer's output, quantized."},
    {"qkv_split", qkv_split, METH_VARARGS, "Attention inputs from the qkv layer's output."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    if (PyType_Ready(&MixerType) < 0 || PyType_Ready(&TextDecoderType) < 0 || PyType_Ready(&TextEncoderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddType(m, &MixerType) < 0 || PyModule_AddType(m, &TextDecoderType) < 0 ||
        PyModule_AddType(m, &TextEncoderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
