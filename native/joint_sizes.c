/* Joint compressed sizes C(x + t) of one source x against every target t, exactly as zlib and lz4 compute them.

   The vendored libraries are compiled unmodified into this one translation unit, with every symbol hidden, so
   that they never clash with the interpreter's own libz or with python-lz4. This file only adds:

   - deflate (levels 1-9): x is deflated once; the stream is snapshotted; each target is deflated from the
     snapshot with Z_FINISH and the snapshot restored, touching only what the target changed and a later target
     could read: the head[] entries of the positions it inserted, the prev[] entries it aliased past w_size, the
     symbol buffer if a block was flushed midway. (The window bytes after x need no restore: zlib never lets
     bytes past the input decide a match, see "nice_match > s->lookahead" in longest_match.) The last block is
     sized, not encoded: its bit length comes from zlib's own Huffman construction and choice of stored, static
     or dynamic block. Pairs that could slide the window are deflated whole, from a reset stream.
   - lz4 frames: one C loop over the targets, with x + t built in one buffer.

   Python checks every size this module gives against the interpreter's zlib and python-lz4 before using it
   (zipfit_pipeline/engine/native.py): a disagreement means the pure-Python path scores instead. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* zlib 1.2.13: trees.c first, so that deflate.c's flushes can be routed through sized_flush_block below. */
#include "trees.c"
static void sized_flush_block(deflate_state *s, charf *buf, ulg stored_len, int last);
#define _tr_flush_block sized_flush_block
#include "deflate.c"
#undef _tr_flush_block
#include "zutil.c"
#include "adler32.c"
#include "crc32.c"

/* lz4 1.9.4, the release python-lz4 4.x bundles. */
#define LZ4F_STATIC_LINKING_ONLY
#include "lz4.c"
#include "lz4hc.c"
#include "lz4frame.c"
#include "xxhash.c"

/* ---------------------------------------------------------------------------------------------------------- */
/* deflate                                                                                                    */

typedef struct {
    ulg size;          /* bytes of the whole raw deflate stream, set when the last block is sized */
    int flushed_early; /* a block was flushed before the last one (the symbol buffer was reused) */
} sizing;

/* zlib's allocator hooks, as zutil.c's zcalloc (plain malloc): the stream's opaque pointer is its sizing result. */
static voidpf stream_alloc(voidpf opaque, uInt items, uInt size) {
    (void)opaque;
    return size && items > (uInt)-1 / size ? NULL : malloc((size_t)items * size);
}
static void stream_free(voidpf opaque, voidpf address) { (void)opaque; free(address); }

/* Sizing needs each symbol's code length, not its code: zlib's build_tree (trees.c) without gen_codes, with the
   same heap and the same order of merges. Each heap slot carries its node's key, frequency << 8 | depth, which
   orders nodes exactly as trees.c's `smaller` does (a lower frequency first, then a depth no greater), so every
   comparison reads one array instead of two. The code lengths then come from zlib's own gen_bitlen. */
static void keyed_downheap(int *heap, ulg *keys, int length, int k) {
    int v = heap[k];
    ulg key = keys[k];
    int j = k << 1;
    while (j <= length) {
        j += (j < length) & (keys[j + 1] <= keys[j]); /* trees.c's choice of son, without a branch to mispredict */
        if (key <= keys[j]) break;
        heap[k] = heap[j];
        keys[k] = keys[j];
        k = j;
        j <<= 1;
    }
    heap[k] = v;
    keys[k] = key;
}

static void sized_build_tree(deflate_state *s, tree_desc *desc) {
    ct_data *tree = desc->dyn_tree;
    const ct_data *stree = desc->stat_desc->static_tree;
    int elems = desc->stat_desc->elems;
    int *heap = s->heap;
    ulg keys[2 * L_CODES + 2];
    int n, m, node, max_code = -1;

    s->heap_len = 0, s->heap_max = HEAP_SIZE;
    for (n = 0; n < elems; n++) {
        if (tree[n].Freq != 0) {
            heap[++(s->heap_len)] = max_code = n;
            keys[s->heap_len] = (ulg)tree[n].Freq << 8;
            s->depth[n] = 0;
        } else {
            tree[n].Len = 0;
        }
    }
    while (s->heap_len < 2) {
        node = heap[++(s->heap_len)] = (max_code < 2 ? ++max_code : 0);
        tree[node].Freq = 1;
        keys[s->heap_len] = 1 << 8;
        s->depth[node] = 0;
        s->opt_len--;
        if (stree) s->static_len -= stree[node].Len;
    }
    desc->max_code = max_code;
    keys[s->heap_len + 1] = 0; /* read, never used, when the last node has one son */
    for (n = s->heap_len / 2; n >= 1; n--) keyed_downheap(heap, keys, s->heap_len, n);
    node = elems;
    do {
        n = heap[1];
        heap[1] = heap[s->heap_len];
        keys[1] = keys[s->heap_len--];
        keyed_downheap(heap, keys, s->heap_len, 1);
        m = heap[1];
        heap[--(s->heap_max)] = n;
        heap[--(s->heap_max)] = m;
        tree[node].Freq = tree[n].Freq + tree[m].Freq;
        s->depth[node] = (uch)((s->depth[n] >= s->depth[m] ? s->depth[n] : s->depth[m]) + 1);
        tree[n].Dad = tree[m].Dad = (ush)node;
        heap[1] = node;
        keys[1] = ((ulg)tree[node].Freq << 8) | s->depth[node];
        node++;
        keyed_downheap(heap, keys, s->heap_len, 1);
    } while (s->heap_len >= 2);
    heap[--(s->heap_max)] = heap[1];
    gen_bitlen(s, desc);
}

