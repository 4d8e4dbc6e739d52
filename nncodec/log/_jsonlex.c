/* JSON-line value spans in C: nncodec/log/rewrites/fieldrefs.py's ``value_spans_reference`` (the
 * Python reference, which the tests compare with this on random and real lines), token for token;
 * and the field-reference rewrite undone for a whole block, as ``expand_fields_reference`` does.
 *
 * value_spans(line: bytes, marker: int) -> list of (start, end) or None
 *   marker: -1 for none, else a byte that a string may hold followed by any byte.
 * expand_block(data: bytes, marker: int, limit: int) -> bytes
 *   every line holding the marker restored (``_restore_line``); ValueError with the reference's
 *   message where it raises, or when the result would exceed ``limit`` bytes.
 *
 * Tokens: [ \t\r]+, strings ("...": a marker pair, a backslash and any byte, or any byte but '"',
 * '\' and 0x00-0x1f), numbers (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?), true, false, null
 * and one of {}[]:, ; at every position the first byte decides which, as in the regex. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 4096

/* End of the token at pos, or -1 when none starts there. */
static Py_ssize_t token_end(const unsigned char *s, Py_ssize_t pos, Py_ssize_t n, int marker) {
    unsigned char c = s[pos];
    Py_ssize_t i = pos;
    if (c == ' ' || c == '\t' || c == '\r') {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
        return i;
    }
    if (c == '"') {
        i++;
        while (i < n) {
            unsigned char d = s[i];
            if (marker >= 0 && d == (unsigned char)marker) {
                if (i + 1 >= n) return -1;
                i += 2;
            } else if (d == '"') {
                return i + 1;
            } else if (d == '\\') {
                if (i + 1 >= n) return -1;
                i += 2;
            } else if (d < 0x20) {
                return -1;
            } else {
                i++;
            }
        }
        return -1;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        if (c == '-') i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return -1;
        if (s[i] == '0') {
            i++;
        } else {
            while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        }
        if (i + 1 < n && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
            i += 2;
            while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
            Py_ssize_t j = i + 1;
            if (j < n && (s[j] == '+' || s[j] == '-')) j++;
            if (j < n && s[j] >= '0' && s[j] <= '9') {
                while (j < n && s[j] >= '0' && s[j] <= '9') j++;
                i = j;
            }
        }
        return i;
    }
    if (c == 't' && n - pos >= 4 && memcmp(s + pos, "true", 4) == 0) return pos + 4;
    if (c == 'f' && n - pos >= 5 && memcmp(s + pos, "false", 5) == 0) return pos + 5;
    if (c == 'n' && n - pos >= 4 && memcmp(s + pos, "null", 4) == 0) return pos + 4;
    if (c == '{' || c == '}' || c == '[' || c == ']' || c == ':' || c == ',') return pos + 1;
    return -1;
}

/* Start/end pairs, flattened. */
typedef struct {
    Py_ssize_t *v;
    Py_ssize_t len, cap;
} Spans;

static int spans_push(Spans *sp, Py_ssize_t a, Py_ssize_t b) {
    if (sp->len + 2 > sp->cap) {
        Py_ssize_t cap = sp->cap ? 2 * sp->cap : 64;
        Py_ssize_t *v = PyMem_Realloc(sp->v, (size_t)cap * sizeof(Py_ssize_t));
        if (!v) {
            PyErr_NoMemory();
            return -1;
        }
        sp->v = v;
        sp->cap = cap;
    }
    sp->v[sp->len++] = a;
    sp->v[sp->len++] = b;
    return 0;
}

/* The value spans of a line into sp (emptied first): 1 when the line is one JSON object or array,
 * 0 when not, -1 on a memory error (exception set). */
static int collect_spans(const unsigned char *s, Py_ssize_t n, int marker, Spans *sp) {
    unsigned char stack[MAX_DEPTH];
    Py_ssize_t depth = 0, pos = 0;
    int expect_key = 0;
    sp->len = 0;
    while (pos < n) {
        const Py_ssize_t start = pos, end = token_end(s, pos, n, marker);
        if (end < 0) return 0;
        pos = end;
        const unsigned char first = s[start];
        if (first == ' ' || first == '\t' || first == '\r' || first == ':') continue;
        if (first == '{' || first == '[') {
            if (depth == MAX_DEPTH) return 0; /* deeper than any log line: left to the other coders */
            stack[depth++] = first;
            expect_key = first == '{';
        } else if (first == '}' || first == ']') {
            if (!depth || stack[--depth] != (first == '}' ? '{' : '[')) return 0;
            expect_key = 0;
            if (!depth) {
                for (Py_ssize_t i = pos; i < n; i++)
                    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
            }
        } else if (first == ',') {
            if (!depth) return 0;
            expect_key = stack[depth - 1] == '{';
        } else if (!depth) {
            return 0;
        } else if (expect_key) {
            expect_key = 0;
        } else if (first == '"') {
            if (spans_push(sp, start + 1, pos - 1) < 0) return -1;
        } else if (first != 't' && first != 'f' && first != 'n') {
            if (spans_push(sp, start, pos) < 0) return -1;
        }
    }
    return !depth && n > 0 && (s[0] == '{' || s[0] == '[');
}

