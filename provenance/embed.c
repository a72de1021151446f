/* A manifest carried inside the text itself, invisibly, with the C2PA 2.x
 * wrapper for unstructured text (C2PA Technical Specification, "Embedding
 * manifests into unstructured text"; C2PATextManifestWrapper): U+FEFF
 * (zero width no-break space) and then the bytes
 *     magic "C2PATXT\0" (8) | version 1 (1) | payload length, u32 big-endian (4) | payload
 * each written as one variation selector: byte b < 16 as U+FE00 + b, else
 * U+E0100 + (b - 16). tracemark's payload is its JSON manifest, not a C2PA
 * JUMBF manifest store, so C2PA tools find the wrapper but not a C2PA
 * manifest in it. Decoding trusts nothing: every length is checked against
 * what is left of the text, and a broken wrapper is an error, never a guess. */
#include "tracemark/provenance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t magic[8] = {'C', '2', 'P', 'A', 'T', 'X', 'T', 0};
enum { WRAPPER_VERSION = 1, HEADER_BYTES = 13 };

/* UTF-8 of the variation selector of byte b: 3 bytes (U+FE0x) or 4 (U+E01xx). */
static size_t encode_selector(uint8_t b, char *out) {
    uint32_t cp = b < 16 ? 0xFE00u + b : 0xE0100u + (uint32_t)(b - 16);
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The byte a variation selector at s carries; its UTF-8 length in *n, or -1
 * when s does not start with a variation selector. */
static int decode_selector(const uint8_t *s, size_t left, size_t *n) {
    if (left >= 3 && s[0] == 0xEF && s[1] == 0xB8 && s[2] >= 0x80 && s[2] <= 0x8F) { /* U+FE00..FE0F */
        *n = 3;
        return s[2] - 0x80;
    }
    if (left >= 4 && s[0] == 0xF3 && s[1] == 0xA0 && (s[2] == 0x84 || s[2] == 0x85 || s[2] == 0x86 || s[2] == 0x87) &&
        s[3] >= 0x80 && s[3] <= 0xBF) { /* U+E0100..E01EF */
        uint32_t cp = 0xE0000u | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
        if (cp < 0xE0100 || cp > 0xE01EF) return -1;
        *n = 4;
        return (int)(cp - 0xE0100 + 16);
    }
    return -1;
}

static const char bom[3] = {(char)0xEF, (char)0xBB, (char)0xBF};

tm_status tm_provenance_extract(const char *text, size_t size, tm_embedded_manifest *out, tm_error *err) {
    memset(out, 0, sizeof *out);
    const uint8_t *t = (const uint8_t *)text;
    for (size_t i = 0; i + 3 <= size; i++) {
        if (memcmp(t + i, bom, 3) != 0) continue;
        size_t p = i + 3, n;
        int first = decode_selector(t + p, size - p, &n);
        if (first < 0) continue; /* a plain U+FEFF, not a wrapper */
        uint8_t header[HEADER_BYTES];
        size_t got = 0;
        while (got < HEADER_BYTES) {
            int b = decode_selector(t + p, size - p, &n);
            if (b < 0) return tm_error_set(err, TM_ERR_FORMAT, "embedded manifest at byte %zu: wrapper header cut short", i);
            header[got++] = (uint8_t)b;
            p += n;
        }
        if (memcmp(header, magic, sizeof magic) != 0)
            return tm_error_set(err, TM_ERR_FORMAT, "embedded manifest at byte %zu: not a C2PATXT wrapper (wrong magic)", i);
        if (header[8] != WRAPPER_VERSION)
            return tm_error_set(err, TM_ERR_UNSUPPORTED, "embedded manifest at byte %zu: wrapper version %u is not supported", i,
                                header[8]);
        uint32_t length = (uint32_t)header[9] << 24 | (uint32_t)header[10] << 16 | (uint32_t)header[11] << 8 | header[12];
        /* Each payload byte takes at least 3 bytes of text: check before allocating. */
        if (length > TM_MANIFEST_MAX_BYTES || (size_t)length > (size - p) / 3)
            return tm_error_set(err, TM_ERR_FORMAT, "embedded manifest at byte %zu: payload length %u exceeds the text", i, length);
        char *payload = malloc((size_t)length + 1);
        if (!payload) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        for (uint32_t k = 0; k < length; k++) {
            int b = decode_selector(t + p, size - p, &n);
            if (b < 0) {
                free(payload);
                return tm_error_set(err, TM_ERR_FORMAT, "embedded manifest at byte %zu: payload cut short after %u of %u bytes", i,
                                    k, length);
            }
            payload[k] = (char)b;
            p += n;
        }
        payload[length] = '\0';
        out->found = true;
        out->start = i;
        out->end = p;
        out->manifest = payload;
        out->manifest_size = length;
        return TM_OK;
    }
    return TM_OK;
}

tm_status tm_provenance_strip(const char *text, size_t size, const tm_embedded_manifest *found, char **out,
                              size_t *out_size, tm_error *err) {
    size_t start = found && found->found ? found->start : size, end = found && found->found ? found->end : size;
    if (start > end || end > size) return tm_error_set(err, TM_ERR_ARGUMENT, "wrapper range outside the text");
    size_t n = size - (end - start);
    char *copy = malloc(n + 1);
    if (!copy) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    memcpy(copy, text, start);
    memcpy(copy + start, text + end, size - end);
    copy[n] = '\0';
    *out = copy;
    *out_size = n;
    return TM_OK;
}

void tm_embedded_manifest_free(tm_embedded_manifest *found) {
    if (!found) return;
    free(found->manifest);
    memset(found, 0, sizeof *found);
}

tm_status tm_provenance_embed(const char *text, size_t size, const char *manifest, size_t manifest_size, char **out,
                              size_t *out_size, tm_error *err) {
    *out = NULL;
    *out_size = 0;
    if (manifest_size > TM_MANIFEST_MAX_BYTES)
        return tm_error_set(err, TM_ERR_ARGUMENT, "manifest larger than %d bytes", TM_MANIFEST_MAX_BYTES);
    tm_embedded_manifest old;
    tm_status status = tm_provenance_extract(text, size, &old, err);
    if (status != TM_OK) return status;
    size_t start = old.found ? old.start : size, end = old.found ? old.end : size;
    tm_embedded_manifest_free(&old);
    size_t kept = size - (end - start), wrapper_bytes, total;
    if (!tm_mul_size(HEADER_BYTES + manifest_size, 4, &wrapper_bytes) || !tm_add_size(kept, wrapper_bytes + 4, &total))
        return tm_error_set(err, TM_ERR_NOMEM, "manifest too large");
    char *result = malloc(total + 1);
    if (!result) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    memcpy(result, text, start);
    memcpy(result + start, text + end, size - end);
    size_t n = kept;
    memcpy(result + n, bom, 3);
    n += 3;
    uint8_t header[HEADER_BYTES];
    memcpy(header, magic, sizeof magic);
    header[8] = WRAPPER_VERSION;
    uint32_t length = (uint32_t)manifest_size;
    header[9] = (uint8_t)(length >> 24);
    header[10] = (uint8_t)(length >> 16);
    header[11] = (uint8_t)(length >> 8);
    header[12] = (uint8_t)length;
    for (size_t i = 0; i < HEADER_BYTES; i++) n += encode_selector(header[i], result + n);
    for (size_t i = 0; i < manifest_size; i++) n += encode_selector((uint8_t)manifest[i], result + n);
    result[n] = '\0';
    *out = result;
    *out_size = n;
    return TM_OK;
}
