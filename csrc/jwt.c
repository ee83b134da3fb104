/* jwt.c - verify a JSON Web Token signed with HS256, in plain C. */
#include "jwt.h"

#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_object.h"
#include "json_writer.h"
#include "text_sanitize.h"

#define SHA256_LEN 32

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * Decode unpadded base64url in[0..len) into a new NUL-terminated buffer.
 * Strict: padding, other alphabets, an impossible length and non-zero
 * trailing bits are refused, so every value has exactly one encoding.
 * Returns the buffer (caller frees) or NULL; *nomem tells why.
 */
static unsigned char *b64url_decode(const char *in, size_t len, size_t *out_len, int *nomem)
{
    *nomem = 0;
    if (len % 4 == 1)
        return NULL;
    unsigned char *out = malloc(len / 4 * 3 + 3);
    if (!out) {
        *nomem = 1;
        return NULL;
    }
    size_t n = 0;
    unsigned long acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1UL << bits) - 1;
        }
    }
    if (acc != 0) { /* leftover bits must be zero */
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

enum { H_ALG, H_CRIT, H_COUNT };
static const char *const header_names[H_COUNT] = {"alg", "crit"};

enum { P_EXP, P_NBF, P_USER_ID, P_SUB, P_COUNT };
static const char *const payload_names[P_COUNT] = {"exp", "nbf", "user_id", "sub"};

static enum jwt_status check_header(const char *json, size_t len)
{
    struct jo_value f[H_COUNT];
    memset(f, 0, sizeof(f));
    enum jwt_status st = JWT_OK;

    if (!utf8_valid(json, len))
        return JWT_MALFORMED;
    int rc = jo_parse(json, len, header_names, H_COUNT, f, NULL, 0);
    if (rc == JO_NOMEM)
        st = JWT_NOMEM;
    else if (rc != JO_OK)
        st = JWT_MALFORMED;
    /* One alg, exactly "HS256"; crit names extensions we do not understand. */
    else if (f[H_ALG].count != 1 || f[H_ALG].kind != JO_STRING ||
             !jo_bytes_equal(f[H_ALG].s, f[H_ALG].len, "HS256") || f[H_CRIT].count)
        st = JWT_BAD_ALG;
    jo_free(f, H_COUNT);
    return st;
}

/* A claim given once as a finite number; 0 when absent, -1 when unusable. */
static int number_claim(const struct jo_value *v, double *out)
{
    if (!v->count)
        return 0;
    if (v->count != 1 || v->kind != JO_NUMBER || !isfinite(v->number))
        return -1;
    *out = v->number;
    return 1;
}

/* user_id (preferred) or sub, as text: a string, or an integer-valued number. */
static int identity_claim(const struct jo_value *v, char *out, size_t outlen)
{
    if (!v->count)
        return 0;
    if (v->count != 1)
        return -1;
    if (v->kind == JO_STRING) {
        if (memchr(v->s, '\0', v->len))
            return -1;
        /* Cut on a character boundary, and a lone surrogate (an escape in the JSON) replaced:
         * the user id reaches Python and the logs, which need valid UTF-8. */
        text_utf8_copy(out, outlen, v->s, v->len);
        return 1;
    }
    if (v->kind == JO_NUMBER && isfinite(v->number) && fabs(v->number) < 1e15) {
        snprintf(out, outlen, "%.0f", v->number);
        return 1;
    }
    return -1;
}

static enum jwt_status check_payload(const char *json, size_t len, double now_s,
                                     struct jwt_claims *claims)
{
    struct jo_value f[P_COUNT];
    memset(f, 0, sizeof(f));
    double exp = 0, nbf = 0;
    enum jwt_status st = JWT_OK;

    if (!utf8_valid(json, len))
        return JWT_MALFORMED;
    int rc = jo_parse(json, len, payload_names, P_COUNT, f, NULL, 0);
    if (rc != JO_OK) {
        st = rc == JO_NOMEM ? JWT_NOMEM : JWT_MALFORMED;
        goto out;
    }
    int has_exp = number_claim(&f[P_EXP], &exp);
    int has_nbf = number_claim(&f[P_NBF], &nbf);
    int has_uid = identity_claim(&f[P_USER_ID], claims->user_id, sizeof(claims->user_id));
    int has_sub = has_uid ? 0 : identity_claim(&f[P_SUB], claims->user_id, sizeof(claims->user_id));
    if (has_exp < 0 || has_nbf < 0 || has_uid < 0 || has_sub < 0)
        st = JWT_MALFORMED;
    else if (!has_exp)
        st = JWT_MISSING_EXP;
    else if (now_s > exp + JWT_LEEWAY_S)
        st = JWT_EXPIRED;
    else if (has_nbf && now_s + JWT_LEEWAY_S < nbf)
        st = JWT_NOT_YET_VALID;
out:
    jo_free(f, P_COUNT);
    return st;
}

enum jwt_status jwt_verify(const char *token, size_t len, const unsigned char *secret,
                           size_t secret_len, double now_s, struct jwt_claims *claims)
{
    unsigned char *header = NULL, *signature = NULL, *payload = NULL;
    size_t header_len = 0, signature_len = 0, payload_len = 0;
    unsigned char expected[EVP_MAX_MD_SIZE];
    unsigned int expected_len = 0;
    enum jwt_status st = JWT_MALFORMED;
    int nomem = 0;

    memset(claims, 0, sizeof(*claims));
    if (!token || len == 0 || len > JWT_MAX_TOKEN)
        return JWT_MALFORMED;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return JWT_MALFORMED;
    size_t signed_len = (size_t)(dot2 - token);
    const char *sig_text = dot2 + 1;
    size_t sig_text_len = len - signed_len - 1;

    header = b64url_decode(token, (size_t)(dot1 - token), &header_len, &nomem);
    if (!header)
        goto fail;
    st = check_header((const char *)header, header_len);
    if (st != JWT_OK)
        goto done;

    /* Authenticate before reading a single claim. */
    signature = b64url_decode(sig_text, sig_text_len, &signature_len, &nomem);
    if (!signature)
        goto fail;
    static const unsigned char no_key[1] = {0};
    if (!HMAC(EVP_sha256(), secret_len ? secret : no_key, (int)secret_len,
              (const unsigned char *)token, signed_len, expected, &expected_len)) {
        st = JWT_NOMEM;
        goto done;
    }
    if (signature_len != SHA256_LEN || expected_len != SHA256_LEN ||
        CRYPTO_memcmp(signature, expected, SHA256_LEN) != 0) {
        st = JWT_BAD_SIGNATURE;
        goto done;
    }

    payload = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &payload_len, &nomem);
    if (!payload)
        goto fail;
    st = check_payload((const char *)payload, payload_len, now_s, claims);
    if (st == JWT_OK) {
        claims->payload = (char *)payload;
        claims->payload_len = payload_len;
        payload = NULL;
    } else {
        claims->user_id[0] = '\0';
    }
    goto done;

fail:
    st = nomem ? JWT_NOMEM : JWT_MALFORMED;
done:
    free(header);
    free(signature);
    free(payload);
    return st;
}

void jwt_claims_free(struct jwt_claims *claims)
{
    free(claims->payload);
    memset(claims, 0, sizeof(*claims));
}

const char *jwt_status_text(enum jwt_status status)
{
    switch (status) {
    case JWT_OK:
        return "valid";
    case JWT_MALFORMED:
        return "malformed token";
    case JWT_BAD_ALG:
        return "algorithm is not HS256";
    case JWT_BAD_SIGNATURE:
        return "bad signature";
    case JWT_EXPIRED:
        return "token expired";
    case JWT_NOT_YET_VALID:
        return "token not yet valid";
    case JWT_MISSING_EXP:
        return "token has no exp claim";
    case JWT_NOMEM:
        return "out of memory";
    }
    return "unknown error";
}
