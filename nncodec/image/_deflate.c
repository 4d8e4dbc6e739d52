/* nncodec.image._deflate: the vendored zlib 1.2.13 deflate (nncodec/image/zlib/), for byte-exact PNG.
 *
 *   compress(data, level, wbits, memlevel, strategy) -> bytes
 *       the zlib stream deflateInit2(level, Z_DEFLATED, wbits, memlevel, strategy) writes for data,
 *       fed in one piece and finished with Z_FINISH (for levels >= 1 deflate's output does not
 *       depend on how the input is fed or how large the output buffer is).
 *   matches(data, target, level, wbits, memlevel, strategy) -> bool
 *       whether compress(...) == target, stopping at the first byte that differs: trying a recipe
 *       that is wrong usually costs one deflate block, not the whole image.
 *
 * Same contract as Python's zlib.compressobj(level, DEFLATED, wbits, memlevel, strategy), which
 * nncodec/image/pngdeflate.py uses when this extension is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "zlib.h"

#define CHUNK 65536

/* Z_SOLO builds have no default allocator */
static voidpf allocate(voidpf opaque, uInt items, uInt size) {
    (void)opaque;
    return calloc(items, size);
}

static void release(voidpf opaque, voidpf address) {
    (void)opaque;
    free(address);
}

static int start(z_stream *z, int level, int wbits, int memlevel, int strategy) {
    memset(z, 0, sizeof(*z));
    z->zalloc = allocate;
    z->zfree = release;
    int status = deflateInit2(z, level, Z_DEFLATED, wbits, memlevel, strategy);
    if (status != Z_OK) {
        PyErr_Format(PyExc_ValueError, "deflate parameters rejected (level %d, wbits %d, memlevel %d, strategy %d)",
                     level, wbits, memlevel, strategy);
        return 0;
    }
    return 1;
}

static PyObject *py_compress(PyObject *self, PyObject *args) {
    Py_buffer data;
    int level, wbits, memlevel, strategy;
    if (!PyArg_ParseTuple(args, "y*iiii", &data, &level, &wbits, &memlevel, &strategy)) return NULL;
    z_stream z;
    if (!start(&z, level, wbits, memlevel, strategy)) {
        PyBuffer_Release(&data);
        return NULL;
    }
    uLong bound = deflateBound(&z, (uLong)data.len);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)bound);
    int status = Z_MEM_ERROR;
    if (out != NULL) {
        z.next_in = (Bytef *)data.buf;
        z.avail_in = (uInt)data.len;
        z.next_out = (Bytef *)PyBytes_AS_STRING(out);
        z.avail_out = (uInt)bound;
        Py_BEGIN_ALLOW_THREADS
        status = deflate(&z, Z_FINISH);
        Py_END_ALLOW_THREADS
    }
    uLong written = z.total_out;
    deflateEnd(&z);
    PyBuffer_Release(&data);
    if (out == NULL) return NULL;
    if (status != Z_STREAM_END) {
        Py_DECREF(out);
        return PyErr_Format(PyExc_RuntimeError, "deflate did not finish (status %d)", status);
    }
    if (_PyBytes_Resize(&out, (Py_ssize_t)written) < 0) return NULL;
    return out;
}

static PyObject *py_matches(PyObject *self, PyObject *args) {
    Py_buffer data, target;
    int level, wbits, memlevel, strategy;
    if (!PyArg_ParseTuple(args, "y*y*iiii", &data, &target, &level, &wbits, &memlevel, &strategy)) return NULL;
    z_stream z;
    if (!start(&z, level, wbits, memlevel, strategy)) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&target);
        return NULL;
    }
    const unsigned char *want = (const unsigned char *)target.buf;
    size_t want_len = (size_t)target.len, done = 0;
    unsigned char buffer[CHUNK];
    int same = 1, status = Z_OK;
    Py_BEGIN_ALLOW_THREADS
    z.next_in = (Bytef *)data.buf;
    z.avail_in = (uInt)data.len;
    while (same && status == Z_OK) {
        z.next_out = buffer;
        z.avail_out = CHUNK;
        status = deflate(&z, Z_FINISH);
        size_t got = CHUNK - z.avail_out;
        if (status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR) same = 0;
        else if (done + got > want_len || memcmp(buffer, want + done, got) != 0) same = 0;
        done += got;
        if (status == Z_BUF_ERROR && got == 0) same = 0; /* no progress: cannot happen with Z_FINISH */
    }
    Py_END_ALLOW_THREADS
    deflateEnd(&z);
    PyBuffer_Release(&data);
    PyBuffer_Release(&target);
    return PyBool_FromLong(same && status == Z_STREAM_END && done == want_len);
}

static PyMethodDef methods[] = {
    {"compress", py_compress, METH_VARARGS, "zlib stream of data for (level, wbits, memlevel, strategy)"},
    {"matches", py_matches, METH_VARARGS, "whether compress(data, ...) equals target (stops early)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_deflate", NULL, -1, methods};

PyMODINIT_FUNC PyInit__deflate(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL) PyModule_AddStringConstant(m, "ZLIB_VERSION", ZLIB_VERSION);
    return m;
}
