/* Private plumbing shared by the files of provenance/: the canonical form of
 * a jansson value (canonical.c) and the signed-bytes rule of manifests
 * (manifest.c). Nothing outside provenance/ may include this header. */
#ifndef TRACEMARK_PROVENANCE_INTERNAL_H
#define TRACEMARK_PROVENANCE_INTERNAL_H

#include "tracemark/provenance.h"

#include <jansson.h>

tm_status tm_canonical_json_value(json_t *value, char **out, size_t *out_size, tm_error *err);

/* The RFC 8785 bytes a manifest's signature covers: every member but "signature". */
tm_status tm_manifest_signed_bytes(const tm_manifest *manifest, char **out, size_t *size, tm_error *err);
/* The decoded 64-byte signature of a parsed manifest; false when unsigned. */
bool tm_manifest_signature(const tm_manifest *manifest, uint8_t signature[TM_ED25519_SIGNATURE_BYTES]);

#endif