/* build_bl_tree (trees.c) on sized_build_tree: adds the cost of sending the two trees to opt_len. */
static void sized_bl_tree(deflate_state *s) {
    int max_blindex;
    scan_tree(s, (ct_data *)s->dyn_ltree, s->l_desc.max_code);
    scan_tree(s, (ct_data *)s->dyn_dtree, s->d_desc.max_code);
    sized_build_tree(s, (tree_desc *)(&(s->bl_desc)));
    for (max_blindex = BL_CODES - 1; max_blindex >= 3; max_blindex--)
        if (s->bl_tree[bl_order[max_blindex]].Len != 0) break;
    s->opt_len += 3 * ((ulg)max_blindex + 1) + 5 + 5 + 4;
}

/* Every block but the last is written as zlib writes it. The last one is only sized: the bits already written,
   plus the block zlib would choose (the same comparison as _tr_flush_block), rounded up to whole bytes. */
static void sized_flush_block(deflate_state *s, charf *buf, ulg stored_len, int last) {
    sizing *result = (sizing *)s->strm->opaque;
    if (!last) {
        _tr_flush_block(s, buf, stored_len, last);
        result->flushed_early = 1;
        return;
    }
    sized_build_tree(s, (tree_desc *)(&(s->l_desc)));
    sized_build_tree(s, (tree_desc *)(&(s->d_desc)));
    sized_bl_tree(s);
    ulg opt_lenb = (s->opt_len + 3 + 7) >> 3;
    ulg static_lenb = (s->static_len + 3 + 7) >> 3;
    if (static_lenb <= opt_lenb || s->strategy == Z_FIXED) opt_lenb = static_lenb;
    ulg written_bits = ((ulg)s->strm->total_out + s->pending) * 8 + (ulg)s->bi_valid;
    if (stored_len + 4 <= opt_lenb && buf != (charf *)0)
        result->size = ((written_bits + 3 + 7) >> 3) + 4 + stored_len;
    else if (static_lenb == opt_lenb)
        result->size = (written_bits + 3 + s->static_len + 7) >> 3;
    else
        result->size = (written_bits + 3 + s->opt_len + 7) >> 3;
    init_block(s);
}

/* A deflate stream with its output buffer, and the snapshot of it after x. */
typedef struct {
    z_stream strm;
    sizing result;
    Bytef *out;
    size_t out_size;
    z_stream saved_strm;
    deflate_state saved_state;
    Posf *saved_head;
    Posf *saved_prev;       /* only when a target can reach past w_size, where prev[] indices alias x's */
    uchf *saved_symbols;    /* the symbols of x's open block, in case a target fills the buffer */
} joint_deflate;

