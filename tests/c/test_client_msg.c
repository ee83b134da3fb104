/* test_client_msg.c - every message of the protocol, and hostile input, through client_msg_parse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_msg.h"

static int failures;

/* Parse s and check status, type and skill (NULL = expect none). */
static void expect(int line, const char *s, size_t len, int status, enum cm_type type,
                   const char *skill)
{
    struct client_msg m;
    char err[128] = "";
    int got = client_msg_parse(s, len, &m, err, sizeof(err));
    int ok = got == status && (status != CM_OK || m.type == type);
    if (ok && status == CM_OK && type != CM_AUTH)
        ok = skill ? (m.skill && strcmp(m.skill, skill) == 0 && m.skill_len == strlen(skill))
                   : m.skill == NULL;
    if (ok && status != CM_OK && err[0] == '\0')
        ok = 0; /* an error must say why */
    if (!ok) {
        fprintf(stderr, "line %d: %.80s -> status %d type %d skill %s (%s)\n", line, s, got,
                m.type, m.skill ? m.skill : "(none)", err);
        failures++;
    }
    client_msg_free(&m);
}

#define EXPECT(s, status, type, skill) expect(__LINE__, s, strlen(s), status, type, skill)

int main(void)
{
    EXPECT("{\"type\":\"ping\"}", CM_OK, CM_PING, NULL);
    EXPECT(" {\"type\" : \"unsubscribe\", \"extra\": [1, {\"a\": 2}]} ", CM_OK, CM_UNSUBSCRIBE, NULL);
    EXPECT("{\"type\":\"subscribe\"}", CM_OK, CM_SUBSCRIBE, NULL);
    EXPECT("{\"type\":\"subscribe\",\"skill\":null}", CM_OK, CM_SUBSCRIBE, NULL);
    EXPECT("{\"type\":\"subscribe\",\"skill_name\":null}", CM_OK, CM_SUBSCRIBE, NULL);
    EXPECT("{\"type\":\"subscribe\",\"skill\":\"pytest-run\"}", CM_OK, CM_SUBSCRIBE, "pytest-run");
    EXPECT("{\"skill_name\":\"mypy\",\"type\":\"subscribe\"}", CM_OK, CM_SUBSCRIBE, "mypy");
    EXPECT("{\"type\":\"subscribe\",\"skill\":\"a\",\"skill_name\":\"a\"}", CM_OK, CM_SUBSCRIBE, "a");
    EXPECT("{\"type\":\"get_metrics\",\"skill\":\"ruff\"}", CM_OK, CM_GET_METRICS, "ruff");
    EXPECT("{\"type\":\"get_metrics\",\"skill_name\":\"ruff\"}", CM_OK, CM_GET_METRICS, "ruff");
    EXPECT("{\"type\":\"auth\",\"token\":\"abc\"}", CM_OK, CM_AUTH, NULL);
    EXPECT("{\"type\":\"get_metrics\",\"skill\":\"caf\\u00e9 \\\"q\\\"\"}", CM_OK, CM_GET_METRICS,
           "caf\xC3\xA9 \"q\"");
    EXPECT("{\"type\":\"get_metrics\",\"skill\":\"x'; DROP TABLE skill_invocation;--\"}", CM_OK,
           CM_GET_METRICS, "x'; DROP TABLE skill_invocation;--");

    /* duplicated keys: the last wins; nested keys of the same name do not count */
    EXPECT("{\"type\":\"ping\",\"type\":\"subscribe\",\"skill\":\"a\",\"skill\":\"b\"}", CM_OK,
           CM_SUBSCRIBE, "b");
    EXPECT("{\"type\":\"get_metrics\",\"x\":{\"skill\":\"a\",\"type\":\"ping\"},\"skill\":\"b\"}",
           CM_OK, CM_GET_METRICS, "b");

    /* invalid_request */
    EXPECT("{}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"skill\":\"a\"}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":null}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":5}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":[\"ping\"]}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":{\"a\":\"ping\"}}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":\"subscribe\",\"skill\":42}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":\"subscribe\",\"skill\":[\"a\"]}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":\"subscribe\",\"skill\":\"a\",\"skill_name\":\"b\"}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":\"subscribe\",\"skill\":null,\"skill_name\":\"b\"}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":\"subscribe\",\"skill\":\"\"}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":\"subscribe\",\"skill\":\"a\\u0000b\"}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":\"get_metrics\"}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":\"get_metrics\",\"skill\":null}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":\"get_metrics\",\"skill\":true}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":\"auth\"}", CM_INVALID_REQUEST, CM_NONE, NULL);
    EXPECT("{\"type\":\"auth\",\"token\":1}", CM_INVALID_REQUEST, CM_NONE, NULL);

    /* unknown_type keeps the request type for the reply */
    {
        struct client_msg m;
        char err[64];
        const char *s = "{\"type\":\"launch\"}";
        int st = client_msg_parse(s, strlen(s), &m, err, sizeof(err));
        if (st != CM_UNKNOWN_TYPE || !m.request_type || strcmp(m.request_type, "launch")) {
            fprintf(stderr, "unknown type: status %d request_type %s\n", st,
                    m.request_type ? m.request_type : "(none)");
            failures++;
        }
        client_msg_free(&m);
    }

    /* invalid_json */
    EXPECT("", CM_INVALID_JSON, CM_NONE, NULL);
    EXPECT("   ", CM_INVALID_JSON, CM_NONE, NULL);
    EXPECT("ping", CM_INVALID_JSON, CM_NONE, NULL);
    EXPECT("[{\"type\":\"ping\"}]", CM_INVALID_JSON, CM_NONE, NULL);
    EXPECT("\"ping\"", CM_INVALID_JSON, CM_NONE, NULL);
    EXPECT("42", CM_INVALID_JSON, CM_NONE, NULL);
    EXPECT("{\"type\":\"ping\"", CM_INVALID_JSON, CM_NONE, NULL);
    EXPECT("{\"type\":\"ping\"} x", CM_INVALID_JSON, CM_NONE, NULL);
    EXPECT("{\"type\":\"ping\"}{}", CM_INVALID_JSON, CM_NONE, NULL);
    EXPECT("{type:\"ping\"}", CM_INVALID_JSON, CM_NONE, NULL);

    /* huge numbers are just numbers; LEJP refuses integers of more than 20 digits */
    EXPECT("{\"type\":\"ping\",\"n\":1e99999,\"m\":-12345678901234567890}", CM_OK, CM_PING, NULL);
    EXPECT("{\"type\":\"ping\",\"m\":123456789012345678901234567890}", CM_INVALID_JSON, CM_NONE, NULL);

    /* 10,000 levels of nesting: rejected, without a crash */
    {
        size_t depth = 10000, n = 0;
        char *s = malloc(depth * 2 + 64);
        n += (size_t)sprintf(s, "{\"type\":\"ping\",\"x\":");
        for (size_t i = 0; i < depth; i++)
            s[n++] = '[';
        for (size_t i = 0; i < depth; i++)
            s[n++] = ']';
        s[n++] = '}';
        s[n] = '\0';
        expect(__LINE__, s, n, CM_INVALID_JSON, CM_NONE, NULL);
        free(s);
    }

    /* a 10 KB skill name survives whole */
    {
        size_t name_len = 10 * 1024;
        char *name = malloc(name_len + 1);
        char *s = malloc(name_len + 64);
        memset(name, 'k', name_len);
        name[name_len] = '\0';
        int n = sprintf(s, "{\"type\":\"subscribe\",\"skill_name\":\"%s\"}", name);
        expect(__LINE__, s, (size_t)n, CM_OK, CM_SUBSCRIBE, name);
        free(s);
        free(name);
    }

    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
