/* Optional compiled accelerator of wsserver.protocol (pure-Python fallbacks
 * exist for both functions and are tested the same way):
 *
 * apply_mask(data, key, offset=0) -> bytes
 *     XOR of a payload with the 4-byte WebSocket masking key, 8 bytes at a time.
 *
 * scan_messages(buf, pos, max_payload, out) -> int
 *     The hot path of ServerConnection.receive_data: from `pos`, takes every
 *     complete frame that is by itself a whole, valid, uncompressed message
 *     (FIN set, RSV clear, masked, text or binary, length <= max_payload, and
 *     for text, valid UTF-8), appends its unmasked payload to `out` (str for
 *     text, bytes for binary) and returns the position of the first frame it
 *     did not take. It makes no protocol decision of its own: anything else
 *     (control frames, fragments, errors, incomplete frames) stops it and is
 *     left to the Python parser. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* dst[i] = src[i] ^ key[(offset + i) % 4], 8 bytes at a time. */
static inline void
unmask_into(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char *k,
            Py_ssize_t offset)
{
    unsigned char rk[8];
    for (int i = 0; i < 8; i++)
        rk[i] = k[(i + offset) & 3];
    uint64_t k64;
    memcpy(&k64, rk, 8);
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= k64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ rk[i & 7];
}

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
    unmask_into((unsigned char *)PyBytes_AS_STRING(result), (const unsigned char *)data.buf,
                data.len, (const unsigned char *)key.buf, offset);
    PyBuffer_Release(&data);
    PyBuffer_Release(&key);
    return result;
}

static PyObject *
scan_messages(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos;
    unsigned long long max_payload;
    PyObject *out;
    if (!PyArg_ParseTuple(args, "y*nKO!:scan_messages", &view, &pos, &max_payload,
                          &PyList_Type, &out))
        return NULL;
    const unsigned char *buf = (const unsigned char *)view.buf;
    const Py_ssize_t n = view.len;
    unsigned char stack[2048];
    while (pos >= 0 && n - pos >= 2) {
        const unsigned char b0 = buf[pos], b1 = buf[pos + 1];
        const int opcode = b0 & 0x0F;
        if ((b0 & 0xF0) != 0x80 || (opcode != 1 && opcode != 2) || !(b1 & 0x80))
            break;
        unsigned long long length = b1 & 0x7F;
        Py_ssize_t header = 2;
        if (length == 126) {
            if (n - pos < 4)
                break;
            length = ((unsigned long long)buf[pos + 2] << 8) | buf[pos + 3];
            header = 4;
        } else if (length == 127) {
            if (n - pos < 10)
                break;
            length = 0;
            for (int i = 0; i < 8; i++)
                length = (length << 8) | buf[pos + 2 + i];
            header = 10;
        }
        const Py_ssize_t available = n - pos - header - 4;
        if (available < 0 || length > (unsigned long long)available || length > max_payload)
            break; /* incomplete, or too big: the Python parser decides */
        const unsigned char *key = buf + pos + header;
        const unsigned char *src = key + 4;
        const Py_ssize_t len = (Py_ssize_t)length;
        PyObject *message;
        if (opcode == 2) {
            message = PyBytes_FromStringAndSize(NULL, len);
            if (message == NULL)
                goto error;
            unmask_into((unsigned char *)PyBytes_AS_STRING(message), src, len, key, 0);
        } else {
            unsigned char *tmp = len <= (Py_ssize_t)sizeof(stack) ? stack : PyMem_Malloc(len ? len : 1);
            if (tmp == NULL) {
                PyErr_NoMemory();
                goto error;
            }
            unmask_into(tmp, src, len, key, 0);
            message = PyUnicode_DecodeUTF8((const char *)tmp, len, "strict");
            if (tmp != stack)
                PyMem_Free(tmp);
            if (message == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                    goto error;
                PyErr_Clear(); /* invalid UTF-8: the Python parser fails the connection */
                break;
            }
        }
        int appended = PyList_Append(out, message);
        Py_DECREF(message);
        if (appended < 0)
            goto error;
        pos += header + 4 + len;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(pos);
error:
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, key, offset=0) -> bytes: XOR data with the 4-byte key."},
    {"scan_messages", scan_messages, METH_VARARGS,
     "scan_messages(buf, pos, max_payload, out) -> int: take whole single-frame messages."},
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
