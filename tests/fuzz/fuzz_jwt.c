/* fuzz_jwt.c - libFuzzer target for the HS256 JWT verifier.
 *
 * Input: [secret length:1][secret][token].  Besides not crashing, a token the
 * verifier accepts must have been signed with that secret: re-verifying it with
 * a different secret must fail. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t secret_len = data[0];
    if (secret_len + 1 > size)
        return 0;
    const unsigned char *secret = data + 1;
    const char *token = (const char *)data + 1 + secret_len;
    size_t token_len = size - 1 - secret_len;
    struct jwt_claims claims;

    /* Fixed time so that runs are reproducible. */
    enum jwt_status st = jwt_verify(token, token_len, secret, secret_len, 1800000000.0, &claims);
    if (st == JWT_OK) {
        if (!claims.payload || strlen(claims.user_id) > JWT_MAX_USER_ID)
            abort();
        jwt_claims_free(&claims);
        static const unsigned char other[] = "a-different-secret";
        if ((secret_len != sizeof(other) - 1 || memcmp(secret, other, secret_len)) &&
            jwt_verify(token, token_len, other, sizeof(other) - 1, 1800000000.0, &claims) == JWT_OK)
            abort(); /* secret-independent acceptance: the signature check was bypassed */
    } else if (claims.payload || claims.user_id[0]) {
        abort(); /* a refused token must leave nothing behind */
    }
    return 0;
}
