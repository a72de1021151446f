/* Manifests (schema v1, docs/manifest.md): building one from content and a
 * generation record, signing it (Ed25519 over the RFC 8785 form of every
 * member but "signature"), writing it, and parsing untrusted ones strictly:
 * every member present with its exact type and form, nothing unknown, so
 * that a verifier never acts on a field it did not check. A manifest must
 * never carry a secret: the watermark is named by its key id only. */
#include "provenance_internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tm_manifest {
    json_t *root;
};

enum { SIGNATURE_BASE64_SIZE = 88 }; /* 64 bytes in base64 with padding */

static bool is_hex(const char *s, size_t n) {
    if (strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static tm_manifest *new_manifest(tm_error *err) {
    tm_manifest *m = calloc(1, sizeof *m);
    if (!m) tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    return m;
}

void tm_manifest_free(tm_manifest *manifest) {
    if (!manifest) return;
    json_decref(manifest->root);
    free(manifest);
}

/* ---- building ---------------------------------------------------------------- */

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Generation facts from a `generate --json` record (docs/manifest.md says
 * which of its members are read); unknown members are ignored here because
 * the record is ours and grows, but each member read is type-checked. */
static tm_status generator_from_record(const char *record, size_t size, json_t **out, json_t **watermark,
                                       tm_error *err) {
    json_error_t jerr;
    json_t *gen = json_loadb(record, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!gen) return tm_error_set(err, TM_ERR_FORMAT, "generation record: line %d: %s", jerr.line, jerr.text);
    tm_status status = TM_OK;
    json_t *model = json_null(), *sampling = json_null(), *seed = json_null();
    *watermark = json_null();
    if (!json_is_object(gen)) {
        status = tm_error_set(err, TM_ERR_FORMAT, "generation record: expected a JSON object");
        goto done;
    }
    json_t *path = json_object_get(gen, "model"), *sha = json_object_get(gen, "model_sha256");
    if (path) {
        if (!json_is_string(path)) { status = tm_error_set(err, TM_ERR_FORMAT, "generation record: \"model\" must be a string"); goto done; }
        char hex[TM_SHA256_HEX_SIZE] = "";
        if (sha && !(json_is_string(sha) && is_hex(json_string_value(sha), 64))) {
            status = tm_error_set(err, TM_ERR_FORMAT, "generation record: \"model_sha256\" must be 64 hex digits");
            goto done;
        }
        if (sha) snprintf(hex, sizeof hex, "%s", json_string_value(sha));
        else if (tm_file_exists(json_string_value(path))) {
            tm_error ignored = {0}; /* a model not at hand here is recorded without its hash */
            if (tm_sha256_file_hex(json_string_value(path), hex, &ignored) != TM_OK) hex[0] = '\0';
        }
        json_decref(model);
        model = json_pack("{s:s, s:o}", "name", base_name(json_string_value(path)), "sha256",
                          hex[0] ? json_string(hex) : json_null());
    }
    json_t *s = json_object_get(gen, "sampling");
    if (s) {
        const char *name;
        json_t *value;
        if (!json_is_object(s)) { status = tm_error_set(err, TM_ERR_FORMAT, "generation record: \"sampling\" must be an object"); goto done; }
        json_object_foreach(s, name, value) {
            if (!(json_is_number(value) || json_is_string(value) || json_is_boolean(value))) {
                status = tm_error_set(err, TM_ERR_FORMAT, "generation record: sampling.%s must be a number, string or boolean", name);
                goto done;
            }
        }
        json_decref(sampling);
        sampling = json_object();
        json_object_foreach(s, name, value) {
            /* A real becomes its RFC 8785 text: a manifest holds no reals, so
             * every spelling of it is a different value (0.80000000000000004
             * and 0.80000000000000005 are one double). */
            char number[40];
            json_t *kept = json_copy(value);
            if (json_is_real(value)) {
                if (tm_canonical_number(json_real_value(value), number, sizeof number, err) != TM_OK) {
                    json_decref(kept);
                    status = err ? err->code : TM_ERR_FORMAT;
                    goto done;
                }
                json_decref(kept);
                kept = json_string(number);
            }
            json_object_set_new(sampling, name, kept);
        }
    }
    json_t *sd = json_object_get(gen, "seed");
    if (sd) {
        if (!json_is_integer(sd)) { status = tm_error_set(err, TM_ERR_FORMAT, "generation record: \"seed\" must be an integer"); goto done; }
        /* generate prints the uint64 seed through a signed JSON integer;
         * the manifest keeps it exact as a decimal string. */
        char text[32];
        snprintf(text, sizeof text, "%llu", (unsigned long long)(uint64_t)json_integer_value(sd));
        json_decref(seed);
        seed = json_string(text);
    }
    json_t *w = json_object_get(gen, "watermark");
    if (w && !json_is_null(w)) {
        json_t *scheme = json_object_get(w, "scheme"), *parameters = json_object_get(w, "parameters"),
               *key_id = json_object_get(w, "key_id");
        if (!json_is_string(scheme) || !json_is_string(parameters) || !json_is_string(key_id) ||
            !is_hex(json_string_value(key_id), TM_WM_KEY_ID_SIZE - 1)) {
            status = tm_error_set(err, TM_ERR_FORMAT,
                                  "generation record: \"watermark\" must hold strings scheme, parameters and a 16-hex-digit key_id");
            goto done;
        }
        *watermark = json_pack("{s:O, s:O, s:O}", "scheme", scheme, "parameters", parameters, "key_id", key_id);
    }
done:
    if (status == TM_OK)
        *out = json_pack("{s:s, s:s, s:O, s:O, s:O}", "tool", "tracemark", "tracemark_version", TRACEMARK_VERSION,
                         "model", model, "sampling", sampling, "seed", seed);
    json_decref(model);
    json_decref(sampling);
    json_decref(seed);
    json_decref(gen);
    if (status == TM_OK && (!*out || !*watermark)) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    if (status != TM_OK) {
        json_decref(*watermark);
        *watermark = NULL;
    }
    return status;
}

tm_status tm_manifest_create(tm_manifest **out, const void *content, size_t size, const char *generation,
                             size_t generation_size, tm_error *err) {
    *out = NULL;
    json_t *generator = NULL, *watermark = NULL;
    if (generation) {
        tm_status status = generator_from_record(generation, generation_size, &generator, &watermark, err);
        if (status != TM_OK) return status;
    } else {
        generator = json_pack("{s:s, s:s, s:n, s:n, s:n}", "tool", "tracemark", "tracemark_version", TRACEMARK_VERSION,
                              "model", "sampling", "seed");
        watermark = json_null();
    }
    char hex[TM_SHA256_HEX_SIZE];
    tm_sha256_hex(content, size, hex);
    tm_manifest *m = new_manifest(err);
    if (m)
        m->root = json_pack("{s:s, s:i, s:{s:s, s:I}, s:o, s:o, s:s}", "type", TM_MANIFEST_TYPE, "version",
                            TM_MANIFEST_VERSION, "content", "sha256", hex, "length", (json_int_t)size, "generator",
                            generator, "watermark", watermark, "digital_source_type", TM_DIGITAL_SOURCE_TYPE);
    else {
        json_decref(generator);
        json_decref(watermark);
        return TM_ERR_NOMEM;
    }
    if (!m->root) {
        free(m);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory building a manifest");
    }
    *out = m;
    return TM_OK;
}

tm_status tm_manifest_signed_bytes(const tm_manifest *manifest, char **out, size_t *size, tm_error *err) {
    json_t *copy = json_copy(manifest->root);
    if (!copy) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    json_object_del(copy, "signature");
    tm_status status = tm_canonical_json_value(copy, out, size, err);
    json_decref(copy);
    return status;
}

tm_status tm_manifest_sign(tm_manifest *manifest, const tm_signing_key *key, int64_t created, tm_error *err) {
    time_t t = (time_t)created;
    struct tm utc;
    char when[32];
    if (!gmtime_r(&t, &utc) || utc.tm_year + 1900 < 1970 || utc.tm_year + 1900 > 9999 ||
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc) != 20)
        return tm_error_set(err, TM_ERR_ARGUMENT, "creation time out of range");
    json_object_del(manifest->root, "signature");
    if (json_object_set_new(manifest->root, "created", json_string(when)) ||
        json_object_set_new(manifest->root, "signer",
                            json_pack("{s:s, s:s}", "algorithm", "Ed25519", "fingerprint", tm_signing_key_fingerprint(key))))
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    char *bytes = NULL;
    size_t size = 0;
    tm_status status = tm_manifest_signed_bytes(manifest, &bytes, &size, err);
    uint8_t signature[TM_ED25519_SIGNATURE_BYTES];
    if (status == TM_OK) status = tm_signing_key_sign(key, bytes, size, signature, err);
    free(bytes);
    if (status != TM_OK) return status;
    char base64[SIGNATURE_BASE64_SIZE + 4];
    EVP_EncodeBlock((unsigned char *)base64, signature, TM_ED25519_SIGNATURE_BYTES);
    if (json_object_set_new(manifest->root, "signature", json_string(base64)))
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    return TM_OK;
}

/* Members in the order docs/manifest.md lists them (jansson keeps insertion order). */
static const char *const member_order[] = {"type", "version", "content", "generator", "watermark", "created",
                                           "digital_source_type", "signer", "signature"};

static tm_status serialize(const tm_manifest *manifest, size_t flags, char **out, size_t *size, tm_error *err) {
    json_t *ordered = json_object();
    for (size_t i = 0; ordered && i < sizeof member_order / sizeof member_order[0]; i++) {
        json_t *v = json_object_get(manifest->root, member_order[i]);
        if (v) json_object_set(ordered, member_order[i], v);
    }
    char *text = ordered ? json_dumps(ordered, flags) : NULL;
    json_decref(ordered);
    if (!text) return tm_error_set(err, TM_ERR_NOMEM, "out of memory writing a manifest");
    size_t n = strlen(text);
    char *with_newline = realloc(text, n + 2);
    if (!with_newline) {
        free(text);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }
    if (flags & JSON_INDENT(2)) with_newline[n++] = '\n';
    with_newline[n] = '\0';
    *out = with_newline;
    *size = n;
    return TM_OK;
}

tm_status tm_manifest_serialize(const tm_manifest *manifest, char **out, size_t *size, tm_error *err) {
    return serialize(manifest, JSON_INDENT(2) | JSON_PRESERVE_ORDER, out, size, err);
}

tm_status tm_manifest_serialize_compact(const tm_manifest *manifest, char **out, size_t *size, tm_error *err) {
    return serialize(manifest, JSON_COMPACT | JSON_PRESERVE_ORDER, out, size, err);
}

tm_status tm_provenance_sign_generation(const void *content, size_t size, const char *generation,
                                        size_t generation_size, const tm_signing_key *key, char **out,
                                        size_t *out_size, tm_error *err) {
    *out = NULL;
    *out_size = 0;
    tm_manifest *m = NULL;
    tm_status status = tm_manifest_create(&m, content, size, generation, generation_size, err);
    if (status == TM_OK) status = tm_manifest_sign(m, key, (int64_t)time(NULL), err);
    if (status == TM_OK) status = tm_manifest_serialize(m, out, out_size, err);
    tm_manifest_free(m);
    return status;
}

/* ---- strict parsing ----------------------------------------------------------- */

/* Every member of object is one of names, and each name is there. */
static tm_status exact_members(json_t *object, const char *where, const char *const *names, size_t n, tm_error *err) {
    if (!json_is_object(object)) return tm_error_set(err, TM_ERR_FORMAT, "field %s: expected an object", where);
    const char *name;
    json_t *value;
    json_object_foreach(object, name, value) {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++) known = strcmp(name, names[i]) == 0;
        if (!known) return tm_error_set(err, TM_ERR_FORMAT, "field %s%s%s: unknown field", where[0] ? where : "",
                                        where[0] ? "." : "", name);
    }
    for (size_t i = 0; i < n; i++)
        if (!json_object_get(object, names[i]))
            return tm_error_set(err, TM_ERR_FORMAT, "field %s%s%s: missing", where[0] ? where : "", where[0] ? "." : "",
                                names[i]);
    return TM_OK;
}

