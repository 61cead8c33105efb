/*
 * ai_dynamo_runtime._blockhash: KV-cache block hashing for prefix-aware routing.
 *
 * A request's token ids are cut into fixed-size blocks; each full block gets a
 * 64-bit hash that chains the hash of the block before it, so two requests
 * share a block hash exactly when they share the whole prefix up to it. A
 * router compares these hashes with what each worker holds in its KV cache.
 *
 * The hash is XXH64 (https://github.com/Cyan4973/xxHash, spec in
 * doc/xxhash_spec.md), written out here so the extension needs nothing but
 * the C compiler and libc. Only the stable ABI (Py_LIMITED_API 3.10) is used,
 * so one cp310-abi3 wheel serves every CPython from 3.10 on.
 */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x030A0000
#include <Python.h>
#include <stdint.h>

#define PRIME64_1 0x9E3779B185EBCA87ULL
#define PRIME64_2 0xC2B2AE3D27D4EB4FULL
#define PRIME64_3 0x165667B19E3779F9ULL
#define PRIME64_4 0x85EBCA77C2B2AE63ULL
#define PRIME64_5 0x27D4EB2F165667C5ULL

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* Little-endian loads byte by byte: correct on any host, no alignment needs. */
static uint64_t read64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint32_t read32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t round64(uint64_t acc, uint64_t input)
{
    acc += input * PRIME64_2;
    acc = rotl64(acc, 31);
    return acc * PRIME64_1;
}

static uint64_t merge_round(uint64_t acc, uint64_t val)
{
    acc ^= round64(0, val);
    return acc * PRIME64_1 + PRIME64_4;
}

static uint64_t xxh64(const unsigned char *p, size_t len, uint64_t seed)
{
    const unsigned char *end = p + len;
    uint64_t h;

    if (len >= 32) {
        const unsigned char *limit = end - 32;
        uint64_t v1 = seed + PRIME64_1 + PRIME64_2;
        uint64_t v2 = seed + PRIME64_2;
        uint64_t v3 = seed;
        uint64_t v4 = seed - PRIME64_1;
        do {
            v1 = round64(v1, read64(p));
            v2 = round64(v2, read64(p + 8));
            v3 = round64(v3, read64(p + 16));
            v4 = round64(v4, read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = merge_round(h, v1);
        h = merge_round(h, v2);
        h = merge_round(h, v3);
        h = merge_round(h, v4);
    } else {
        h = seed + PRIME64_5;
    }
    h += (uint64_t)len;

    while (p + 8 <= end) {
        h ^= round64(0, read64(p));
        h = rotl64(h, 27) * PRIME64_1 + PRIME64_4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)read32(p) * PRIME64_1;
        h = rotl64(h, 23) * PRIME64_2 + PRIME64_3;
        p += 4;
    }
    while (p < end) {
        h ^= (*p) * PRIME64_5;
        h = rotl64(h, 11) * PRIME64_1;
        p++;
    }
    h ^= h >> 33;
    h *= PRIME64_2;
    h ^= h >> 29;
    h *= PRIME64_3;
    h ^= h >> 32;
    return h;
}

PyDoc_STRVAR(xxh64_doc,
             "xxh64(data: bytes, seed: int = 0) -> int\n\n"
             "The XXH64 hash of ``data`` as an unsigned 64-bit integer.");

static PyObject *py_xxh64(PyObject *self, PyObject *args)
{
    const char *data;
    Py_ssize_t len;
    unsigned long long seed = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "y#|K:xxh64", &data, &len, &seed)) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(xxh64((const unsigned char *)data, (size_t)len, seed));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

PyDoc_STRVAR(block_hashes_doc,
             "block_hashes(tokens: Iterable[int], block_size: int, seed: int = 0) -> list[int]\n\n"
             "One chained XXH64 hash per *full* block of ``block_size`` token ids.\n"
             "Block i hashes the little-endian bytes of hash i-1 (``seed`` for the\n"
             "first block) followed by its token ids as little-endian uint32.");

static PyObject *py_block_hashes(PyObject *self, PyObject *args)
{
    PyObject *tokens;
    Py_ssize_t block_size;
    unsigned long long seed = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "On|K:block_hashes", &tokens, &block_size, &seed)) {
        return NULL;
    }
    if (block_size <= 0) {
        PyErr_SetString(PyExc_ValueError, "block_size must be positive");
        return NULL;
    }
    if (block_size > (PY_SSIZE_T_MAX - 8) / 4) {
        PyErr_SetString(PyExc_OverflowError, "block_size is too large");
        return NULL;
    }
    PyObject *iterator = PyObject_GetIter(tokens);
    if (iterator == NULL) {
        return NULL;
    }
    PyObject *result = PyList_New(0);
    size_t buffer_len = 8 + 4 * (size_t)block_size;
    unsigned char *buffer = PyMem_Malloc(buffer_len);
    if (result == NULL || buffer == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    uint64_t parent = seed;
    Py_ssize_t filled = 0;
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        unsigned long token = PyLong_AsUnsignedLong(item);
        Py_DECREF(item);
        if (token == (unsigned long)-1 && PyErr_Occurred()) {
            goto fail;
        }
        if (token > 0xFFFFFFFFUL) {
            PyErr_SetString(PyExc_OverflowError, "token ids must fit in 32 bits");
            goto fail;
        }
        unsigned char *slot = buffer + 8 + 4 * filled;
        slot[0] = (unsigned char)token;
        slot[1] = (unsigned char)(token >> 8);
        slot[2] = (unsigned char)(token >> 16);
        slot[3] = (unsigned char)(token >> 24);
        if (++filled == block_size) {
            put64(buffer, parent);
            parent = xxh64(buffer, buffer_len, seed);
            PyObject *value = PyLong_FromUnsignedLongLong(parent);
            if (value == NULL || PyList_Append(result, value) < 0) {
                Py_XDECREF(value);
                goto fail;
            }
            Py_DECREF(value);
            filled = 0;
        }
    }
    if (PyErr_Occurred()) {
        goto fail;
    }
    PyMem_Free(buffer);
    Py_DECREF(iterator);
    return result;

fail:
    PyMem_Free(buffer);
    Py_DECREF(iterator);
    Py_XDECREF(result);
    return NULL;
}

static PyMethodDef methods[] = {
    {"xxh64", py_xxh64, METH_VARARGS, xxh64_doc},
    {"block_hashes", py_block_hashes, METH_VARARGS, block_hashes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "ai_dynamo_runtime._blockhash",
    "Chained XXH64 hashes of KV-cache token blocks (C, stable ABI).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__blockhash(void) { return PyModule_Create(&module); }
