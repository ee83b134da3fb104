/* jwt.h - verify a JSON Web Token signed with HS256 (RFC 7519 / RFC 7515), in plain C. */
#ifndef SB_JWT_H
#define SB_JWT_H

#include <stddef.h>
#include <stdint.h>

/* Tokens longer than this are refused without being decoded. */
#define JWT_MAX_TOKEN 8192
/* exp / nbf tolerate this much clock skew between the token issuer and this host. */
#define JWT_LEEWAY_S 30
/* user_id (or sub) is kept up to this many bytes, cut on a character boundary; invalid
 * UTF-8 in it (a lone surrogate escaped in the JSON) becomes U+FFFD. */
#define JWT_MAX_USER_ID 127

enum jwt_status {
    JWT_OK = 0,
    JWT_MALFORMED,        /* not three base64url parts, bad JSON, a claim of the wrong type */
    JWT_BAD_ALG,          /* alg is not exactly HS256 (none included), or crit is present */
    JWT_BAD_SIGNATURE,
    JWT_EXPIRED,
    JWT_NOT_YET_VALID,
    JWT_MISSING_EXP,      /* every token must expire */
    JWT_NOMEM,
};

struct jwt_claims {
    char user_id[JWT_MAX_USER_ID + 1]; /* "user_id", else "sub", else ""; a number as its text */
    char *payload;        /* the decoded payload JSON, NUL-terminated (owned) */
    size_t payload_len;
};

/*
 * Verify token[0..len) against secret[0..secret_len) at time now_s (Unix
 * seconds).  The header must name alg HS256 exactly once; the signature is
 * compared in constant time before the payload is read; exp is required and
 * nbf optional, both with JWT_LEEWAY_S of leeway.  On JWT_OK, *claims is
 * filled (free it with jwt_claims_free); otherwise it holds nothing.
 */
enum jwt_status jwt_verify(const char *token, size_t len, const unsigned char *secret,
                           size_t secret_len, double now_s, struct jwt_claims *claims);

/* Free what jwt_verify put in *claims and zero it; safe on a zeroed struct. */
void jwt_claims_free(struct jwt_claims *claims);

/* A short English reason for a status, for logs and exceptions. */
const char *jwt_status_text(enum jwt_status status);

#endif
