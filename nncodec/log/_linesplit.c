/* A log line cut into literal text and variables in C: exactly ``VARIABLE.split(line)`` of
 * nncodec/log/templates.py (the Python reference, which the tests compare with this on random and
 * real lines), where
 *
 *   VARIABLE = ((?<![\w.])(?:\d+\.\d+|\d{1,3}(?:\.\d{1,3}){3})(?![\w.])|(?<!\w)(?=\w*\d)\w+)
 *
 * and \w is [A-Za-z0-9_] (a bytes pattern). Worked out from the regex: a match can only start where
 * a run of \w bytes starts (the byte before is not \w). There, if the byte before is not '.' and the
 * run starts with a digit, the first alternative is tried: digits, '.', digits (each run taken
 * whole: a shorter one leaves a digit where '.' or the look-ahead must fail), or four runs of 1-3
 * digits joined by single dots; either is kept only when the byte after it is neither \w nor '.'.
 * Else the second alternative takes the whole \w run when it holds a digit. No match is empty.
 *
 * split(line: bytes) -> list of bytes: literal, variable, literal, ..., literal (as re.split with one
 * group). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int is_word(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Length of the digit run at i (0 if none). */
static Py_ssize_t digits_at(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) {
    Py_ssize_t j = i;
    while (j < n && is_digit(s[j])) j++;
    return j - i;
}

/* Whether the look-ahead (?![\w.]) holds at i. */
static int ends_number(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) {
    return i >= n || (!is_word(s[i]) && s[i] != '.');
}

/* End of the first alternative's match at p (a run start not after '.'), or -1. */
static Py_ssize_t number_end(const unsigned char *s, Py_ssize_t p, Py_ssize_t n) {
    Py_ssize_t first = digits_at(s, p, n);
    if (!first) return -1;
    /* \d+\.\d+ */
    Py_ssize_t dot = p + first;
    if (dot < n && s[dot] == '.') {
        Py_ssize_t second = digits_at(s, dot + 1, n);
        if (second && ends_number(s, dot + 1 + second, n)) return dot + 1 + second;
    }
    /* \d{1,3}(?:\.\d{1,3}){3} */
    Py_ssize_t i = p;
    for (int group = 0; group < 4; group++) {
        if (group) {
            if (i >= n || s[i] != '.') return -1;
            i++;
        }
        Py_ssize_t run = digits_at(s, i, n);
        if (run < 1 || run > 3) return -1;
        i += run;
    }
    return ends_number(s, i, n) ? i : -1;
}

static int append_slice(PyObject *list, const unsigned char *s, Py_ssize_t a, Py_ssize_t b) {
    PyObject *piece = PyBytes_FromStringAndSize((const char *)s + a, b - a);
    if (!piece) return -1;
    int failed = PyList_Append(list, piece);
    Py_DECREF(piece);
    return failed;
}

static PyObject *split(PyObject *self, PyObject *args) {
    Py_buffer buffer;
    if (!PyArg_ParseTuple(args, "y*", &buffer)) return NULL;
    const unsigned char *s = buffer.buf;
    Py_ssize_t n = buffer.len, literal = 0, p = 0;
    PyObject *parts = PyList_New(0);
    if (!parts) goto fail;
    while (p < n) {
        if (!is_word(s[p]) || (p > 0 && is_word(s[p - 1]))) {
            p++;
            continue;
        }
        Py_ssize_t run_end = p;
        int has_digit = 0;
        while (run_end < n && is_word(s[run_end])) has_digit |= is_digit(s[run_end++]);
        Py_ssize_t end = -1;
        if (!(p > 0 && s[p - 1] == '.')) end = number_end(s, p, n);
        if (end < 0 && has_digit) end = run_end;
        if (end < 0) {
            p = run_end;  /* no match inside a run of \w bytes */
            continue;
        }
        if (append_slice(parts, s, literal, p) < 0 || append_slice(parts, s, p, end) < 0) goto fail;
        literal = p = end;
    }
    if (append_slice(parts, s, literal, n) < 0) goto fail;
    PyBuffer_Release(&buffer);
    return parts;
fail:
    Py_XDECREF(parts);
    PyBuffer_Release(&buffer);
    return NULL;
}

static PyMethodDef methods[] = {
    {"split", split, METH_VARARGS, "A log line as literal, variable, ..., literal (VARIABLE.split)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_linesplit", NULL, -1, methods};

PyMODINIT_FUNC PyInit__linesplit(void) { return PyModule_Create(&module); }