static int joint_open(joint_deflate *j, int level, size_t longest_input) {
    memset(j, 0, sizeof *j);
    j->strm.zalloc = stream_alloc;
    j->strm.zfree = stream_free;
    j->strm.opaque = &j->result;
    if (deflateInit2(&j->strm, level, Z_DEFLATED, -MAX_WBITS, DEF_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    deflate_state *s = (deflate_state *)j->strm.state;
    j->out_size = deflateBound(&j->strm, (uLong)longest_input) + 64;
    j->out = malloc(j->out_size);
    j->saved_head = malloc((size_t)s->hash_size * sizeof(Pos));
    j->saved_prev = malloc((size_t)s->w_size * sizeof(Pos));
    j->saved_symbols = malloc((size_t)s->lit_bufsize * 4);
    if (!j->out || !j->saved_head || !j->saved_prev || !j->saved_symbols) return -1;
    return 0;
}

static void joint_close(joint_deflate *j) {
    deflateEnd(&j->strm);
    free(j->out);
    free(j->saved_head);
    free(j->saved_prev);
    free(j->saved_symbols);
}

static void start_output(joint_deflate *j) {
    j->strm.next_out = j->out;
    j->strm.avail_out = (uInt)j->out_size;
    j->result.size = 0;
    j->result.flushed_early = 0;
}

/* The size of deflate(a + b) from a reset stream: the plain way, for pairs that could slide the window. */
static long deflate_whole(joint_deflate *j, const Bytef *a, size_t a_len, const Bytef *b, size_t b_len) {
    deflateReset(&j->strm);
    start_output(j);
    j->strm.next_in = (z_const Bytef *)a;
    j->strm.avail_in = (uInt)a_len;
    if (a_len && deflate(&j->strm, Z_NO_FLUSH) != Z_OK) return -1;
    j->strm.next_in = (z_const Bytef *)b;
    j->strm.avail_in = (uInt)b_len;
    if (deflate(&j->strm, Z_FINISH) != Z_STREAM_END) return -1;
    return (long)j->result.size;
}

/* Deflate x without finishing and keep what each target will change. */
static int snapshot_after(joint_deflate *j, const Bytef *x, size_t x_len, size_t longest_target) {
    deflate_state *s = (deflate_state *)j->strm.state;
    deflateReset(&j->strm);
    start_output(j);
    j->strm.next_in = (z_const Bytef *)x;
    j->strm.avail_in = (uInt)x_len;
    if (x_len && deflate(&j->strm, Z_NO_FLUSH) != Z_OK) return -1;
    j->result.flushed_early = 0;
    j->saved_strm = j->strm;
    memcpy(&j->saved_state, s, sizeof *s);
    memcpy(j->saved_head, s->head, (size_t)s->hash_size * sizeof(Pos));
    if (s->strstart + s->lookahead + longest_target > s->w_size)
        memcpy(j->saved_prev, s->prev, (size_t)s->w_size * sizeof(Pos));
    memcpy(j->saved_symbols, s->sym_buf, s->sym_next);
    return 0;
}

/* Undo what deflating one target from the snapshot changed. */
static void restore(joint_deflate *j) {
    deflate_state *s = (deflate_state *)j->strm.state;
    const deflate_state *saved = &j->saved_state;
    ulg first = saved->strstart - saved->insert;     /* the first position the target's run inserted */
    ulg end = s->strstart + s->lookahead;            /* the end of x + t in the window */
    const Bytef *w = s->window;
    for (ulg p = first; p + 2 < end; p++) {
        unsigned h = (((unsigned)w[p] << (2 * s->hash_shift)) ^ ((unsigned)w[p + 1] << s->hash_shift) ^ w[p + 2])
                     & s->hash_mask;
        s->head[h] = j->saved_head[h];
    }
    if (end > s->w_size) {
        for (ulg p = first; p < end; p++) s->prev[p & s->w_mask] = j->saved_prev[p & s->w_mask];
    }
    if (j->result.flushed_early) memcpy(s->sym_buf, j->saved_symbols, saved->sym_next);
    memcpy(s, saved, sizeof *s);
    j->strm = j->saved_strm;
}

static long deflate_from_snapshot(joint_deflate *j, const Bytef *t, size_t t_len) {
    j->strm.next_in = (z_const Bytef *)t;
    j->strm.avail_in = (uInt)t_len;
    j->result.size = 0;
    j->result.flushed_early = 0;
    long size = deflate(&j->strm, Z_FINISH) == Z_STREAM_END ? (long)j->result.size : -1;
    restore(j);
    return size;
}

/* Past this many bytes of x + t the window may slide, which rewrites all of head[] and prev[]. */
static size_t no_slide_limit(const joint_deflate *j) {
    const deflate_state *s = (const deflate_state *)j->strm.state;
    return (size_t)(s->w_size + MAX_DIST(s));
}

static int deflate_joint(const Bytef *x, size_t x_len, Py_buffer *targets, Py_ssize_t n, int level, long *sizes) {
    size_t longest = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if ((size_t)targets[i].len > longest) longest = (size_t)targets[i].len;
    joint_deflate j;
    if (joint_open(&j, level, x_len + longest) != 0) { joint_close(&j); return -1; }
    size_t limit = no_slide_limit(&j);
    int snapshotted = 0, failed = 0;
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        const Bytef *t = (const Bytef *)targets[i].buf;
        size_t t_len = (size_t)targets[i].len;
        if (x_len + t_len < limit) {
            if (!snapshotted) {
                failed = snapshot_after(&j, x, x_len, longest) != 0;
                snapshotted = 1;
                if (failed) break;
            }
            sizes[i] = deflate_from_snapshot(&j, t, t_len);
        } else {
            sizes[i] = deflate_whole(&j, x, x_len, t, t_len);
            snapshotted = 0;
        }
        failed = sizes[i] < 0;
    }
    joint_close(&j);
    return failed ? -1 : 0;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* lz4 frames, with python-lz4's defaults for lz4.frame.compress(data, compression_level=level)               */

static int lz4_joint(const char *x, size_t x_len, Py_buffer *targets, Py_ssize_t n, int level, long *sizes) {
    size_t longest = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if ((size_t)targets[i].len > longest) longest = (size_t)targets[i].len;
    LZ4F_preferences_t preferences;
    memset(&preferences, 0, sizeof preferences);
    preferences.compressionLevel = level;
    preferences.frameInfo.blockMode = LZ4F_blockLinked;
    preferences.frameInfo.contentSize = x_len + longest;
    size_t bound = LZ4F_compressFrameBound(x_len + longest, &preferences);
    char *joined = malloc(x_len + longest + 1);
    char *out = malloc(bound);
    int failed = joined == NULL || out == NULL;
    if (!failed) memcpy(joined, x, x_len);
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        size_t t_len = (size_t)targets[i].len;
        memcpy(joined + x_len, targets[i].buf, t_len);
        preferences.frameInfo.contentSize = x_len + t_len;
        size_t size = LZ4F_compressFrame(out, bound, joined, x_len + t_len, &preferences);
        failed = LZ4F_isError(size);
        sizes[i] = (long)size;
    }
    free(joined);
    free(out);
    return failed ? -1 : 0;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Python                                                                                                     */

typedef int (*joint_fn)(const Bytef *, size_t, Py_buffer *, Py_ssize_t, int, long *);

static int lz4_joint_bytes(const Bytef *x, size_t x_len, Py_buffer *t, Py_ssize_t n, int level, long *sizes) {
    return lz4_joint((const char *)x, x_len, t, n, level, sizes);
}

/* joint(x, targets, level) -> list of sizes; the GIL is released while compressing. */
static PyObject *joint_sizes(PyObject *args, joint_fn fn, const char *what, int lowest, int highest) {
    Py_buffer x;
    PyObject *sequence;
    int level;
    if (!PyArg_ParseTuple(args, "y*Oi", &x, &sequence, &level)) return NULL;
    if (level < lowest || level > highest) {
        PyBuffer_Release(&x);
        return PyErr_Format(PyExc_ValueError, "%s: level must be %d-%d, got %d", what, lowest, highest, level);
    }
    PyObject *targets = PySequence_Fast(sequence, "targets must be a sequence of bytes");
    if (targets == NULL) { PyBuffer_Release(&x); return NULL; }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(targets), got = 0;
    Py_buffer *views = PyMem_Calloc(n ? n : 1, sizeof(Py_buffer));
    long *sizes = PyMem_Calloc(n ? n : 1, sizeof(long));
    PyObject *result = NULL;
    if (views == NULL || sizes == NULL) { PyErr_NoMemory(); goto done; }
    for (; got < n; got++)
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(targets, got), &views[got], PyBUF_SIMPLE) != 0) goto done;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = fn((const Bytef *)x.buf, (size_t)x.len, views, n, level, sizes);
    Py_END_ALLOW_THREADS
    if (failed) { PyErr_Format(PyExc_RuntimeError, "%s failed (out of memory or a library error)", what); goto done; }
    result = PyList_New(n);
    for (Py_ssize_t i = 0; result != NULL && i < n; i++) PyList_SET_ITEM(result, i, PyLong_FromLong(sizes[i]));
done:
    for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyMem_Free(sizes);
    Py_DECREF(targets);
    PyBuffer_Release(&x);
    return result;
}

