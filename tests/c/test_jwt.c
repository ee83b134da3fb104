/* test_jwt.c - the HS256 verifier: valid tokens, every rejection, strict base64url, leeway edges. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "jwt.h"

static const char SECRET[] = "test-secret-0123456789";
static const double NOW = 1800000000.0;

/* An independent base64url encoder (no padding), for building tokens. */
static size_t b64url(const unsigned char *in, size_t len, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8) | in[i + 2];
        out[n++] = a[v >> 18];
        out[n++] = a[(v >> 12) & 63];
        out[n++] = a[(v >> 6) & 63];
        out[n++] = a[v & 63];
    }
    if (len - i == 1) {
        unsigned long v = (unsigned long)in[i] << 16;
        out[n++] = a[v >> 18];
        out[n++] = a[(v >> 12) & 63];
    } else if (len - i == 2) {
        unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8);
        out[n++] = a[v >> 18];
        out[n++] = a[(v >> 12) & 63];
        out[n++] = a[(v >> 6) & 63];
    }
    out[n] = '\0';
    return n;
}

/* header.payload.signature, signed with secret (NULL: an empty signature part). */
static char *make_token(const char *header, const char *payload, const char *secret)
{
    char *tok = malloc(4 * (strlen(header) + strlen(payload) + 64) + 16);
    size_t n = b64url((const unsigned char *)header, strlen(header), tok);
    tok[n++] = '.';
    n += b64url((const unsigned char *)payload, strlen(payload), tok + n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    tok[n++] = '.';
    tok[n] = '\0';
    if (secret) {
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)tok, n - 1, mac, &mac_len);
        b64url(mac, mac_len, tok + n);
    }
    return tok;
}

/* Verify from an exact-size heap copy (no NUL), so ASan and valgrind see any overread. */
static enum jwt_status verify(const char *token, size_t len, struct jwt_claims *c)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, token, len);
    enum jwt_status st = jwt_verify(copy, len, (const unsigned char *)SECRET, strlen(SECRET), NOW, c);
    free(copy);
    return st;
}

static void expect(int line, const char *header, const char *payload, const char *secret,
                   enum jwt_status want, const char *want_user)
{
    struct jwt_claims c;
    char *tok = make_token(header, payload, secret);
    enum jwt_status got = verify(tok, strlen(tok), &c);
    if (got != want)
        FAIL("line %d: %s / %s: got %s, want %s", line, header, payload, jwt_status_text(got),
             jwt_status_text(want));
    if (got == JWT_OK && want_user && strcmp(c.user_id, want_user))
        FAIL("line %d: user_id %s, want %s", line, c.user_id, want_user);
    if (got == JWT_OK && (!c.payload || strlen(c.payload) != c.payload_len || strcmp(c.payload, payload)))
        FAIL("line %d: payload not returned intact", line);
    if (got != JWT_OK && (c.payload || c.user_id[0]))
        FAIL("line %d: a rejected token left claims behind", line);
    jwt_claims_free(&c);
    free(tok);
}

