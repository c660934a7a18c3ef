/* Compiled accelerator for wsserver.protocol.mask: XOR of a payload with the
 * 4-byte WebSocket masking key, 8 bytes at a time. Optional: mask.py falls back
 * to pure Python when this module is not built. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, key;
    Py_ssize_t offset = 0;
    if (!PyArg_ParseTuple(args, "y*y*|n:apply_mask", &data, &key, &offset))
        return NULL;
    if (key.len != 4) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "mask key must be 4 bytes");
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&key);
        return NULL;
    }
    const unsigned char *src = (const unsigned char *)data.buf;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
    const unsigned char *k = (const unsigned char *)key.buf;
    unsigned char rk[8];
    for (int i = 0; i < 8; i++)
        rk[i] = k[(i + offset) & 3];
    uint64_t k64;
    memcpy(&k64, rk, 8);
    Py_ssize_t n = data.len, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= k64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ rk[i & 7];
    PyBuffer_Release(&data);
    PyBuffer_Release(&key);
    return result;
}

static PyMethodDef methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, key, offset=0) -> bytes: XOR data with the 4-byte key."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wsserver.protocol._speedups", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