static tm_status want_string(json_t *v, const char *field, tm_error *err) {
    return json_is_string(v) ? TM_OK : tm_error_set(err, TM_ERR_FORMAT, "field %s: expected a string", field);
}

static tm_status want_hex(json_t *v, const char *field, size_t digits, tm_error *err) {
    if (!json_is_string(v) || !is_hex(json_string_value(v), digits))
        return tm_error_set(err, TM_ERR_FORMAT, "field %s: expected %zu lowercase hex digits", field, digits);
    return TM_OK;
}

static bool decode_signature(const char *text, uint8_t out[TM_ED25519_SIGNATURE_BYTES]) {
    if (strlen(text) != SIGNATURE_BASE64_SIZE) return false;
    for (size_t i = 0; i < SIGNATURE_BASE64_SIZE; i++) {
        char c = text[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
                  (c == '=' && i >= SIGNATURE_BASE64_SIZE - 2);
        if (!ok) return false;
    }
    unsigned char bytes[TM_ED25519_SIGNATURE_BYTES + 3];
    if (EVP_DecodeBlock(bytes, (const unsigned char *)text, SIGNATURE_BASE64_SIZE) != TM_ED25519_SIGNATURE_BYTES + 2)
        return false;
    /* Canonical base64 only: re-encoding must give the same text, so that no
     * two spellings (unused low bits set) carry one signature. */
    char again[SIGNATURE_BASE64_SIZE + 4];
    EVP_EncodeBlock((unsigned char *)again, bytes, TM_ED25519_SIGNATURE_BYTES);
    if (strcmp(again, text) != 0) return false;
    memcpy(out, bytes, TM_ED25519_SIGNATURE_BYTES);
    return true;
}

static bool valid_timestamp(const char *s) {
    /* YYYY-MM-DDTHH:MM:SSZ, and a real date and time */
    static const char pattern[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(s) != sizeof pattern - 1) return false;
    for (size_t i = 0; i < sizeof pattern - 1; i++)
        if (pattern[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != pattern[i]) return false;
    struct tm t = {0};
    if (!strptime(s, "%Y-%m-%dT%H:%M:%SZ", &t)) return false;
    int month = t.tm_mon + 1, day = t.tm_mday, year = t.tm_year + 1900;
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month >= 1 && month <= 12 && day >= 1 && day <= days[month - 1] && !(month == 2 && day == 29 && !leap) &&
           t.tm_hour <= 23 && t.tm_min <= 59 && t.tm_sec <= 59;
}

static tm_status check_manifest(json_t *root, tm_error *err) {
    if (!json_is_object(root)) return tm_error_set(err, TM_ERR_FORMAT, "expected a JSON object");
    /* The type and version first, so that a newer manifest says so rather
     * than failing on a member this build does not know. */
    json_t *type = json_object_get(root, "type"), *version = json_object_get(root, "version");
    if (!json_is_string(type) || strcmp(json_string_value(type), TM_MANIFEST_TYPE) != 0)
        return tm_error_set(err, TM_ERR_FORMAT, "field type: expected \"%s\"", TM_MANIFEST_TYPE);
    if (!json_is_integer(version)) return tm_error_set(err, TM_ERR_FORMAT, "field version: expected an integer");
    if (json_integer_value(version) != TM_MANIFEST_VERSION)
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "field version: manifest version %lld is not supported (this build reads %d)",
                            (long long)json_integer_value(version), TM_MANIFEST_VERSION);
    static const char *const top[] = {"type", "version", "content", "generator", "watermark", "created",
                                      "digital_source_type", "signer", "signature"};
    tm_status s = exact_members(root, "", top, sizeof top / sizeof top[0], err);
    if (s) return s;

    json_t *content = json_object_get(root, "content");
    static const char *const content_members[] = {"sha256", "length"};
    if ((s = exact_members(content, "content", content_members, 2, err)) ||
        (s = want_hex(json_object_get(content, "sha256"), "content.sha256", 64, err)))
        return s;
    json_t *length = json_object_get(content, "length");
    if (!json_is_integer(length) || json_integer_value(length) < 0)
        return tm_error_set(err, TM_ERR_FORMAT, "field content.length: expected a non-negative integer");

    json_t *gen = json_object_get(root, "generator");
    static const char *const gen_members[] = {"tool", "tracemark_version", "model", "sampling", "seed"};
    if ((s = exact_members(gen, "generator", gen_members, 5, err))) return s;
    json_t *tool = json_object_get(gen, "tool");
    if (!json_is_string(tool) || strcmp(json_string_value(tool), "tracemark") != 0)
        return tm_error_set(err, TM_ERR_FORMAT, "field generator.tool: expected \"tracemark\"");
    if ((s = want_string(json_object_get(gen, "tracemark_version"), "generator.tracemark_version", err))) return s;
    json_t *model = json_object_get(gen, "model");
    if (!json_is_null(model)) {
        static const char *const model_members[] = {"name", "sha256"};
        if ((s = exact_members(model, "generator.model", model_members, 2, err)) ||
            (s = want_string(json_object_get(model, "name"), "generator.model.name", err)))
            return s;
        json_t *sha = json_object_get(model, "sha256");
        if (!json_is_null(sha) && (s = want_hex(sha, "generator.model.sha256", 64, err))) return s;
    }
    json_t *sampling = json_object_get(gen, "sampling");
    if (!json_is_null(sampling)) {
        if (!json_is_object(sampling)) return tm_error_set(err, TM_ERR_FORMAT, "field generator.sampling: expected an object or null");
        const char *name;
        json_t *value;
        json_object_foreach(sampling, name, value)
            if (!(json_is_integer(value) || json_is_string(value) || json_is_boolean(value)))
                return tm_error_set(err, TM_ERR_FORMAT,
                                    "field generator.sampling.%s: expected an integer, string or boolean (reals are written as strings)",
                                    name);
    }
    json_t *seed = json_object_get(gen, "seed");
    if (!json_is_null(seed)) {
        const char *digits = json_is_string(seed) ? json_string_value(seed) : "";
        bool ok = digits[0] && strlen(digits) <= 20 && (digits[0] != '0' || !digits[1]);
        for (const char *p = digits; ok && *p; p++) ok = *p >= '0' && *p <= '9';
        if (!ok) return tm_error_set(err, TM_ERR_FORMAT, "field generator.seed: expected a decimal string or null");
    }

    json_t *wm = json_object_get(root, "watermark");
    if (!json_is_null(wm)) {
        static const char *const wm_members[] = {"scheme", "parameters", "key_id"};
        if ((s = exact_members(wm, "watermark", wm_members, 3, err)) ||
            (s = want_string(json_object_get(wm, "scheme"), "watermark.scheme", err)) ||
            (s = want_string(json_object_get(wm, "parameters"), "watermark.parameters", err)) ||
            (s = want_hex(json_object_get(wm, "key_id"), "watermark.key_id", TM_WM_KEY_ID_SIZE - 1, err)))
            return s;
    }
    json_t *created = json_object_get(root, "created");
    if (!json_is_string(created) || !valid_timestamp(json_string_value(created)))
        return tm_error_set(err, TM_ERR_FORMAT, "field created: expected a UTC time YYYY-MM-DDTHH:MM:SSZ");
    json_t *dst = json_object_get(root, "digital_source_type");
    if (!json_is_string(dst) || strcmp(json_string_value(dst), TM_DIGITAL_SOURCE_TYPE) != 0)
        return tm_error_set(err, TM_ERR_FORMAT, "field digital_source_type: expected \"%s\"", TM_DIGITAL_SOURCE_TYPE);
    json_t *signer = json_object_get(root, "signer");
    static const char *const signer_members[] = {"algorithm", "fingerprint"};
    if ((s = exact_members(signer, "signer", signer_members, 2, err))) return s;
    json_t *algorithm = json_object_get(signer, "algorithm");
    if (!json_is_string(algorithm) || strcmp(json_string_value(algorithm), "Ed25519") != 0)
        return tm_error_set(err, TM_ERR_FORMAT, "field signer.algorithm: expected \"Ed25519\"");
    if ((s = want_hex(json_object_get(signer, "fingerprint"), "signer.fingerprint", 64, err))) return s;
    json_t *signature = json_object_get(root, "signature");
    uint8_t bytes[TM_ED25519_SIGNATURE_BYTES];
    if (!json_is_string(signature) || !decode_signature(json_string_value(signature), bytes))
        return tm_error_set(err, TM_ERR_FORMAT, "field signature: expected 64 bytes in canonical base64 (88 characters)");
    return TM_OK;
}

tm_status tm_manifest_parse(tm_manifest **out, const char *json, size_t size, tm_error *err) {
    *out = NULL;
    if (size > TM_MANIFEST_MAX_BYTES)
        return tm_error_set(err, TM_ERR_FORMAT, "manifest larger than %d bytes", TM_MANIFEST_MAX_BYTES);
    if (!tm_utf8_valid(json, size)) return tm_error_set(err, TM_ERR_FORMAT, "manifest is not valid UTF-8");
    json_error_t jerr;
    json_t *root = json_loadb(json, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return tm_error_set(err, TM_ERR_FORMAT, "not JSON: line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
    tm_status status = check_manifest(root, err);
    tm_manifest *m = status == TM_OK ? new_manifest(err) : NULL;
    if (status == TM_OK && !m) status = TM_ERR_NOMEM;
    if (status != TM_OK) {
        json_decref(root);
        return status;
    }
    m->root = root;
    *out = m;
    return TM_OK;
}

static const char *string_at(const tm_manifest *m, const char *object, const char *member) {
    json_t *o = object ? json_object_get(m->root, object) : m->root;
    return json_string_value(json_object_get(o, member));
}

const char *tm_manifest_signer(const tm_manifest *manifest) {
    const char *s = string_at(manifest, "signer", "fingerprint");
    return s ? s : "";
}

const char *tm_manifest_content_sha256(const tm_manifest *manifest) { return string_at(manifest, "content", "sha256"); }

uint64_t tm_manifest_content_length(const tm_manifest *manifest) {
    return (uint64_t)json_integer_value(json_object_get(json_object_get(manifest->root, "content"), "length"));
}

const char *tm_manifest_watermark_key_id(const tm_manifest *manifest) {
    return string_at(manifest, "watermark", "key_id");
}

bool tm_manifest_signature(const tm_manifest *manifest, uint8_t signature[TM_ED25519_SIGNATURE_BYTES]) {
    const char *text = json_string_value(json_object_get(manifest->root, "signature"));
    return text && decode_signature(text, signature);
}
