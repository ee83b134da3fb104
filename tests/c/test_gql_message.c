/* test_gql_message.c - every graphql-transport-ws client message, and hostile ones, through gql_msg_parse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gql_message.h"

/* Parse s and check the status; on GQL_MSG_OK the caller inspects *m (and frees it). */
static int parse(const char *s, struct gql_msg *m, int want, int line)
{
    char err[128];
    memset(err, 'x', sizeof(err)); /* an error must overwrite it with a terminated reason */
    int got = gql_msg_parse(s, strlen(s), m, err, sizeof(err));
    if (got != want)
        FAIL("line %d: %s: status %d, want %d (%s)", line, s, got, want,
             got == GQL_MSG_INVALID ? err : "");
    if (got == GQL_MSG_INVALID && (!memchr(err, '\0', sizeof(err)) || !err[0]))
        FAIL("line %d: %s: no terminated reason", line, s);
    return got;
}

#define OK(s, m) (parse((s), (m), GQL_MSG_OK, __LINE__) == GQL_MSG_OK)
#define BAD(s)                                                                                 \
    do {                                                                                       \
        struct gql_msg bad_;                                                                   \
        parse((s), &bad_, GQL_MSG_INVALID, __LINE__);                                          \
        CHECK(bad_.id == NULL && bad_.token == NULL, "line %d: nothing kept on error", __LINE__); \
        gql_msg_free(&bad_);                                                                   \
    } while (0)

static void test_each_type(void)
{
    struct gql_msg m;
    if (OK("{\"type\":\"connection_init\"}", &m))
        CHECK(m.type == GQL_MSG_CONNECTION_INIT && !m.token && !m.id, "bare connection_init");
    gql_msg_free(&m);
    if (OK("{\"type\":\"connection_init\",\"payload\":null}", &m))
        CHECK(m.type == GQL_MSG_CONNECTION_INIT && !m.token, "null payload");
    gql_msg_free(&m);
    if (OK("{\"type\":\"ping\",\"payload\":{\"x\":1}}", &m))
        CHECK(m.type == GQL_MSG_PING, "ping");
    gql_msg_free(&m);
    if (OK("{\"type\":\"pong\"}", &m))
        CHECK(m.type == GQL_MSG_PONG, "pong");
    gql_msg_free(&m);
    if (OK("{\"id\":\"op-1\",\"type\":\"subscribe\",\"payload\":{\"query\":\"subscription{metricsUpdate{seq}}\","
           "\"variables\":{\"a\":[1,2]},\"operationName\":null}}", &m))
        CHECK(m.type == GQL_MSG_SUBSCRIBE && m.id_len == 4 && !strcmp(m.id, "op-1"), "subscribe");
    gql_msg_free(&m);
    if (OK("{\"type\":\"complete\",\"id\":\"\\u00e9\"}", &m))
        CHECK(m.type == GQL_MSG_COMPLETE && m.id_len == 2 && !strcmp(m.id, "\xc3\xa9"),
              "complete with an escaped id");
    gql_msg_free(&m);
}

