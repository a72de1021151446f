/* The weights as the engine multiplies by them. A kernel that takes G rows
 * at once reads them side by side; kept as the file holds them, that is G
 * short streams, a few hundred bytes each, which some CPUs' prefetchers do
 * not follow (an AMD EPYC VM read 8 interleaved rows at 9-11 GB/s and one
 * stream at 27). So each block-quantized layer matrix and the classifier are
 * copied once, on the first request, into row groups (tm_tensor: block i of
 * the G rows side by side), which the same kernels then read in address
 * order; the results are the same bits. The copies live as long as the
 * model; the file's pages under them are handed back to the kernel. The
 * token embedding stays in the file: it is read a row at a time. */
#include "tracemark/model.h"

#include "model_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static pthread_mutex_t engine_lock = PTHREAD_MUTEX_INITIALIZER;

/* The row group t's copy takes, or 1 where it stays as the file holds it. */
static int32_t group_for(const tm_tensor *t) {
    if (!t->data || !tm_quant_is_quantized(t->type)) return 1;
    int32_t g = tm_quant_row_group(t->type);
    return g > 1 && t->rows % g == 0 ? g : 1;
}

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

/* src's rows into dst in groups of g: for each group, block 0 of its g rows,
 * then block 1, ... Reads each source row in order. */
static void copy_in_groups(const tm_tensor *src, uint8_t *dst, int32_t g) {
    size_t row_bytes = tm_quant_row_bytes(src->type, src->cols), block = (size_t)tm_ggml_block_bytes(src->type);
    size_t blocks = row_bytes / block;
    const uint8_t *in = src->data;
    for (int64_t r0 = 0; r0 < src->rows; r0 += g) {
        uint8_t *group = dst + (size_t)r0 * row_bytes;
        for (int32_t k = 0; k < g; k++) {
            const uint8_t *row = in + (size_t)(r0 + k) * row_bytes;
            for (size_t i = 0; i < blocks; i++) memcpy(group + (i * (size_t)g + (size_t)k) * block, row + i * block, block);
        }
    }
}

/* Hand back the whole pages of the mapped file under [data, data + bytes):
 * the copy serves every later read. Only inside the file's read-only
 * mapping, where a page handed back is read again from the file if touched
 * (on any other memory MADV_DONTNEED would zero it). */
static void release_file_pages(const tm_mapped_file *file, const void *data, size_t bytes) {
    const uint8_t *p = data, *base = file->data;
    if (!base || p < base || bytes > file->size || (size_t)(p - base) > file->size - bytes) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = round_up((uintptr_t)data, page), end = ((uintptr_t)data + bytes) / page * page;
    if (end > start) madvise((void *)start, end - start, MADV_DONTNEED);
}

/* The engine's view of one matrix: the copy at *cursor, or the file's;
 * release: hand back the file's pages (not where another view, the tied
 * token embedding, still reads them). */
static tm_tensor engine_tensor(const tm_model *m, const tm_tensor *t, uint8_t **cursor, bool release) {
    tm_tensor out = *t;
    int32_t g = group_for(t);
    if (g == 1) return out;
    size_t bytes = tm_quant_row_bytes(t->type, t->cols) * (size_t)t->rows;
    copy_in_groups(t, *cursor, g);
    if (release) release_file_pages(tm_model_get_file(m), t->data, bytes);
    out.data = *cursor;
    out.row_group = g;
    *cursor += round_up(bytes, 64);
    return out;
}

static size_t copy_bytes(const tm_tensor *t) {
    return group_for(t) > 1 ? round_up(tm_quant_row_bytes(t->type, t->cols) * (size_t)t->rows, 64) : 0;
}

static tm_status build(tm_model *m, tm_error *err) {
    int32_t n = m->config.n_layers;
    size_t total = copy_bytes(&m->classifier);
    for (int32_t l = 0; l < n; l++) {
        const tm_layer_weights *w = &m->layers[l];
        const tm_tensor *matrices[] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
        for (size_t i = 0; i < sizeof matrices / sizeof *matrices; i++) total += copy_bytes(matrices[i]);
    }
    tm_layer_weights *layers = tm_alloc_array((size_t)(n > 0 ? n : 1), sizeof *layers, err);
    if (!layers) return TM_ERR_NOMEM;
    uint8_t *arena = NULL;
    if (total > 0) {
        arena = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (arena == MAP_FAILED) {
            free(layers);
            return tm_error_set(err, TM_ERR_NOMEM, "out of memory for the engine's copy of the weights (%zu bytes)",
                                total);
        }
#ifdef MADV_HUGEPAGE
        madvise(arena, total, MADV_HUGEPAGE); /* fewer TLB misses on every token; a hint only */
#endif
    }
    uint8_t *cursor = arena;
    for (int32_t l = 0; l < n; l++) {
        const tm_layer_weights *w = &m->layers[l];
        tm_layer_weights *e = &layers[l];
        *e = *w;
        e->wq = engine_tensor(m, &w->wq, &cursor, true);
        e->wk = engine_tensor(m, &w->wk, &cursor, true);
        e->wv = engine_tensor(m, &w->wv, &cursor, true);
        e->wo = engine_tensor(m, &w->wo, &cursor, true);
        e->w_gate = engine_tensor(m, &w->w_gate, &cursor, true);
        e->w_up = engine_tensor(m, &w->w_up, &cursor, true);
        e->w_down = engine_tensor(m, &w->w_down, &cursor, true);
    }
    m->engine_classifier = engine_tensor(m, &m->classifier, &cursor, m->classifier.data != m->token_embedding.data);
    if (arena) mprotect(arena, total, PROT_READ);
    m->engine_layers = layers;
    m->engine_arena = arena;
    m->engine_arena_bytes = total;
    return TM_OK;
}

tm_status tm_model_engine_weights(const tm_model *model, const tm_layer_weights **layers, const tm_tensor **classifier,
                                  tm_error *err) {
    /* The copies are a cache of the weights, made once under the lock; the
     * model is otherwise read-only, so the const is cast away only here. */
    tm_model *m = (tm_model *)model;
    tm_status status = TM_OK;
    pthread_mutex_lock(&engine_lock);
    if (!m->engine_layers) status = build(m, err);
    pthread_mutex_unlock(&engine_lock);
    if (status != TM_OK) return status;
    *layers = m->engine_layers;
    *classifier = &m->engine_classifier;
    return TM_OK;
}

void tm_model_free_engine_weights(tm_model *model) {
    free(model->engine_layers);
    if (model->engine_arena) munmap(model->engine_arena, model->engine_arena_bytes);
    model->engine_layers = NULL;
    model->engine_arena = NULL;
}