static PyObject *py_deflate_joint_sizes(PyObject *self, PyObject *args) {
    (void)self;
    /* Not level 0, which stores: sizing its last block as a compressed one would be wrong. */
    return joint_sizes(args, deflate_joint, "deflate", 1, 9);
}

static PyObject *py_lz4_joint_sizes(PyObject *self, PyObject *args) {
    (void)self;
    return joint_sizes(args, lz4_joint_bytes, "lz4 frame compression", INT_MIN, INT_MAX);
}

static PyMethodDef methods[] = {
    {"deflate_joint_sizes", py_deflate_joint_sizes, METH_VARARGS,
     "deflate_joint_sizes(x, targets, level) -> raw deflate sizes of x + t for every t (levels 1-9)"},
    {"lz4_joint_sizes", py_lz4_joint_sizes, METH_VARARGS,
     "lz4_joint_sizes(x, targets, level) -> lz4 frame sizes of x + t for every t (python-lz4's defaults)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_joint_sizes", NULL, -1, methods};

PyMODINIT_FUNC PyInit__joint_sizes(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddStringConstant(m, "ZLIB_VERSION", ZLIB_VERSION) != 0 ||
        PyModule_AddStringConstant(m, "LZ4_VERSION", LZ4_VERSION_STRING) != 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
