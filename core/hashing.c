/* SHA-256 through OpenSSL's EVP interface, as lowercase hex, for model file
 * fingerprints and download checks. */
#include "tracemark/core.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void to_hex(const unsigned char *digest, char hex[TM_SHA256_HEX_SIZE]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

void tm_sha256_hex(const void *data, size_t size, char hex[TM_SHA256_HEX_SIZE]) {
    unsigned char digest[32];
    unsigned int n = 0;
    EVP_Digest(data, size, digest, &n, EVP_sha256(), NULL);
    to_hex(digest, hex);
}

tm_status tm_sha256_file_hex(const char *path, char hex[TM_SHA256_HEX_SIZE], tm_error *err) {
    int fd;
    tm_status opened = tm_input_open(path, 0, &fd, NULL, err); /* a FIFO is refused, not waited on */
    if (opened != TM_OK) return opened;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return tm_error_set(err, TM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        fclose(f);
        EVP_MD_CTX_free(ctx);
        return tm_error_set(err, TM_ERR_NOMEM, "%s: cannot start SHA-256", path);
    }
    unsigned char buffer[1 << 16];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, f)) > 0) EVP_DigestUpdate(ctx, buffer, n);
    bool failed = ferror(f);
    fclose(f);
    unsigned char digest[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, digest, &len);
    EVP_MD_CTX_free(ctx);
    if (failed) return tm_error_set(err, TM_ERR_IO, "%s: read error", path);
    to_hex(digest, hex);
    return TM_OK;
}