static PyObject *value_spans(PyObject *self, PyObject *args) {
    Py_buffer buffer;
    int marker;
    if (!PyArg_ParseTuple(args, "y*i", &buffer, &marker)) return NULL;
    Spans sp = {NULL, 0, 0};
    PyObject *result = NULL;
    const int ok = collect_spans(buffer.buf, buffer.len, marker, &sp);
    if (ok == 0) {
        result = Py_NewRef(Py_None);
    } else if (ok > 0 && (result = PyList_New(sp.len / 2)) != NULL) {
        for (Py_ssize_t i = 0; i < sp.len / 2; i++) {
            PyObject *span = Py_BuildValue("(nn)", sp.v[2 * i], sp.v[2 * i + 1]);
            if (!span) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(result, i, span);
        }
    }
    PyMem_Free(sp.v);
    PyBuffer_Release(&buffer);
    return result;
}

/* A growing output buffer that refuses to pass a limit. */
typedef struct {
    char *buf;
    Py_ssize_t len, cap, limit;
} Out;

static int out_add(Out *out, const unsigned char *s, Py_ssize_t n) {
    if (n > out->limit - out->len) {
        PyErr_SetString(PyExc_ValueError, "field references expand past the block's size");
        return -1;
    }
    if (out->len + n > out->cap) {
        Py_ssize_t cap = out->cap ? out->cap : 1024;
        while (cap < out->len + n) cap *= 2;
        char *buf = PyMem_Realloc(out->buf, (size_t)cap);
        if (!buf) {
            PyErr_NoMemory();
            return -1;
        }
        out->buf = buf;
        out->cap = cap;
    }
    memcpy(out->buf + out->len, s, (size_t)n);
    out->len += n;
    return 0;
}

static Py_ssize_t find_byte(const unsigned char *s, Py_ssize_t from, Py_ssize_t to, int byte) {
    if (from >= to) return -1;
    const unsigned char *at = memchr(s + from, byte, (size_t)(to - from));
    return at ? at - s : -1;
}

static int reference_error(const char *what) {
    PyErr_SetString(PyExc_ValueError, what);
    return -1;
}

/* One line with field references restored into out (fieldrefs.py's ``_restore_line``). */
static int restore_line(const unsigned char *s, Py_ssize_t n, int marker, Spans *sp, Out *out) {
    const int ok = collect_spans(s, n, marker, sp);
    if (ok < 0) return -1;
    if (!ok) return reference_error("a line with field references is not JSON");
    const Py_ssize_t count = sp->len / 2;
    Py_ssize_t previous = 0, at = find_byte(s, 0, n, marker);
    while (at >= 0) {
        Py_ssize_t lo = 0, hi = count; /* the last value starting at or before the marker */
        while (lo < hi) {
            const Py_ssize_t mid = (lo + hi) / 2;
            if (sp->v[2 * mid] <= at) lo = mid + 1;
            else hi = mid;
        }
        const Py_ssize_t index = lo - 1;
        if (index < 0 || at >= sp->v[2 * index + 1]) { /* outside every value (in a key): kept */
            at = find_byte(s, at + 1, n, marker);
            continue;
        }
        const Py_ssize_t a = sp->v[2 * index], b = sp->v[2 * index + 1];
        if (out_add(out, s + previous, a - previous) < 0) return -1;
        previous = b;
        Py_ssize_t done = a, ref = find_byte(s, a, b, marker);
        while (ref >= 0) { /* the lexer read every marker with the byte after it */
            if (ref + 1 == b) return reference_error("a field reference with no index");
            const unsigned char c = s[ref + 1];
            const Py_ssize_t k = c - (c > 10);
            if (k >= count) return reference_error("a field reference to no plain value");
            const Py_ssize_t a2 = sp->v[2 * k], b2 = sp->v[2 * k + 1];
            if (find_byte(s, a2, b2, marker) >= 0) return reference_error("a field reference to no plain value");
            if (out_add(out, s + done, ref - done) < 0 || out_add(out, s + a2, b2 - a2) < 0) return -1;
            done = ref + 2;
            ref = find_byte(s, done, b, marker);
        }
        if (out_add(out, s + done, b - done) < 0) return -1;
        at = find_byte(s, b, n, marker);
    }
    return out_add(out, s + previous, n - previous);
}

static PyObject *expand_block(PyObject *self, PyObject *args) {
    PyObject *data;
    int marker;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "Sin", &data, &marker, &limit)) return NULL;
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(data);
    const Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (marker < 0 || marker > 255 || find_byte(s, 0, n, marker) < 0) {
        if (n > limit) {
            PyErr_SetString(PyExc_ValueError, "field references expand past the block's size");
            return NULL;
        }
        return Py_NewRef(data);
    }
    Spans sp = {NULL, 0, 0};
    Out out = {NULL, 0, 0, limit};
    PyObject *result = NULL;
    Py_ssize_t line = 0;
    for (;;) {
        Py_ssize_t end = find_byte(s, line, n, '\n');
        if (end < 0) end = n;
        const int failed = find_byte(s, line, end, marker) >= 0
                               ? restore_line(s + line, end - line, marker, &sp, &out)
                               : out_add(&out, s + line, end - line);
        if (failed < 0) goto done;
        if (end == n) break;
        if (out_add(&out, (const unsigned char *)"\n", 1) < 0) goto done;
        line = end + 1;
    }
    result = PyBytes_FromStringAndSize(out.buf ? out.buf : "", out.len);
done:
    PyMem_Free(sp.v);
    PyMem_Free(out.buf);
    return result;
}

static PyMethodDef methods[] = {
    {"value_spans", value_spans, METH_VARARGS, "(start, end) of a JSON line's values, or None."},
    {"expand_block", expand_block, METH_VARARGS, "A block with its field references restored."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jsonlex", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jsonlex(void) { return PyModule_Create(&module); }
