/* gql_message.c - one client message of the graphql-transport-ws protocol, read and checked. */
#include "gql_message.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json_object.h"

enum {
    K_TYPE,
    K_ID,
    K_PAYLOAD,
    K_QUERY,
    K_TOKEN,
    K_AUTHORIZATION,
    K_AUTHORIZATION_CAP,
    K_COUNT
};

static const char *const keys[K_COUNT] = {
    [K_TYPE] = "type",
    [K_ID] = "id",
    [K_PAYLOAD] = "payload",
    [K_QUERY] = "payload.query",
    [K_TOKEN] = "payload.token",
    [K_AUTHORIZATION] = "payload.authorization",
    [K_AUTHORIZATION_CAP] = "payload.Authorization",
};

static const struct {
    const char *name;
    enum gql_msg_type type;
} types[] = {
    {"connection_init", GQL_MSG_CONNECTION_INIT},
    {"ping", GQL_MSG_PING},
    {"pong", GQL_MSG_PONG},
    {"subscribe", GQL_MSG_SUBSCRIBE},
    {"complete", GQL_MSG_COMPLETE},
};

static int invalid(char *err, size_t errlen, const char *why)
{
    jo_set_err(err, errlen, why, "");
    return GQL_MSG_INVALID;
}

/* The token of connection_init's payload: `token` first, else an Authorization value without
 * its "Bearer " scheme.  Returns 0, or -1 when out of memory. */
static int take_token(struct jo_value *v, struct gql_msg *out)
{
    struct jo_value *pick = NULL;
    size_t skip = 0;
    if (v[K_TOKEN].kind == JO_STRING) {
        pick = &v[K_TOKEN];
    } else {
        pick = v[K_AUTHORIZATION].kind == JO_STRING       ? &v[K_AUTHORIZATION]
               : v[K_AUTHORIZATION_CAP].kind == JO_STRING ? &v[K_AUTHORIZATION_CAP]
                                                          : NULL;
        if (pick && pick->len >= 7 && !strncasecmp(pick->s, "Bearer ", 7))
            skip = 7;
    }
    if (!pick || pick->len == skip)
        return 0;
    out->token_len = pick->len - skip;
    out->token = malloc(out->token_len + 1);
    if (!out->token)
        return -1;
    memcpy(out->token, pick->s + skip, out->token_len + 1);
    return 0;
}

static int check(struct jo_value *v, struct gql_msg *out, char *err, size_t errlen)
{
    if (v[K_TYPE].kind != JO_STRING)
        return invalid(err, errlen, "a message needs a string \"type\"");
    size_t i = 0;
    while (i < sizeof(types) / sizeof(types[0]) &&
           !jo_bytes_equal(v[K_TYPE].s, v[K_TYPE].len, types[i].name))
        i++;
    if (i == sizeof(types) / sizeof(types[0]))
        return invalid(err, errlen, "unknown message type");
    out->type = types[i].type;

    enum jo_kind payload = v[K_PAYLOAD].kind;
    if (out->type == GQL_MSG_SUBSCRIBE) {
        if (v[K_QUERY].kind != JO_STRING)
            return invalid(err, errlen, "subscribe needs a payload object with a string \"query\"");
    } else if (payload != JO_ABSENT && payload != JO_NULL && payload != JO_OTHER) {
        return invalid(err, errlen, "\"payload\" must be an object");
    }
    if (out->type == GQL_MSG_SUBSCRIBE || out->type == GQL_MSG_COMPLETE) {
        const struct jo_value *id = &v[K_ID];
        if (id->kind != JO_STRING || id->len == 0 || id->len > GQL_MAX_ID_LEN ||
            memchr(id->s, '\0', id->len))
            return invalid(err, errlen, "\"id\" must be a non-empty string of at most 128 bytes");
        out->id_len = id->len;
        out->id = jo_take(&v[K_ID]);
    }
    if (out->type == GQL_MSG_CONNECTION_INIT && take_token(v, out) < 0)
        return GQL_MSG_NOMEM;
    return GQL_MSG_OK;
}

int gql_msg_parse(const char *json, size_t len, struct gql_msg *out, char *err, size_t errlen)
{
    struct jo_value v[K_COUNT];
    memset(out, 0, sizeof(*out));
    memset(v, 0, sizeof(v));
    int st = jo_parse(json, len, keys, K_COUNT, v, err, errlen);
    if (st == JO_OK) {
        for (int k = 0; k < K_COUNT; k++)
            if (v[k].count > 1) {
                st = invalid(err, errlen, "a key occurs twice");
                goto done;
            }
        st = check(v, out, err, errlen);
    } else {
        st = st == JO_NOMEM ? GQL_MSG_NOMEM : GQL_MSG_INVALID;
    }
done:
    jo_free(v, K_COUNT);
    return st;
}

void gql_msg_free(struct gql_msg *m)
{
    free(m->id);
    if (m->token)
        memset(m->token, 0, m->token_len);
    free(m->token);
    memset(m, 0, sizeof(*m));
}
