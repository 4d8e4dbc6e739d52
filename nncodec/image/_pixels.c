/* The next-pixel model's feature set v2 in C: nncodec/image/nextpixel.py's ``features_v2`` (the
 * numpy reference, which the tests compare with this byte for byte) for one wavefront step.
 *
 * features_v2(canvas, errors, ls_errors, weights, cy, cx, ys, last, channel, kind, width,
 *             channels, rows, cols, feats, base, pred)
 *   canvas, errors, ls_errors: int16 [channels][rows][cols] (the padded canvas, value - base and
 *   value - linear prediction of every coded subpixel); weights: int16, the channel's linear
 *   predictor (ls_size(kind) entries); cy, cx, ys: int64 [B] canvas row, canvas column and row in
 *   the stripe; last: uint8 [B] (1 in a stripe's last row); out: feats int16 [B][50], base int32 [B],
 *   pred int64 [B].
 *
 * Everything is integer arithmetic; the shift of the linear prediction is a floor (numpy's >> on
 * int64), written so in C for negative sums too. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

#define N_FEATURES 50
#define N_LOCAL 45 /* the local features; the linear prediction - base and its errors at W, N follow */
#define FLAG 64
#define LS_SHIFT 12
#define MAX_EARLIER 2

/* (dy, dx) lists, in nextpixel.py's order */
static const int NEIGHBOURS[12][2] = {{0, -1}, {0, -2}, {-1, -1}, {-1, 0}, {-1, 1}, {-2, 0},
                                      {-2, 1}, {-1, -2}, {-2, -1}, {-2, 2}, {0, -3}, {-3, 0}};
static const int ERRORS[6][2] = {{0, -1}, {-1, 0}, {-1, -1}, {-1, 1}, {0, -2}, {-2, 0}};
static const int CROSS[8][2] = {{0, -1}, {-1, 0}, {-1, -1}, {-1, 1}, {0, 1}, {1, 0}, {1, 1}, {1, -1}};
static const int LS_ERRORS[4][2] = {{0, -1}, {-1, 0}, {-1, -1}, {-1, 1}};

static inline int32_t med(int32_t w, int32_t n, int32_t nw) {
    const int32_t lo = w < n ? w : n, hi = w < n ? n : w;
    if (nw >= hi) return lo;
    if (nw <= lo) return hi;
    return w + n - nw;
}

static inline int16_t clip127(int64_t v) { return (int16_t)(v < -127 ? -127 : v > 127 ? 127 : v); }

static inline int64_t floor_shift(int64_t v, int shift) {
    /* floor(v / 2^shift) for any sign, without relying on >> of negative numbers */
    const int64_t d = (int64_t)1 << shift;
    return v >= 0 ? v / d : -((-v + d - 1) / d);
}

static int check(Py_buffer *b, Py_ssize_t items, Py_ssize_t size, const char *name) {
    if (b->len != items * size) {
        PyErr_Format(PyExc_ValueError, "%s: buffer holds %zd bytes, expected %zd", name, b->len, items * size);
        return 0;
    }
    return 1;
}

