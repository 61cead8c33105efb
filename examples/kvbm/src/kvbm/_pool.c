/*
 * kvbm._pool: the block allocator at the heart of a KV block manager.
 *
 * A GPU's KV cache is carved into a fixed number of equally sized blocks.
 * BlockPool hands out block ids in O(1) from a free stack, takes them back,
 * and refuses double frees and foreign ids, so a leak or a use-after-free in
 * the scheduler shows up as an exception instead of corrupted attention.
 * Built per CPython version (not abi3), as the matrix says for kvbm.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject_HEAD
    Py_ssize_t capacity;
    Py_ssize_t free_count;
    Py_ssize_t *free_stack; /* ids available, top at free_count - 1 */
    unsigned char *in_use;  /* 1 when the id is allocated */
} BlockPool;

static void BlockPool_dealloc(BlockPool *self)
{
    PyMem_Free(self->free_stack);
    PyMem_Free(self->in_use);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int BlockPool_init(BlockPool *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"num_blocks", NULL};
    Py_ssize_t capacity;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "n:BlockPool", keywords, &capacity)) {
        return -1;
    }
    if (capacity <= 0) {
        PyErr_SetString(PyExc_ValueError, "num_blocks must be positive");
        return -1;
    }
    PyMem_Free(self->free_stack);
    PyMem_Free(self->in_use);
    self->free_stack = PyMem_New(Py_ssize_t, capacity);
    self->in_use = PyMem_Calloc((size_t)capacity, 1);
    if (self->free_stack == NULL || self->in_use == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* Lowest ids on top, so a fresh pool allocates 0, 1, 2, ... */
    for (Py_ssize_t i = 0; i < capacity; i++) {
        self->free_stack[i] = capacity - 1 - i;
    }
    self->capacity = capacity;
    self->free_count = capacity;
    return 0;
}

static PyObject *BlockPool_allocate(BlockPool *self, PyObject *arg)
{
    Py_ssize_t count = PyLong_AsSsize_t(arg);
    if (count == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (count < 0) {
        PyErr_SetString(PyExc_ValueError, "cannot allocate a negative number of blocks");
        return NULL;
    }
    if (count > self->free_count) {
        PyErr_Format(PyExc_MemoryError, "requested %zd blocks, %zd of %zd free", count,
                     self->free_count, self->capacity);
        return NULL;
    }
    PyObject *ids = PyList_New(count);
    if (ids == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *id = PyLong_FromSsize_t(self->free_stack[self->free_count - 1 - i]);
        if (id == NULL) {
            Py_DECREF(ids);
            return NULL;
        }
        PyList_SET_ITEM(ids, i, id);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        self->in_use[self->free_stack[--self->free_count]] = 1;
    }
    return ids;
}

static PyObject *BlockPool_release(BlockPool *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "release() takes a sequence of block ids");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    /* Validate everything first so a bad id leaves the pool unchanged. */
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t id = PyLong_AsSsize_t(items[i]);
        if (id == -1 && PyErr_Occurred()) {
            goto fail;
        }
        if (id < 0 || id >= self->capacity) {
            PyErr_Format(PyExc_ValueError, "block id %zd is not in this pool (0..%zd)", id,
                         self->capacity - 1);
            goto fail;
        }
        if (self->in_use[id] != 1) { /* 0: free already; 2: listed twice in this call */
            PyErr_Format(PyExc_ValueError, "block %zd is not allocated (double free?)", id);
            goto fail;
        }
        self->in_use[id] = 2; /* marked for release: catches duplicates in one call */
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t id = PyLong_AsSsize_t(items[i]);
        self->in_use[id] = 0;
        self->free_stack[self->free_count++] = id;
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;

fail:
    /* Undo the marks of the ids validated before the bad one. */
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t id = PyLong_AsSsize_t(items[i]);
        if (id == -1 && PyErr_Occurred()) {
            break;
        }
        if (id >= 0 && id < self->capacity && self->in_use[id] == 2) {
            self->in_use[id] = 1;
        }
    }
    Py_DECREF(seq);
    return NULL;
}

static PyObject *BlockPool_get_free(BlockPool *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->free_count);
}

static PyObject *BlockPool_get_capacity(BlockPool *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->capacity);
}

static PyMethodDef BlockPool_methods[] = {
    {"allocate", (PyCFunction)BlockPool_allocate, METH_O,
     "allocate(n) -> list[int]: take n free block ids (MemoryError when too few are free)."},
    {"release", (PyCFunction)BlockPool_release, METH_O,
     "release(ids): give block ids back; all or nothing, double frees are errors."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef BlockPool_getset[] = {
    {"free", (getter)BlockPool_get_free, NULL, "number of free blocks", NULL},
    {"capacity", (getter)BlockPool_get_capacity, NULL, "number of blocks in the pool", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BlockPoolType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kvbm._pool.BlockPool",
    .tp_doc = "BlockPool(num_blocks): O(1) allocator of KV-cache block ids.",
    .tp_basicsize = sizeof(BlockPool),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)BlockPool_init,
    .tp_dealloc = (destructor)BlockPool_dealloc,
    .tp_methods = BlockPool_methods,
    .tp_getset = BlockPool_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kvbm._pool",
    .m_doc = "KV-cache block allocator (C).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__pool(void)
{
    if (PyType_Ready(&BlockPoolType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&BlockPoolType);
    if (PyModule_AddObject(m, "BlockPool", (PyObject *)&BlockPoolType) < 0) {
        Py_DECREF(&BlockPoolType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