static void test_tokens(void)
{
    struct gql_msg m;
    if (OK("{\"type\":\"connection_init\",\"payload\":{\"token\":\"abc\"}}", &m))
        CHECK(m.token && m.token_len == 3 && !strcmp(m.token, "abc"), "payload.token");
    gql_msg_free(&m);
    if (OK("{\"type\":\"connection_init\",\"payload\":{\"authorization\":\"Bearer xyz\"}}", &m))
        CHECK(m.token && !strcmp(m.token, "xyz"), "authorization: Bearer stripped");
    gql_msg_free(&m);
    if (OK("{\"type\":\"connection_init\",\"payload\":{\"Authorization\":\"bearer q\"}}", &m))
        CHECK(m.token && !strcmp(m.token, "q"), "Authorization, scheme in any case");
    gql_msg_free(&m);
    if (OK("{\"type\":\"connection_init\",\"payload\":{\"authorization\":\"raw\"}}", &m))
        CHECK(m.token && !strcmp(m.token, "raw"), "a token without a scheme");
    gql_msg_free(&m);
    if (OK("{\"type\":\"connection_init\",\"payload\":{\"token\":\"t\",\"authorization\":\"Bearer a\"}}", &m))
        CHECK(m.token && !strcmp(m.token, "t"), "token wins over authorization");
    gql_msg_free(&m);
    if (OK("{\"type\":\"connection_init\",\"payload\":{\"authorization\":\"Bearer \"}}", &m))
        CHECK(!m.token, "an empty bearer token is no token");
    gql_msg_free(&m);
    if (OK("{\"type\":\"connection_init\",\"payload\":{\"token\":5}}", &m))
        CHECK(!m.token, "a token that is not a string is no token");
    gql_msg_free(&m);
    if (OK("{\"type\":\"connection_init\",\"payload\":{\"headers\":{\"token\":\"deep\"}}}", &m))
        CHECK(!m.token, "a token nested deeper does not count");
    gql_msg_free(&m);
    if (OK("{\"type\":\"subscribe\",\"id\":\"1\",\"payload\":{\"query\":\"q\",\"token\":\"t\"}}", &m))
        CHECK(!m.token, "only connection_init carries a token");
    gql_msg_free(&m);
}

static void test_invalid(void)
{
    BAD("");
    BAD("not json");
    BAD("[]");
    BAD("{}");
    BAD("{\"type\":7}");
    BAD("{\"type\":\"start\"}");                 /* the old subscriptions-transport-ws protocol */
    BAD("{\"type\":\"connection_ack\"}");        /* a server message */
    BAD("{\"type\":\"next\",\"id\":\"1\"}");
    BAD("{\"type\":\"subscribe\",\"payload\":{\"query\":\"q\"}}");          /* no id */
    BAD("{\"type\":\"subscribe\",\"id\":\"\",\"payload\":{\"query\":\"q\"}}"); /* empty id */
    BAD("{\"type\":\"subscribe\",\"id\":1,\"payload\":{\"query\":\"q\"}}");
    BAD("{\"type\":\"subscribe\",\"id\":\"1\"}");                            /* no payload */
    BAD("{\"type\":\"subscribe\",\"id\":\"1\",\"payload\":{}}");              /* no query */
    BAD("{\"type\":\"subscribe\",\"id\":\"1\",\"payload\":{\"query\":null}}");
    BAD("{\"type\":\"subscribe\",\"id\":\"1\",\"payload\":\"q\"}");
    BAD("{\"type\":\"complete\"}");
    BAD("{\"type\":\"complete\",\"id\":\"a\\u0000b\"}");                     /* NUL in an id */
    BAD("{\"type\":\"ping\",\"payload\":\"x\"}");
    BAD("{\"type\":\"connection_init\",\"payload\":3}");
    BAD("{\"type\":\"ping\",\"type\":\"ping\"}");                             /* duplicate key */
    BAD("{\"type\":\"ping\"} trailing");

    /* ids: 128 bytes are fine, 129 are not */
    char msg[400];
    char id[GQL_MAX_ID_LEN + 2];
    memset(id, 'i', sizeof(id));
    id[GQL_MAX_ID_LEN] = '\0';
    snprintf(msg, sizeof(msg), "{\"type\":\"complete\",\"id\":\"%s\"}", id);
    struct gql_msg m;
    if (OK(msg, &m))
        CHECK(m.id_len == GQL_MAX_ID_LEN, "a 128-byte id");
    gql_msg_free(&m);
    id[GQL_MAX_ID_LEN] = 'i';
    id[GQL_MAX_ID_LEN + 1] = '\0';
    snprintf(msg, sizeof(msg), "{\"type\":\"complete\",\"id\":\"%s\"}", id);
    BAD(msg);
}

int main(void)
{
    test_each_type();
    test_tokens();
    test_invalid();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