static PyObject *features_v2(PyObject *self, PyObject *args) {
    Py_buffer canvas, errors, ls_errors, weights, cyb, cxb, ysb, lastb, feats, baseb, predb;
    Py_ssize_t channel, kind, width, C, H, W;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*nnnnnnw*w*w*", &canvas, &errors, &ls_errors, &weights, &cyb,
                          &cxb, &ysb, &lastb, &channel, &kind, &width, &C, &H, &W, &feats, &baseb, &predb))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t B = cyb.len / 8, plane = H * W, n_weights = 12 + kind * 9 + 1;
    if (C <= 0 || H <= 0 || W <= 0 || channel < 0 || channel >= C || kind < 0 || kind > MAX_EARLIER ||
        kind > channel) {
        PyErr_SetString(PyExc_ValueError, "features_v2: bad shape, channel or kind");
        goto done;
    }
    if (!check(&canvas, C * plane, 2, "canvas") || !check(&errors, C * plane, 2, "errors") ||
        !check(&ls_errors, C * plane, 2, "ls_errors") || !check(&weights, n_weights, 2, "weights") ||
        !check(&cxb, B, 8, "cx") || !check(&ysb, B, 8, "ys") || !check(&lastb, B, 1, "last") ||
        !check(&feats, B * N_FEATURES, 2, "feats") || !check(&baseb, B, 4, "base") || !check(&predb, B, 8, "pred"))
        goto done;
    const int64_t *cy = cyb.buf, *cx = cxb.buf, *ys = ysb.buf;
    for (Py_ssize_t i = 0; i < B; i++)
        if (cy[i] < 3 || cy[i] + 1 >= H || cx[i] < 3 || cx[i] + 3 >= W) {
            PyErr_SetString(PyExc_ValueError, "features_v2: position outside the padded canvas");
            goto done;
        }
    const int16_t *cv = canvas.buf, *ev = errors.buf, *lv = ls_errors.buf, *wt = weights.buf;
    const uint8_t *last = lastb.buf;
    int16_t *out = feats.buf;
    int32_t *base_out = baseb.buf;
    int64_t *pred_out = predb.buf;
    Py_BEGIN_ALLOW_THREADS
    const int16_t *own = cv + channel * plane, *own_err = ev + channel * plane, *own_ls = lv + channel * plane;
    for (Py_ssize_t i = 0; i < B; i++) {
        const Py_ssize_t at = cy[i] * W + cx[i];
#define AT(p, dy, dx) ((int32_t)(p)[at + (dy) * W + (dx)])
        int32_t base = med(AT(own, 0, -1), AT(own, -1, 0), AT(own, -1, -1));
        int32_t here[MAX_EARLIER], surprise[MAX_EARLIER];
        for (Py_ssize_t e = 0; e < kind; e++) {
            const int16_t *earlier = cv + (channel - kind + e) * plane;
            here[e] = AT(earlier, 0, 0);
            surprise[e] = here[e] - med(AT(earlier, 0, -1), AT(earlier, -1, 0), AT(earlier, -1, -1));
        }
        if (kind) {
            base += surprise[kind - 1];
            base = base < 0 ? 0 : base > 255 ? 255 : base;
        }
        int16_t *f = out + i * N_FEATURES;
        int n = 0;
        for (int k = 0; k < 12; k++) f[n++] = clip127(AT(own, NEIGHBOURS[k][0], NEIGHBOURS[k][1]) - base);
        for (int k = 0; k < 6; k++) f[n++] = clip127(AT(own_err, ERRORS[k][0], ERRORS[k][1]));
        for (int e = 0; e < MAX_EARLIER; e++) {
            if (e < kind) {
                const int16_t *earlier = cv + (channel - kind + e) * plane;
                f[n++] = clip127(surprise[e]);
                for (int k = 0; k < 8; k++) f[n++] = clip127(here[e] - AT(earlier, CROSS[k][0], CROSS[k][1]));
            } else {
                for (int k = 0; k < 9; k++) f[n++] = 0;
            }
        }
        for (int k = 0; k < 3; k++) f[n++] = kind == k ? FLAG : 0;
        const int64_t x = cx[i] - 3;
        f[n++] = ys[i] == 0 ? FLAG : 0;
        f[n++] = x == 0 ? FLAG : 0;
        f[n++] = x == width - 1 ? FLAG : 0;
        f[n++] = last[i] ? FLAG : 0;
        f[n++] = clip127(base - 128);
        f[n++] = FLAG;
        /* the linear predictor: same-channel neighbours, the earlier channels at (0, 0) + CROSS, 128 */
        int64_t acc = 0;
        int w = 0;
        for (int k = 0; k < 12; k++) acc += (int64_t)AT(own, NEIGHBOURS[k][0], NEIGHBOURS[k][1]) * wt[w++];
        for (Py_ssize_t e = 0; e < kind; e++) {
            const int16_t *earlier = cv + (channel - kind + e) * plane;
            acc += (int64_t)AT(earlier, 0, 0) * wt[w++];
            for (int k = 0; k < 8; k++) acc += (int64_t)AT(earlier, CROSS[k][0], CROSS[k][1]) * wt[w++];
        }
        acc += 128 * (int64_t)wt[w++];
        int64_t pred = floor_shift(acc + (1 << (LS_SHIFT - 1)), LS_SHIFT);
        pred = pred < 0 ? 0 : pred > 255 ? 255 : pred;
        f[n++] = clip127(pred - base);
        for (int k = 0; k < 4; k++) f[n++] = clip127(AT(own_ls, LS_ERRORS[k][0], LS_ERRORS[k][1]));
#undef AT
        base_out[i] = base;
        pred_out[i] = pred;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
done:
    PyBuffer_Release(&canvas);
    PyBuffer_Release(&errors);
    PyBuffer_Release(&ls_errors);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&cyb);
    PyBuffer_Release(&cxb);
    PyBuffer_Release(&ysb);
    PyBuffer_Release(&lastb);
    PyBuffer_Release(&feats);
    PyBuffer_Release(&baseb);
    PyBuffer_Release(&predb);
    Py_XINCREF(result);
    return result;
}

