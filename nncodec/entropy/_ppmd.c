/* PPMd variant H with the 7z range coder (7-Zip's "PPMd" method), one-shot, for nncodec's streams.

   The model and coder are Igor Pavlov's public-domain LZMA SDK code in nncodec/entropy/ppmd7/ (unchanged).
   This file only wraps them: encode(data, order, memory) -> bytes and
   decode(coded, order, memory, size) -> bytes. Both run without the GIL and free everything they
   allocate (pyppmd 1.3.1, used before, leaks its model struct per encoder and a reference to every
   input it encodes, so a long compression grew without bound).

   The bytes written are those of pyppmd's Ppmd7Encoder(order, memory).encode(data) followed by
   .flush(endmark=False): a stream without an end mark, whose length the caller records. The decoder
   reads zeros past the end of its input (a damaged stream then decodes to garbage of the asked size,
   which the caller's checksums catch), and reports a data error the model itself detects. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "Ppmd7.h"

static void *alloc_big(ISzAllocPtr p, size_t size) { (void)p; return malloc(size); }
static void free_big(ISzAllocPtr p, void *address) { (void)p; free(address); }
static const ISzAlloc allocator = {alloc_big, free_big};

typedef struct {
    IByteOut vt; /* first member: the coder calls vt.Write with a pointer to it */
    Byte *data;
    size_t size, capacity;
    int failed;
} OutBuffer;

static void out_write(IByteOutPtr pp, Byte b) {
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

static Byte in_read(IByteInPtr pp) {
    InBuffer *in = (InBuffer *)(void *)pp;
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

static int check_params(int order, Py_ssize_t memory) {
    if (order < PPMD7_MIN_ORDER || order > PPMD7_MAX_ORDER) {
        PyErr_Format(PyExc_ValueError, "PPMd order must be %d..%d", PPMD7_MIN_ORDER, PPMD7_MAX_ORDER);
        return 0;
    }
    if (memory < PPMD7_MIN_MEM_SIZE || (size_t)memory > PPMD7_MAX_MEM_SIZE) {
        PyErr_SetString(PyExc_ValueError, "PPMd memory size out of range");
        return 0;
    }
    return 1;
}

static PyObject *ppmd_encode(PyObject *self, PyObject *args) {
    Py_buffer data;
    int order;
    Py_ssize_t memory;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*in:encode", &data, &order, &memory)) return NULL;
    if (!check_params(order, memory)) {
        PyBuffer_Release(&data);
        return NULL;
    }
    CPpmd7 *model = malloc(sizeof(CPpmd7));
    OutBuffer out = {{out_write}, NULL, 0, 0, 0};
    int ok = 0;
    Py_BEGIN_ALLOW_THREADS
    if (model != NULL) {
        Ppmd7_Construct(model);
        if (Ppmd7_Alloc(model, (UInt32)memory, &allocator)) {
            Ppmd7_Init(model, (unsigned)order);
            model->rc.enc.Stream = &out.vt;
            Ppmd7z_Init_RangeEnc(model);
            Ppmd7z_EncodeSymbols(model, (const Byte *)data.buf, (const Byte *)data.buf + data.len);
            Ppmd7z_Flush_RangeEnc(model);
            ok = !out.failed;
            Ppmd7_Free(model, &allocator);
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

static PyObject *ppmd_decode(PyObject *self, PyObject *args) {
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
    CPpmd7 *model = malloc(sizeof(CPpmd7));
    InBuffer in = {{in_read}, (const Byte *)coded.buf, (size_t)coded.len, 0};
    const char *problem = NULL; /* a data error, or NULL */
    int no_memory = model == NULL;
    Py_BEGIN_ALLOW_THREADS
    if (model != NULL) {
        Ppmd7_Construct(model);
        if (!Ppmd7_Alloc(model, (UInt32)memory, &allocator)) {
            no_memory = 1;
        } else {
            Ppmd7_Init(model, (unsigned)order);
            model->rc.dec.Stream = &in.vt;
            if (!Ppmd7z_RangeDec_Init(&model->rc.dec)) {
                problem = "bad PPMd stream start";
            } else {
                for (Py_ssize_t i = 0; i < size; i++) {
                    int symbol = Ppmd7z_DecodeSymbol(model);
                    if (symbol < 0) {
                        problem = symbol == PPMD7_SYM_END ? "PPMd end mark inside the data" : "PPMd data error";
                        break;
                    }
                    dst[i] = (Byte)symbol;
                }
            }
            Ppmd7_Free(model, &allocator);
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
    {"encode", ppmd_encode, METH_VARARGS,
     "encode(data, order, memory) -> bytes: PPMd var. H (7z range coder), no end mark."},
    {"decode", ppmd_decode, METH_VARARGS,
     "decode(coded, order, memory, size) -> bytes: size bytes back; ValueError on a data error."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ppmd", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ppmd(void) { return PyModule_Create(&module); }