static void expect_raw(int line, const char *tok, enum jwt_status want)
{
    struct jwt_claims c;
    enum jwt_status got = verify(tok, strlen(tok), &c);
    if (got != want)
        FAIL("line %d: %.60s: got %s, want %s", line, tok, jwt_status_text(got), jwt_status_text(want));
    jwt_claims_free(&c);
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

int main(void)
{
    char p[256];

    /* Valid: user_id as a string or a number, sub as a fallback, exp/nbf within the leeway. */
    snprintf(p, sizeof p, "{\"user_id\":\"alice\",\"exp\":%.0f,\"permissions\":[\"r\"]}", NOW + 60);
    expect(__LINE__, HS256, p, SECRET, JWT_OK, "alice");
    snprintf(p, sizeof p, "{\"user_id\":42,\"exp\":%.1f}", NOW + 0.5);
    expect(__LINE__, HS256, p, SECRET, JWT_OK, "42");
    snprintf(p, sizeof p, "{\"sub\":\"bob\",\"exp\":%.0f}", NOW + 60);
    expect(__LINE__, HS256, p, SECRET, JWT_OK, "bob");
    snprintf(p, sizeof p, "{\"exp\":%.0f}", NOW - 29);
    expect(__LINE__, HS256, p, SECRET, JWT_OK, "");
    snprintf(p, sizeof p, "{\"exp\":%.0f,\"nbf\":%.0f}", NOW + 60, NOW + 29);
    expect(__LINE__, HS256, p, SECRET, JWT_OK, "");
    snprintf(p, sizeof p, "{\"exp\":%.0f}", NOW + 60);
    expect(__LINE__, "{\"typ\":\"JWT\",\"alg\":\"HS256\",\"kid\":{\"x\":[1]}}", p, SECRET, JWT_OK, "");

    /* Time claims. */
    snprintf(p, sizeof p, "{\"exp\":%.0f}", NOW - 31);
    expect(__LINE__, HS256, p, SECRET, JWT_EXPIRED, NULL);
    snprintf(p, sizeof p, "{\"exp\":%.0f,\"nbf\":%.0f}", NOW + 600, NOW + 31);
    expect(__LINE__, HS256, p, SECRET, JWT_NOT_YET_VALID, NULL);
    expect(__LINE__, HS256, "{\"user_id\":\"x\"}", SECRET, JWT_MISSING_EXP, NULL);
    expect(__LINE__, HS256, "{\"exp\":\"2099-01-01\"}", SECRET, JWT_MALFORMED, NULL);
    snprintf(p, sizeof p, "{\"exp\":%.0f,\"exp\":%.0f}", NOW - 1000, NOW + 60);
    expect(__LINE__, HS256, p, SECRET, JWT_MALFORMED, NULL);
    snprintf(p, sizeof p, "{\"exp\":%.0f,\"nbf\":null}", NOW + 60);
    expect(__LINE__, HS256, p, SECRET, JWT_MALFORMED, NULL);
    snprintf(p, sizeof p, "{\"exp\":%.0f,\"user_id\":[\"a\"]}", NOW + 60);
    expect(__LINE__, HS256, p, SECRET, JWT_MALFORMED, NULL);
    expect(__LINE__, HS256, "{\"exp\":1e999}", SECRET, JWT_MALFORMED, NULL);
    expect(__LINE__, HS256, "[1,2]", SECRET, JWT_MALFORMED, NULL);
    expect(__LINE__, HS256, "not json", SECRET, JWT_MALFORMED, NULL);

    /* The algorithm is pinned. */
    snprintf(p, sizeof p, "{\"exp\":%.0f}", NOW + 60);
    expect(__LINE__, "{\"alg\":\"none\"}", p, NULL, JWT_BAD_ALG, NULL);
    expect(__LINE__, "{\"alg\":\"none\"}", p, SECRET, JWT_BAD_ALG, NULL);
    expect(__LINE__, "{\"alg\":\"HS512\"}", p, SECRET, JWT_BAD_ALG, NULL);
    expect(__LINE__, "{\"alg\":\"hs256\"}", p, SECRET, JWT_BAD_ALG, NULL);
    expect(__LINE__, "{\"typ\":\"JWT\"}", p, SECRET, JWT_BAD_ALG, NULL);
    expect(__LINE__, "{\"alg\":\"HS256\",\"alg\":\"none\"}", p, SECRET, JWT_BAD_ALG, NULL);
    expect(__LINE__, "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", p, SECRET, JWT_BAD_ALG, NULL);
    expect(__LINE__, "{\"alg\":[\"HS256\"]}", p, SECRET, JWT_BAD_ALG, NULL);

    /* Signatures. */
    expect(__LINE__, HS256, p, "another-secret", JWT_BAD_SIGNATURE, NULL);
    expect(__LINE__, HS256, p, NULL, JWT_BAD_SIGNATURE, NULL);
    {
        char *good = make_token(HS256, p, SECRET);
        char *forged = make_token(HS256, "{\"user_id\":\"admin\",\"exp\":9999999999}", SECRET);
        /* the forged payload with the good token's signature */
        char *mix = malloc(strlen(good) + strlen(forged) + 1);
        const char *sig = strrchr(good, '.');
        size_t head = (size_t)(strrchr(forged, '.') - forged);
        memcpy(mix, forged, head);
        strcpy(mix + head, sig);
        expect_raw(__LINE__, mix, JWT_BAD_SIGNATURE);
        /* a truncated signature; one flipped character */
        size_t n = strlen(good);
        good[n - 3] = '\0'; /* 40 characters: 30 bytes */
        expect_raw(__LINE__, good, JWT_BAD_SIGNATURE);
        free(good);
        good = make_token(HS256, p, SECRET);
        good[n - 2] = good[n - 2] == 'A' ? 'B' : 'A';
        expect_raw(__LINE__, good, JWT_BAD_SIGNATURE);
        /* a non-canonical last character (non-zero trailing bits) */
        free(good);
        good = make_token(HS256, p, SECRET);
        char *last = good + n - 1;
        int v = *last >= 'A' && *last <= 'Z' ? *last - 'A' : *last >= 'a' && *last <= 'z' ? *last - 'a' + 26 : -1;
        if (v >= 0 && (v & 3) == 0 && v + 1 < 26) {
            *last = (char)(*last + 1);
            expect_raw(__LINE__, good, JWT_MALFORMED);
        }
        free(good);
        free(forged);
        free(mix);
    }

    /* Malformed structure and base64url. */
    expect_raw(__LINE__, "", JWT_MALFORMED);
    expect_raw(__LINE__, "abc", JWT_MALFORMED);
    expect_raw(__LINE__, "a.b", JWT_MALFORMED);
    expect_raw(__LINE__, "a.b.c.d", JWT_MALFORMED);
    expect_raw(__LINE__, "..", JWT_MALFORMED);
    expect_raw(__LINE__, "eyJhbGciOiJIUzI1NiJ9=.e30.AAAA", JWT_MALFORMED);
    expect_raw(__LINE__, "eyJhbGciOiJIUzI1NiJ9+.e30.AAAA", JWT_MALFORMED);
    /* The payload is not even decoded before the signature checks out. */
    expect_raw(__LINE__, "eyJhbGciOiJIUzI1NiJ9.e30+.AAAA", JWT_BAD_SIGNATURE);
    expect_raw(__LINE__, "eyJhbGciOiJIUzI1NiJ9.e30.AAAAA", JWT_MALFORMED);
    expect_raw(__LINE__, "eyJhbGciOiJIUzI1NiJ9.e30.AA AA", JWT_MALFORMED);
    expect_raw(__LINE__, "e yJhbGciOiJIUzI1NiJ9.e30.AAAA", JWT_MALFORMED);
    {
        size_t big = JWT_MAX_TOKEN + 1;
        char *huge = malloc(big + 1);
        memset(huge, 'A', big);
        huge[10] = '.';
        huge[20] = '.';
        huge[big] = '\0';
        expect_raw(__LINE__, huge, JWT_MALFORMED);
        free(huge);
    }
    /* A NUL inside the token is just a bad character. */
    {
        char *tok = make_token(HS256, p, SECRET);
        size_t n = strlen(tok);
        struct jwt_claims c;
        tok[5] = '\0';
        if (verify(tok, n, &c) != JWT_MALFORMED)
            FAIL("a NUL inside the header part was accepted");
        jwt_claims_free(&c);
        free(tok);
    }
    /* Invalid UTF-8 inside a signed payload. */
    expect(__LINE__, HS256, "{\"user_id\":\"\xff\",\"exp\":9999999999}", SECRET, JWT_MALFORMED, NULL);

    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("test_jwt: all passed\n");
    return 0;
}