/* Buckets as numpy's searchsorted(edges, v, side="right"): how many edges are <= v. */
static inline int64_t bucket(const int64_t *edges, Py_ssize_t n, int64_t v) {
    Py_ssize_t i = 0;
    while (i < n && edges[i] <= v) i++;
    return i;
}

/* mix_contexts(feats int16 [B][50], channel, activity_edges, gradient_edges, gap_edges int64, out int64
 * [B][K]): nncodec/codecs/image.py's mixer contexts of feature set v2, oldest first; K = 5 (format 2,
 * ``_mix_contexts_f2``) or 7 (format 4, ``_mix_contexts_f4``: NN - N and NE - N buckets first). */
static PyObject *mix_contexts(PyObject *self, PyObject *args) {
    Py_buffer feats, act, grad, gap, out;
    Py_ssize_t channel, B, K;
    if (!PyArg_ParseTuple(args, "y*ny*y*y*w*nn", &feats, &channel, &act, &grad, &gap, &out, &B, &K)) return NULL;
    PyObject *result = NULL;
    const Py_ssize_t na = act.len / 8, ng = grad.len / 8, np_ = gap.len / 8;
    if ((K != 5 && K != 7) || B < 0 || !check(&feats, B * N_FEATURES, 2, "feats") || !check(&out, B * K, 8, "out"))
        goto done;
    const int16_t *f = feats.buf;
    const int64_t *ae = act.buf, *ge = grad.buf, *pe = gap.buf;
    int64_t *o = out.buf;
    const int64_t first = (channel < 3 ? channel : 3) * (na + 1);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t b = 0; b < B; b++, f += N_FEATURES, o += K) {
        const int64_t w = f[0], nw = f[2], n = f[3], ne = f[4], nn = f[5];
        const int64_t activity = llabs(w - nw) + llabs(n - nw) + llabs(n - ne);
        int64_t *c = o;
        if (K == 7) {
            *c++ = bucket(ge, ng, nn - n);
            *c++ = bucket(ge, ng, ne - n);
        }
        *c++ = bucket(pe, np_, (int64_t)f[N_LOCAL + 1] + f[N_LOCAL + 2]);
        *c++ = bucket(ge, ng, n);
        *c++ = bucket(ge, ng, w);
        *c++ = bucket(pe, np_, f[N_LOCAL]);
        *c++ = first + bucket(ae, na, activity);
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
done:
    PyBuffer_Release(&feats);
    PyBuffer_Release(&act);
    PyBuffer_Release(&grad);
    PyBuffer_Release(&gap);
    PyBuffer_Release(&out);
    Py_XINCREF(result);
    return result;
}

static PyMethodDef methods[] = {
    {"features_v2", features_v2, METH_VARARGS, "Feature set v2 of one wavefront step (see the file's comment)."},
    {"mix_contexts", mix_contexts, METH_VARARGS, "The image codec's mixer contexts of feature set v2."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pixels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__pixels(void) { return PyModule_Create(&module); }
