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
                               Py_ssize_t N) {
    for (Py_ssize_t n = 0; n < N; n++)
        for (Py_ssize_t r = 0; r < R; r++) ob[r * N + n] = (float)dot_i8(qi + r * K, w + n * K, K);
}

#ifdef HAVE_AVX2_ATTEND
/* four weight rows against one query row, 32 bytes at a time: vpmaddubsw of |q| with sign(q)-adjusted
 * weights (pairs stay below 2 * 127^2 < 2^15: no saturation), vpmaddwd into int32 lanes */
__attribute__((target("avx2"))) static void matmul_i8_avx2(const int8_t *qi, const int8_t *w, float *ob,
                                                           Py_ssize_t R, Py_ssize_t K, Py_ssize_t N) {
    const __m256i ones = _mm256_set1_epi16(1);
    Py_ssize_t n = 0;
    for (; n + 4 <= N; n += 4) {
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
    for (; n < N; n++)
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
                                       Py_ssize_t R, Py_ssize_t K, Py_ssize_t N) {
    for (Py_ssize_t r0 = 0; r0 < R; r0 += VNNI_CHUNK) {
        const Py_ssize_t r1 = r0 + VNNI_CHUNK < R ? r0 + VNNI_CHUNK : R;
        for (Py_ssize_t n = 0; n < N; n += 16 * VNNI_BLOCKS) {
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

/* the best loop for this CPU and kernel_level; ``packed`` NULL: no VNNI layout given */
static void matmul_i8_rows(const int8_t *qi, const int8_t *w, const int8_t *packed, const int32_t *colsum,
                           float *ob, Py_ssize_t R, Py_ssize_t K, Py_ssize_t N) {
#ifdef HAVE_AVX2_ATTEND
    if (packed && kernel_level == 0 && N % (16 * VNNI_BLOCKS) == 0 && K % 4 == 0 && have_vnni()) {
        matmul_i8_vnni(qi, packed, colsum, ob, R, K, N);
        return;
    }
    if (K % 32 == 0 && kernel_level <= 1 && __builtin_cpu_supports("avx2")) {
        matmul_i8_avx2(qi, w, ob, R, K, N);
        return;
    }
#endif
    matmul_i8_portable(qi, w, ob, R, K, N);
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

typedef struct {
    int64_t key;      /* -1: empty slot */
    int64_t seen;     /* sum of counts */
    TokenCount *items;
    int32_t distinct;
    int32_t capacity;
} Context;

typedef struct {
    Context *slots;
    Py_ssize_t size, used;
} ContextTable;

#define MAX_ORDERS 8

typedef struct {
    PyObject_HEAD
    Py_ssize_t vocab;
    int orders;
    double priors[MAX_ORDERS];
    ContextTable tables[MAX_ORDERS];
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
    Context *slots = PyMem_Calloc(size, sizeof(Context));
    if (!slots) return -1;
    for (Py_ssize_t i = 0; i < size; i++) slots[i].key = -1;
    for (Py_ssize_t i = 0; i < t->size; i++) {
        if (t->slots[i].key == -1) continue;
        Py_ssize_t j = (Py_ssize_t)(hash_key(t->slots[i].key) & (uint64_t)(size - 1));
        while (slots[j].key != -1) j = (j + 1) & (size - 1);
        slots[j] = t->slots[i];
    }
    PyMem_Free(t->slots);
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

static int context_add(Context *c, int32_t token) {
    for (int32_t i = 0; i < c->distinct; i++) {
        if (c->items[i].token == token) {
            c->items[i].count++;
            c->seen++;
            return 0;
        }
    }
    if (c->distinct == c->capacity) {
        int32_t capacity = c->capacity ? c->capacity * 2 : 2;
        TokenCount *items = PyMem_Realloc(c->items, sizeof(TokenCount) * capacity);
        if (!items) return -1;
        c->items = items;
        c->capacity = capacity;
    }
    c->items[c->distinct].token = token;
    c->items[c->distinct].count = 1;
    c->distinct++;
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

static int Mixer_init(MixerObject *self, PyObject *args, PyObject *kwds) {
    Py_ssize_t vocab;
    PyObject *priors;
    if (!PyArg_ParseTuple(args, "nO", &vocab, &priors)) return -1;
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

static void Mixer_dealloc(MixerObject *self) {
    for (int k = 0; k < MAX_ORDERS; k++) {
        ContextTable *t = &self->tables[k];
        for (Py_ssize_t i = 0; i < t->size; i++)
            if (t->slots[i].key != -1) PyMem_Free(t->slots[i].items);
        PyMem_Free(t->slots);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* frequencies(model_rows f64 [S][V], history int64 [S][orders], out f64 [S][V], S); only reads the
 * mixer, so several threads may call it at once (on different rows), never during an update */
MULTIVERSION
static PyObject *Mixer_frequencies(MixerObject *self, PyObject *args) {
    Py_buffer rows, history, out;
    Py_ssize_t S;
    if (!PyArg_ParseTuple(args, "y*y*w*n", &rows, &history, &out, &S)) return NULL;
    PyObject *result = NULL;
    const Py_ssize_t V = self->vocab;
    int32_t *work = NULL; /* per call (counts per order, then marks), so that calls may run at once */
    if (S < 0 || !check_size(&rows, S * V, 8, "model_rows") ||
        !check_size(&history, S * self->orders, 8, "history") || !check_size(&out, S * V, 8, "out"))
        goto done;
    if (!(work = PyMem_Calloc((size_t)(self->orders + 1) * V, sizeof(int32_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    int32_t stamp = 0;
    Py_BEGIN_ALLOW_THREADS
    const double *rb = rows.buf;
    const int64_t *hb = history.buf;
    double *ob = out.buf;
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
            const Context *c = table_find(&self->tables[k], keys[k]);
            if (!c || !c->distinct) continue;
            const double seen = (double)c->seen;
            const double weight = seen / (seen + self->priors[k] * (double)c->distinct);
            ctx[n] = c;
            keep[n] = 1.0 - weight;
            per_count[n] = weight / seen;
            n++;
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
    Py_END_ALLOW_THREADS
    result = Py_None;
done:
    PyMem_Free(work);
    return RELEASE(result, &rows, &history, &out);
}

/* update(history int64 [S][orders], tokens int64 [S], S): count each stream's token, in order. */
static PyObject *Mixer_update(MixerObject *self, PyObject *args) {
    Py_buffer history, tokens;
    Py_ssize_t S;
    if (!PyArg_ParseTuple(args, "y*y*n", &history, &tokens, &S)) return NULL;
    PyObject *result = NULL;
    if (S < 0 || !check_size(&history, S * self->orders, 8, "history") || !check_size(&tokens, S, 8, "tokens"))
        goto done;
    const int64_t *hb = history.buf, *tb = tokens.buf;
    int64_t keys[MAX_ORDERS];
    for (Py_ssize_t s = 0; s < S; s++) {
        if (tb[s] < 0 || tb[s] >= self->vocab) {
            PyErr_SetString(PyExc_ValueError, "Mixer.update: token out of range");
            goto done;
        }
        context_keys(self, hb + s * self->orders, keys);
        for (int k = 0; k < self->orders; k++) {
            if (keys[k] < 0) break;
            Context *c = table_insert(&self->tables[k], keys[k]);
            if (!c || context_add(c, (int32_t)tb[s]) < 0) {
                PyErr_NoMemory();
                goto done;
            }
        }
    }
    result = Py_None;
done:
    return RELEASE(result, &history, &tokens);
}

static PyMethodDef Mixer_methods[] = {
    {"frequencies", (PyCFunction)Mixer_frequencies, METH_VARARGS, "Mixed integer frequency rows."},
    {"update", (PyCFunction)Mixer_update, METH_VARARGS, "Count each stream's new token."},
    {NULL, NULL, 0, NULL},
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
 *   model:  (embed i64 [V][C], alibi f64 [H][W], attn_exp f64 [La], out_exp f64 [Lo], head, then per
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

static PyObject *decoder_step(PyObject *self, PyObject *args) {
    Py_buffer tokens, distance, out;
    PyObject *model_tuple, *cache_tuple;
    double eps, res_unit, inv_sqrt_hd, attn_steps, out_steps;
    long long limit;
    Py_ssize_t B, C, H, F, V, W, NL, slot;
    if (!PyArg_ParseTuple(args, "y*y*w*O!O!(dLdddd)(nnnnnnnn)", &tokens, &distance, &out, &PyTuple_Type,
                          &model_tuple, &PyTuple_Type, &cache_tuple, &eps, &limit, &res_unit, &inv_sqrt_hd,
                          &attn_steps, &out_steps, &B, &C, &H, &F, &V, &W, &NL, &slot))
        return NULL;
    PyObject *result = NULL;
    BufferList model = {NULL, 0}, caches = {NULL, 0};
    Py_ssize_t *sizes = NULL, *itemsizes = NULL;
    char *writable = NULL, *work_block = NULL;
    StepLinear *linears = NULL; /* head, then 4 per layer */
    if (B <= 0 || C <= 0 || H <= 0 || C % H || F <= 0 || V <= 0 || W <= 0 || W > 512 || NL < 0 || NL > 1024 ||
        slot < 0 || slot >= W || C > 1040 || F > 1040) {
        PyErr_SetString(PyExc_ValueError, "decoder_step: bad dimensions");
        goto done;
    }
    const Py_ssize_t D = C / H;
    if (!check_size(&tokens, B, 8, "tokens") || !check_size(&distance, W, 4, "distance") ||
        !check_size(&out, B * V, 8, "out"))
        goto done;
    const Py_ssize_t n_model = STEP_MODEL_FIXED + STEP_PER_LAYER * NL, n_cache = 3 * NL;
    sizes = PyMem_Malloc(sizeof(Py_ssize_t) * (n_model + n_cache));
    itemsizes = PyMem_Malloc(sizeof(Py_ssize_t) * (n_model + n_cache));
    writable = PyMem_Calloc(n_model + n_cache, 1);
    linears = PyMem_Calloc(1 + 4 * NL, sizeof(StepLinear));
    if (!sizes || !itemsizes || !writable || !linears) {
        PyErr_NoMemory();
        goto done;
    }
    /* linear layers are checked by step_linear below: ANY_SIZE here, item sizes i8, i8, i32, f64 */
    for (Py_ssize_t i = 0; i < n_model; i++) sizes[i] = ANY_SIZE, itemsizes[i] = 8;
    sizes[0] = V * C, sizes[1] = H * W; /* embed, alibi; the tables: any length */
#define LINEAR_ITEMS(at) (itemsizes[(at)] = 1, itemsizes[(at) + 1] = 1, itemsizes[(at) + 2] = 4)
    LINEAR_ITEMS(4); /* head */
    for (Py_ssize_t l = 0; l < NL; l++) {
        const Py_ssize_t first = STEP_MODEL_FIXED + l * STEP_PER_LAYER;
        for (int j = 0; j < 4; j++) LINEAR_ITEMS(first + j * STEP_LINEAR);
        sizes[first + 4 * STEP_LINEAR] = H; /* v_scale */
    }
#undef LINEAR_ITEMS
    if (!buffers_get(model_tuple, &model, sizes, itemsizes, writable, n_model, "model")) goto done;
    for (Py_ssize_t l = 0; l < NL; l++) {
        sizes[3 * l] = B * H * W * D, itemsizes[3 * l] = 1;
        sizes[3 * l + 1] = B * H * W, itemsizes[3 * l + 1] = 8;
        sizes[3 * l + 2] = B * H * W * D, itemsizes[3 * l + 2] = 1;
        writable[3 * l] = writable[3 * l + 1] = writable[3 * l + 2] = 1;
    }
    if (!buffers_get(cache_tuple, &caches, sizes, itemsizes, writable, n_cache, "caches")) goto done;
    if (!step_linear(model.items + 4, V, C, &linears[0])) goto done;
    for (Py_ssize_t l = 0; l < NL; l++) {
        Py_buffer *m = model.items + STEP_MODEL_FIXED + l * STEP_PER_LAYER;
        StepLinear *lin = linears + 1 + 4 * l;
        if (!step_linear(m, 3 * C, C, &lin[0]) || !step_linear(m + STEP_LINEAR, C, C, &lin[1]) ||
            !step_linear(m + 2 * STEP_LINEAR, F, C, &lin[2]) || !step_linear(m + 3 * STEP_LINEAR, C, F, &lin[3]))
            goto done;
    }
    const Py_ssize_t La = model.items[2].len / 8, Lo = model.items[3].len / 8;
    if (La <= 0 || Lo <= 0 || La > (1 << 30) || Lo > (1 << 30)) {
        PyErr_SetString(PyExc_ValueError, "decoder_step: lookup tables malformed");
        goto done;
    }
    const double *attn_tab = model.items[2].buf, *out_tab = model.items[3].buf;
    if (attn_tab[La - 1] != 0.0 || out_tab[Lo - 1] != 0.0) {
        PyErr_SetString(PyExc_ValueError, "decoder_step: tables must end in 0");
        goto done;
    }
    const int64_t *tok = tokens.buf;
    for (Py_ssize_t b = 0; b < B; b++)
        if (tok[b] < 0 || tok[b] >= V) {
            PyErr_SetString(PyExc_ValueError, "decoder_step: token out of range");
            goto done;
        }

    const StepScratch at = step_scratch(B, C, H, F, V, W);
    if (!(work_block = scratch(at.total))) goto done;
    int overflow = 0;
    Py_BEGIN_ALLOW_THREADS
    int64_t *residual = (int64_t *)(work_block + at.residual);
    float *acc = (float *)(work_block + at.acc);
    int8_t *qi = (int8_t *)(work_block + at.qi);
    double *attended = (double *)(work_block + at.attended), *work = (double *)(work_block + at.work);
    double *rscale = (double *)(work_block + at.rscale), *rscale2 = (double *)(work_block + at.rscale2);
    double *q_s = (double *)(work_block + at.q_s), *k_s = (double *)(work_block + at.k_s);
    int8_t *q_q = (int8_t *)(work_block + at.q_q), *k_q = (int8_t *)(work_block + at.k_q),
           *v_q = (int8_t *)(work_block + at.v_q);
    double *scores = (double *)(work_block + at.scores);
    int32_t *weights = (int32_t *)(work_block + at.weights), *mixed = (int32_t *)(work_block + at.mixed);
    const int64_t *embed = model.items[0].buf;
    for (Py_ssize_t b = 0; b < B; b++)
        for (Py_ssize_t c = 0; c < C; c++) residual[b * C + c] = embed[tok[b] * C + c];
#define MATMUL(linear, K, N) matmul_i8_rows(qi, (linear).w, (linear).packed, (linear).colsum, acc, B, K, N)
    for (Py_ssize_t l = 0; l < NL && !overflow; l++) {
        const StepLinear *lin = linears + 1 + 4 * l;
        const double *v_scale = model.items[STEP_MODEL_FIXED + l * STEP_PER_LAYER + 4 * STEP_LINEAR].buf;
        int8_t *kc = caches.items[3 * l].buf, *vc = caches.items[3 * l + 2].buf;
        double *ksc = caches.items[3 * l + 1].buf;
        /* queries, keys and values of the new token; keys and values into the ring slot */
        if (norm_quantize_rows(residual, eps, (int64_t)limit, qi, rscale, work, B, C)) {
            overflow = 1;
            break;
        }
        MATMUL(lin[0], C, 3 * C);
        qkv_split_rows(acc, rscale, lin[0].scale, inv_sqrt_hd, v_scale, q_q, q_s, k_q, k_s, v_q, work, B, H, D);
        for (Py_ssize_t g = 0; g < B * H; g++) {
            memcpy(kc + (g * W + slot) * D, k_q + g * D, D);
            memcpy(vc + (g * W + slot) * D, v_q + g * D, D);
            ksc[g * W + slot] = k_s[g];
        }
        /* attention over the ring (one query per group b * H + h), projection, MLP */
        attend_groups(q_q, q_s, kc, ksc, vc, distance.buf, model.items[1].buf, attn_tab, attn_steps, v_scale,
                      attended, scores, weights, mixed, B * H, H, 1, W, D, W, La);
        quantize_rows(attended, qi, rscale2, B, C);
        MATMUL(lin[1], C, C);
        residual_add_rows(residual, acc, rscale2, lin[1].scale, res_unit, B, C);
        if (norm_quantize_rows(residual, eps, (int64_t)limit, qi, rscale, work, B, C)) {
            overflow = 1;
            break;
        }
        MATMUL(lin[2], C, F);
        relu_quantize_rows(acc, rscale, lin[2].scale, qi, rscale2, work, B, F);
        MATMUL(lin[3], F, C);
        residual_add_rows(residual, acc, rscale2, lin[3].scale, res_unit, B, C);
    }
    if (!overflow) {
        if (norm_quantize_rows(residual, eps, (int64_t)limit, qi, rscale, work, B, C)) {
            overflow = 1;
        } else {
            MATMUL(linears[0], C, V);
            head_lut_rows(acc, rscale, linears[0].scale, out_tab, out_steps, out.buf, B, V, Lo);
        }
    }
#undef MATMUL
    Py_END_ALLOW_THREADS
    result = PyBool_FromLong(!overflow);
done:
    buffers_release(&model);
    buffers_release(&caches);
    PyMem_Free(sizes);
    PyMem_Free(itemsizes);
    PyMem_Free(writable);
    PyMem_Free(linears);
    PyMem_Free(work_block);
    return RELEASE(result, &tokens, &distance, &out);
}

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
    if (PyType_Ready(&MixerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&MixerType);
    if (PyModule_AddObject(m, "Mixer", (PyObject *)&MixerType) < 0) {
        Py_DECREF(&MixerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
