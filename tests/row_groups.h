/* For the tests: a block-quantized matrix copied into row groups, written
 * from the layout's definition in tracemark/model.h (block i of row r at
 * (r - r % g) * row bytes + (i * g + r % g) * block bytes), not from the
 * engine's copy, so the two check each other. */
#ifndef TRACEMARK_TESTS_ROW_GROUPS_H
#define TRACEMARK_TESTS_ROW_GROUPS_H

#include <stdlib.h>
#include <string.h>

#include "tracemark/model.h"

/* A malloc'd copy of rows x cols weights of type at w in groups of g rows (rows % g == 0). */
static inline uint8_t *row_groups_copy(uint32_t type, const void *w, int64_t rows, int64_t cols, int32_t g) {
    size_t row_bytes = tm_quant_row_bytes(type, cols), block = (size_t)tm_ggml_block_bytes(type);
    uint8_t *out = malloc(row_bytes * (size_t)rows);
    if (!out) return NULL;
    for (int64_t r = 0; r < rows; r++)
        for (size_t i = 0; i < row_bytes / block; i++)
            memcpy(out + (size_t)(r - r % g) * row_bytes + (i * (size_t)g + (size_t)(r % g)) * block,
                   (const uint8_t *)w + (size_t)r * row_bytes + i * block, block);
    return out;
}

#endif
