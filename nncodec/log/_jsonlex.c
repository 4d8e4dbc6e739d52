/* JSON-line value spans in C: nncodec/log/rewrites/fieldrefs.py's ``value_spans_reference`` (the
 * Python reference, which the tests compare with this on random and real lines), token for token.
 *
 * value_spans(line: bytes, marker: int) -> list of (start, end) or None
 *   marker: -1 for none, else a byte that a string may hold followed by any byte.
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

static int add_span(PyObject *list, Py_ssize_t a, Py_ssize_t b) {
    PyObject *span = Py_BuildValue("(nn)", a, b);
    if (!span) return -1;
    int failed = PyList_Append(list, span);
    Py_DECREF(span);
    return failed;
}

static PyObject *value_spans(PyObject *self, PyObject *args) {
    Py_buffer buffer;
    int marker;
    if (!PyArg_ParseTuple(args, "y*i", &buffer, &marker)) return NULL;
    const unsigned char *s = buffer.buf;
    const Py_ssize_t n = buffer.len;
    PyObject *spans = PyList_New(0);
    unsigned char stack[MAX_DEPTH];
    Py_ssize_t depth = 0, pos = 0;
    int expect_key = 0, ok = 1;
    if (!spans) goto fail;
    while (pos < n) {
        const Py_ssize_t start = pos, end = token_end(s, pos, n, marker);
        if (end < 0) {
            ok = 0;
            break;
        }
        pos = end;
        const unsigned char first = s[start];
        if (first == ' ' || first == '\t' || first == '\r' || first == ':') continue;
        if (first == '{' || first == '[') {
            if (depth == MAX_DEPTH) { /* deeper than any log line: left to the other coders */
                ok = 0;
                break;
            }
            stack[depth++] = first;
            expect_key = first == '{';
        } else if (first == '}' || first == ']') {
            if (!depth || stack[--depth] != (first == '}' ? '{' : '[')) {
                ok = 0;
                break;
            }
            expect_key = 0;
            if (!depth) {
                for (Py_ssize_t i = pos; i < n; i++)
                    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') ok = 0;
                if (!ok) break;
            }
        } else if (first == ',') {
            if (!depth) {
                ok = 0;
                break;
            }
            expect_key = stack[depth - 1] == '{';
        } else if (!depth) {
            ok = 0;
            break;
        } else if (expect_key) {
            expect_key = 0;
        } else if (first == '"') {
            if (add_span(spans, start + 1, pos - 1) < 0) goto fail;
        } else if (first != 't' && first != 'f' && first != 'n') {
            if (add_span(spans, start, pos) < 0) goto fail;
        }
    }
    if (!ok || depth || n == 0 || (s[0] != '{' && s[0] != '[')) ok = 0;
    PyBuffer_Release(&buffer);
    if (!ok) {
        Py_DECREF(spans);
        Py_RETURN_NONE;
    }
    return spans;
fail:
    Py_XDECREF(spans);
    PyBuffer_Release(&buffer);
    return NULL;
}

static PyMethodDef methods[] = {
    {"value_spans", value_spans, METH_VARARGS, "(start, end) of a JSON line's values, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jsonlex", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jsonlex(void) { return PyModule_Create(&module); }
