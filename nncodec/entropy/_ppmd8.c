/* PPMd variant I rev. 1 (RAR's and ZIP's PPMd method), one-shot, for nncodec's streams.

   The model and coder are the LZMA SDK's public-domain 2017 code in nncodec/entropy/ppmd8/ (unchanged;
   two small type headers written for it). This file only wraps them: encode(data, order, memory) ->
   bytes and decode(coded, order, memory, size) -> bytes, with the "restart" model-restore method.
   Both run without the GIL (pyppmd 1.3.1, used before, takes the GIL back after every byte, so two
   threads coding at once ran slower than one) and free everything they allocate.

   The bytes written are those of pyppmd's Ppmd8Encoder(order, memory, RESTORE_METHOD_RESTART)
   .encode(data) followed by .flush(endmark=False) (tests/test_ppmd.py checks this): a stream without
   an end mark, whose length the caller records. The decoder reads zeros past the end of its input
   (a damaged stream then decodes to garbage of the asked size, which the caller's checksums catch),
   and reports a data error the model itself detects. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "Ppmd8.h"

static void *alloc_big(size_t size) { return malloc(size); }
static void free_big(void *address) { free(address); }
static const IAlloc allocator = {alloc_big, free_big};

#define MIN_ORDER 2
#define MIN_MEMORY (1 << 11)
#define MAX_MEMORY (0xFFFFFFFFu - 12 * 3)

typedef struct {
    IByteOut vt; /* first member: the coder calls vt.Write with a pointer to it */
    Byte *data;
    size_t size, capacity;
    int failed;
} OutBuffer;

static void out_write(const IByteOut *pp, Byte b) {
    OutBuffer *out = (OutBuffer *)(void *)pp;
    if (out->size == out->capacity) {
        size_t capacity = out->capacity ? 2 * out->capacity : 4096;
        Byte *grown = out->failed ? NULL : realloc(out->data, capacity);
        if (grown == NULL) {
            out->failed = 1;
            return;
        }
        out->data = grown;
        out->capacity = capacity;
    }
    out->data[out->size++] = b;
}

typedef struct {
    IByteIn vt;
    const Byte *data;
    size_t size, pos;
} InBuffer;

static Byte in_read(const IByteIn *pp) {
    InBuffer *in = (InBuffer *)(void *)pp;
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

static int check_params(int order, Py_ssize_t memory) {
    if (order < MIN_ORDER || order > PPMD8_MAX_ORDER) {
        PyErr_Format(PyExc_ValueError, "PPMd order must be %d..%d", MIN_ORDER, PPMD8_MAX_ORDER);
        return 0;
    }
    if (memory < MIN_MEMORY || (size_t)memory > MAX_MEMORY) {
        PyErr_SetString(PyExc_ValueError, "PPMd memory size out of range");
        return 0;
    }
    return 1;
}

static PyObject *ppmd8_encode(PyObject *self, PyObject *args) {
    Py_buffer data;
    int order;
    Py_ssize_t memory;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*in:encode", &data, &order, &memory)) return NULL;
    if (!check_params(order, memory)) {
        PyBuffer_Release(&data);
        return NULL;
    }
    CPpmd8 *model = malloc(sizeof(CPpmd8));
    OutBuffer out = {{out_write}, NULL, 0, 0, 0};
    int ok = 0;
    Py_BEGIN_ALLOW_THREADS
    if (model != NULL) {
        Ppmd8_Construct(model);
        if (Ppmd8_Alloc(model, (UInt32)memory, &allocator)) {
            Ppmd8_RangeEnc_Init(model);
            Ppmd8_Init(model, (unsigned)order, PPMD8_RESTORE_METHOD_RESTART);
            model->Stream.Out = &out.vt;
            const Byte *bytes = (const Byte *)data.buf;
            for (Py_ssize_t i = 0; i < data.len; i++) Ppmd8_EncodeSymbol(model, bytes[i]);
            Ppmd8_RangeEnc_FlushData(model);
            ok = !out.failed;
            Ppmd8_Free(model, &allocator);
        }
        free(model);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    PyObject *result = ok ? PyBytes_FromStringAndSize((const char *)out.data, (Py_ssize_t)out.size)
                          : PyErr_NoMemory();
    free(out.data);
    return result;
}

static PyObject *ppmd8_decode(PyObject *self, PyObject *args) {
    Py_buffer coded;
    int order;
    Py_ssize_t memory, size;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*inn:decode", &coded, &order, &memory, &size)) return NULL;
    if (size < 0) PyErr_SetString(PyExc_ValueError, "size must be >= 0");
    if (size < 0 || !check_params(order, memory)) {
        PyBuffer_Release(&coded);
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        PyBuffer_Release(&coded);
        return NULL;
    }
    Byte *dst = (Byte *)PyBytes_AS_STRING(result);
    CPpmd8 *model = malloc(sizeof(CPpmd8));
    InBuffer in = {{in_read}, (const Byte *)coded.buf, (size_t)coded.len, 0};
    const char *problem = NULL; /* a data error, or NULL */
    int no_memory = model == NULL;
    Py_BEGIN_ALLOW_THREADS
    if (model != NULL) {
        Ppmd8_Construct(model);
        if (!Ppmd8_Alloc(model, (UInt32)memory, &allocator)) {
            no_memory = 1;
        } else {
            Ppmd8_Init(model, (unsigned)order, PPMD8_RESTORE_METHOD_RESTART);
            model->Stream.In = &in.vt;
            if (!Ppmd8_RangeDec_Init(model)) {
                problem = "bad PPMd stream start";
            } else {
                for (Py_ssize_t i = 0; i < size; i++) {
                    int symbol = Ppmd8_DecodeSymbol(model);
                    if (symbol < 0) {
                        problem = symbol == -1 ? "PPMd end mark inside the data" : "PPMd data error";
                        break;
                    }
                    dst[i] = (Byte)symbol;
                }
            }
            Ppmd8_Free(model, &allocator);
        }
        free(model);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&coded);
    if (no_memory || problem != NULL) {
        Py_DECREF(result);
        if (no_memory) return PyErr_NoMemory();
        PyErr_SetString(PyExc_ValueError, problem);
        return NULL;
    }
    return result;
}

static PyMethodDef methods[] = {
    {"encode", ppmd8_encode, METH_VARARGS,
     "encode(data, order, memory) -> bytes: PPMd var. I rev. 1, restart method, no end mark."},
    {"decode", ppmd8_decode, METH_VARARGS,
     "decode(coded, order, memory, size) -> bytes: size bytes back; ValueError on a data error."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ppmd8", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ppmd8(void) { return PyModule_Create(&module); }
