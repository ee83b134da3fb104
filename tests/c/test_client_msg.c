/* test_client_msg.c - every message of the protocol, and hostile input, through client_msg_parse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "client_msg.h"

/* One expectation.  skill/token/request_type: NULL means "must be NULL";
 * skill_len is used when skill holds NUL bytes (0 = strlen). */
struct want {
    int status;
    enum cm_type type;
    const char *skill;
    size_t skill_len;
    const char *token;
    const char *request_type;
};

static const char *status_name(int status)
{
    switch (status) {
    case CM_OK: return "CM_OK";
    case CM_INVALID_JSON: return "CM_INVALID_JSON";
    case CM_INVALID_REQUEST: return "CM_INVALID_REQUEST";
    case CM_UNKNOWN_TYPE: return "CM_UNKNOWN_TYPE";
    default: return "?";
    }
}

static int same_cstr(const char *got, const char *want)
{
    if (!got || !want)
        return got == want;
    return strcmp(got, want) == 0;
}

static void check(int line, const char *s, size_t len, struct want w)
{
    struct client_msg m;
    char err[128];
    memset(err, 'x', sizeof(err)); /* on an error, must be overwritten with a terminated reason */
    int got = client_msg_parse(s, len, &m, err, sizeof(err));
    const char *why = NULL;

    size_t want_skill_len = w.skill ? (w.skill_len ? w.skill_len : strlen(w.skill)) : 0;
    if (got != w.status)
        why = "status";
    else if (w.status == CM_OK && m.type != w.type)
        why = "type";
    else if (w.status != CM_OK && m.type != CM_NONE)
        why = "type is not CM_NONE on error";
    else if (w.status != CM_OK && !memchr(err, '\0', sizeof(err)))
        why = "err not NUL-terminated";
    else if (w.status != CM_OK && err[0] == '\0')
        why = "no reason given";
    else if (w.skill ? !(m.skill && m.skill_len == want_skill_len &&
                         memcmp(m.skill, w.skill, want_skill_len) == 0 &&
                         m.skill[want_skill_len] == '\0')
                     : (m.skill != NULL || m.skill_len != 0))
        why = "skill";
    else if (!same_cstr(m.token, w.token))
        why = "token";
    else if (!same_cstr(m.request_type, w.request_type))
        why = "request_type";

    if (why) {
        fprintf(stderr,
                "line %d: %.100s\n  wrong %s: status %s (want %s), type %d, skill %.40s (len %zu), "
                "token %s, request_type %s, err \"%.100s\"\n",
                line, s ? s : "(null)", why, status_name(got), status_name(w.status), (int)m.type,
                m.skill ? m.skill : "(null)", m.skill_len, m.token ? m.token : "(null)",
                m.request_type ? m.request_type : "(null)",
                memchr(err, '\0', sizeof(err)) ? err : "(unterminated)");
        failures++;
    }
    client_msg_free(&m);
    if (m.skill || m.token || m.request_type || m.type != CM_NONE || m.skill_len) {
        fprintf(stderr, "line %d: client_msg_free did not zero the struct\n", line);
        failures++;
    }
}

/* Expectation builders, so that each case reads as one line. */
static struct want ok(enum cm_type type, const char *skill, const char *request_type)
{
    return (struct want){CM_OK, type, skill, 0, NULL, request_type};
}

static struct want bad(int status, const char *request_type)
{
    return (struct want){status, CM_NONE, NULL, 0, NULL, request_type};
}

#define T(s, w) check(__LINE__, s, strlen(s), w)
#define TN(s, w) check(__LINE__, s, sizeof(s) - 1, w) /* s may contain NUL bytes */

/* Build "{prefix}" + n copies of `open` + "leaf" + n copies of `close` + "}". */
static char *nested(const char *prefix, const char *open, const char *leaf, const char *close,
                    size_t n, size_t *len)
{
    size_t lo = strlen(open), lc = strlen(close), lp = strlen(prefix), ll = strlen(leaf);
    char *s = malloc(lp + n * (lo + lc) + ll + 2);
    size_t k = 0;
    if (!s)
        return NULL;
    memcpy(s + k, prefix, lp);
    k += lp;
    for (size_t i = 0; i < n; i++, k += lo)
        memcpy(s + k, open, lo);
    memcpy(s + k, leaf, ll);
    k += ll;
    for (size_t i = 0; i < n; i++, k += lc)
        memcpy(s + k, close, lc);
    s[k++] = '}';
    s[k] = '\0';
    *len = k;
    return s;
}

static void test_every_message_type(void)
{
    T("{\"type\":\"ping\"}", ok(CM_PING, NULL, "ping"));
    T("{\"type\":\"unsubscribe\"}", ok(CM_UNSUBSCRIBE, NULL, "unsubscribe"));
    T("{\"type\":\"subscribe\"}", ok(CM_SUBSCRIBE, NULL, "subscribe"));
    T("{\"type\":\"subscribe\",\"skill\":\"pytest-run\"}", ok(CM_SUBSCRIBE, "pytest-run", "subscribe"));
    T("{\"type\":\"subscribe\",\"skill_name\":\"pytest-run\"}",
      ok(CM_SUBSCRIBE, "pytest-run", "subscribe"));
    T("{\"skill_name\":\"mypy\",\"type\":\"subscribe\"}", ok(CM_SUBSCRIBE, "mypy", "subscribe"));
    T("{\"type\":\"get_metrics\",\"skill\":\"ruff\"}", ok(CM_GET_METRICS, "ruff", "get_metrics"));
    T("{\"type\":\"get_metrics\",\"skill_name\":\"ruff\"}", ok(CM_GET_METRICS, "ruff", "get_metrics"));
    T("{\"type\":\"auth\",\"token\":\"abc.def.ghi\"}",
      ((struct want){CM_OK, CM_AUTH, NULL, 0, "abc.def.ghi", "auth"}));
    T("{\"type\":\"auth\",\"token\":\"\"}", ((struct want){CM_OK, CM_AUTH, NULL, 0, "", "auth"}));
    /* whitespace everywhere JSON allows it */
    T(" \t\r\n{ \"type\" :\n\"ping\"\t} \r\n", ok(CM_PING, NULL, "ping"));
    /* other fields are ignored for ping, unsubscribe and auth, even conflicting skill keys */
    T("{\"type\":\"ping\",\"skill\":\"a\",\"skill_name\":\"b\"}", ok(CM_PING, NULL, "ping"));
    T("{\"type\":\"unsubscribe\",\"skill\":5,\"extra\":[1,{\"a\":2}]}",
      ok(CM_UNSUBSCRIBE, NULL, "unsubscribe"));
    T("{\"type\":\"auth\",\"token\":\"t\",\"skill\":\"a\",\"skill_name\":\"b\"}",
      ((struct want){CM_OK, CM_AUTH, NULL, 0, "t", "auth"}));
    /* unknown fields of every JSON type */
    T("{\"a\":1,\"b\":-2.5e-3,\"c\":true,\"d\":false,\"e\":null,\"f\":[],\"g\":{},"
      "\"h\":\"s\",\"type\":\"get_metrics\",\"skill\":\"x\",\"i\":[{\"j\":[1,\"2\"]}]}",
      ok(CM_GET_METRICS, "x", "get_metrics"));
}

static void test_skill_keys(void)
{
    /* both keys, same value */
    T("{\"type\":\"subscribe\",\"skill\":\"a\",\"skill_name\":\"a\"}", ok(CM_SUBSCRIBE, "a", "subscribe"));
    T("{\"type\":\"get_metrics\",\"skill_name\":\"a\",\"skill\":\"a\"}",
      ok(CM_GET_METRICS, "a", "get_metrics"));
    T("{\"type\":\"subscribe\",\"skill\":null,\"skill_name\":null}", ok(CM_SUBSCRIBE, NULL, "subscribe"));
    /* both keys, different values (null counts as a value) */
    T("{\"type\":\"subscribe\",\"skill\":\"a\",\"skill_name\":\"b\"}", bad(CM_INVALID_REQUEST, "subscribe"));
    T("{\"type\":\"get_metrics\",\"skill\":\"a\",\"skill_name\":\"b\"}",
      bad(CM_INVALID_REQUEST, "get_metrics"));
    T("{\"type\":\"subscribe\",\"skill\":\"ab\",\"skill_name\":\"a\"}", bad(CM_INVALID_REQUEST, "subscribe"));
    T("{\"type\":\"subscribe\",\"skill\":null,\"skill_name\":\"b\"}", bad(CM_INVALID_REQUEST, "subscribe"));
    T("{\"type\":\"subscribe\",\"skill\":\"a\",\"skill_name\":null}", bad(CM_INVALID_REQUEST, "subscribe"));
    T("{\"type\":\"subscribe\",\"skill\":\"a\",\"skill_name\":1}", bad(CM_INVALID_REQUEST, "subscribe"));
    /* null skill: all skills for subscribe, an error for get_metrics */
    T("{\"type\":\"subscribe\",\"skill\":null}", ok(CM_SUBSCRIBE, NULL, "subscribe"));
    T("{\"type\":\"subscribe\",\"skill_name\":null}", ok(CM_SUBSCRIBE, NULL, "subscribe"));
    T("{\"type\":\"get_metrics\",\"skill\":null}", bad(CM_INVALID_REQUEST, "get_metrics"));
    T("{\"type\":\"get_metrics\",\"skill_name\":null}", bad(CM_INVALID_REQUEST, "get_metrics"));
    T("{\"type\":\"get_metrics\",\"skill\":null,\"skill_name\":null}",
      bad(CM_INVALID_REQUEST, "get_metrics"));
    T("{\"type\":\"get_metrics\"}", bad(CM_INVALID_REQUEST, "get_metrics"));
    /* empty names */
    T("{\"type\":\"subscribe\",\"skill\":\"\"}", bad(CM_INVALID_REQUEST, "subscribe"));
    T("{\"type\":\"get_metrics\",\"skill_name\":\"\"}", bad(CM_INVALID_REQUEST, "get_metrics"));
    /* escapes are decoded; the name is bytes, SQL-looking text is just text */
    T("{\"type\":\"get_metrics\",\"skill\":\"caf\\u00e9 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u20AC\"}",
      ok(CM_GET_METRICS, "caf\xC3\xA9 \"q\" \\ / \b\f\n\r\t \xE2\x82\xAC", "get_metrics"));
    T("{\"type\":\"get_metrics\",\"skill\":\"x'; DROP TABLE skill_invocation;--\"}",
      ok(CM_GET_METRICS, "x'; DROP TABLE skill_invocation;--", "get_metrics"));
    /* raw multi-byte UTF-8 passes through */
    T("{\"type\":\"subscribe\",\"skill\":\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"}",
      ok(CM_SUBSCRIBE, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", "subscribe"));
    /* an escaped surrogate pair (Python's json.dumps for emoji) is one character */
    T("{\"type\":\"subscribe\",\"skill\":\"a\\ud83d\\ude00b\"}",
      ok(CM_SUBSCRIBE, "a\xF0\x9F\x98\x80" "b", "subscribe"));
    T("{\"type\":\"subscribe\",\"skill\":\"\\uDBFF\\uDFFF\\uD800\\uDC00\"}",
      ok(CM_SUBSCRIBE, "\xF4\x8F\xBF\xBF\xF0\x90\x80\x80", "subscribe"));
    /* a lone or reversed surrogate is kept as its 3-byte form */
    T("{\"type\":\"subscribe\",\"skill\":\"\\ud83d\"}", ok(CM_SUBSCRIBE, "\xED\xA0\xBD", "subscribe"));
    T("{\"type\":\"subscribe\",\"skill\":\"\\ude00\\ud83d\"}",
      ok(CM_SUBSCRIBE, "\xED\xB8\x80\xED\xA0\xBD", "subscribe"));
    /* the raw and escaped spellings of one name are the same name */
    T("{\"type\":\"subscribe\",\"skill\":\"\xF0\x9F\x98\x80\",\"skill_name\":\"\\ud83d\\ude00\"}",
      ok(CM_SUBSCRIBE, "\xF0\x9F\x98\x80", "subscribe"));
}

static void test_wrong_types(void)
{
    static const char *const non_strings[] = {"42", "-1.5", "true", "false", "[]", "[\"a\"]",
                                              "{}", "{\"skill\":\"a\"}", "1e400"};
    char s[256];
    for (size_t i = 0; i < sizeof(non_strings) / sizeof(non_strings[0]); i++) {
        const char *v = non_strings[i];
        snprintf(s, sizeof(s), "{\"type\":\"subscribe\",\"skill\":%s}", v);
        T(s, bad(CM_INVALID_REQUEST, "subscribe"));
        snprintf(s, sizeof(s), "{\"type\":\"subscribe\",\"skill_name\":%s}", v);
        T(s, bad(CM_INVALID_REQUEST, "subscribe"));
        snprintf(s, sizeof(s), "{\"type\":\"get_metrics\",\"skill_name\":%s}", v);
        T(s, bad(CM_INVALID_REQUEST, "get_metrics"));
        snprintf(s, sizeof(s), "{\"type\":\"auth\",\"token\":%s}", v);
        T(s, bad(CM_INVALID_REQUEST, "auth"));
        snprintf(s, sizeof(s), "{\"type\":%s}", v);
        T(s, bad(CM_INVALID_REQUEST, NULL));
    }
    T("{\"type\":null}", bad(CM_INVALID_REQUEST, NULL));
    T("{\"type\":\"auth\",\"token\":null}", bad(CM_INVALID_REQUEST, "auth"));
    T("{\"type\":\"auth\"}", bad(CM_INVALID_REQUEST, "auth"));
}

static void test_missing_and_unknown_type(void)
{
    T("{}", bad(CM_INVALID_REQUEST, NULL));
    T(" { \n } ", bad(CM_INVALID_REQUEST, NULL));
    T("{\"skill\":\"a\"}", bad(CM_INVALID_REQUEST, NULL));
    T("{\"Type\":\"ping\"}", bad(CM_INVALID_REQUEST, NULL));
    /* a nested "type" is not the message's type */
    T("{\"x\":{\"type\":\"ping\"}}", bad(CM_INVALID_REQUEST, NULL));
    T("{\"x\":[{\"type\":\"ping\"}]}", bad(CM_INVALID_REQUEST, NULL));
    T("{\"\":{\"type\":\"ping\"}}", bad(CM_INVALID_REQUEST, NULL));

    T("{\"type\":\"launch\"}", bad(CM_UNKNOWN_TYPE, "launch"));
    T("{\"type\":\"PING\"}", bad(CM_UNKNOWN_TYPE, "PING"));
    T("{\"type\":\"ping \"}", bad(CM_UNKNOWN_TYPE, "ping "));
    T("{\"type\":\"pin\"}", bad(CM_UNKNOWN_TYPE, "pin"));
    T("{\"type\":\"\"}", bad(CM_UNKNOWN_TYPE, ""));
    T("{\"type\":\"metrics_update\"}", bad(CM_UNKNOWN_TYPE, "metrics_update"));
    /* a NUL inside the type makes it another type; request_type ends at the NUL */
    TN("{\"type\":\"ping\\u0000x\"}", bad(CM_UNKNOWN_TYPE, "ping"));
    /* the echoed type is cut to 63 bytes */
    {
        char s[512], want[64];
        memset(want, 't', 63);
        want[63] = '\0';
        int n = snprintf(s, sizeof(s), "{\"type\":\"%s%s%s\"}", want, want, want);
        check(__LINE__, s, (size_t)n, bad(CM_UNKNOWN_TYPE, want));
    }
}

/* session-buddy's pure-Python server reads a first message {"token": ...} with no type. */
static void test_typeless_token(void)
{
    T("{\"token\":\"abc.def.ghi\"}", ((struct want){CM_OK, CM_AUTH, NULL, 0, "abc.def.ghi", NULL}));
    T("{\"token\":\"\"}", ((struct want){CM_OK, CM_AUTH, NULL, 0, "", NULL}));
    T("{\"skill\":\"a\",\"token\":\"t\"}", ((struct want){CM_OK, CM_AUTH, NULL, 0, "t", NULL}));
    /* a type, when present, decides */
    T("{\"type\":\"ping\",\"token\":\"t\"}", ok(CM_PING, NULL, "ping"));
    T("{\"type\":7,\"token\":\"t\"}", bad(CM_INVALID_REQUEST, NULL));
    /* only a string token makes it an auth request */
    T("{\"token\":null}", bad(CM_INVALID_REQUEST, NULL));
    T("{\"token\":42}", bad(CM_INVALID_REQUEST, NULL));
    T("{\"x\":{\"token\":\"t\"}}", bad(CM_INVALID_REQUEST, NULL));
    TN("{\"token\":\"a\\u0000b\"}", bad(CM_INVALID_REQUEST, NULL));
}

static void test_invalid_json(void)
{
    T("", bad(CM_INVALID_JSON, NULL));
    check(__LINE__, NULL, 0, bad(CM_INVALID_JSON, NULL));
    T("   \n\t", bad(CM_INVALID_JSON, NULL));
    /* the top level must be an object */
    T("[{\"type\":\"ping\"}]", bad(CM_INVALID_JSON, NULL));
    T("[]", bad(CM_INVALID_JSON, NULL));
    T("\"ping\"", bad(CM_INVALID_JSON, NULL));
    T("42", bad(CM_INVALID_JSON, NULL));
    T("null", bad(CM_INVALID_JSON, NULL));
    T("true", bad(CM_INVALID_JSON, NULL));
    T("ping", bad(CM_INVALID_JSON, NULL));
    T("\xEF\xBB\xBF{\"type\":\"ping\"}", bad(CM_INVALID_JSON, NULL)); /* a BOM is not JSON */
    /* broken objects */
    T("{", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\"", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"pi", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":", bad(CM_INVALID_JSON, NULL));
    T("{type:\"ping\"}", bad(CM_INVALID_JSON, NULL));
    T("{'type':'ping'}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\" \"ping\"}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",}", bad(CM_INVALID_JSON, NULL));
    T("{,\"type\":\"ping\"}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",,\"a\":1}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\" \"a\":1}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\"}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\":[1,2}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\":{\"b\":1]}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\":tru}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\":nul}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\":NaN}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\":+1}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\":.5}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\":1.}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\":-}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\":1e}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\\x\"}", bad(CM_INVALID_JSON, NULL));      /* bad escape */
    T("{\"type\":\"ping\\u12G4\"}", bad(CM_INVALID_JSON, NULL));  /* bad hex */
    T("{\"type\":\"pi\nng\"}", bad(CM_INVALID_JSON, NULL));       /* raw control char */
    TN("{\"type\":\"pi\0ng\"}", bad(CM_INVALID_JSON, NULL));      /* raw NUL */
    TN("{\"type\":\"ping\"\0}", bad(CM_INVALID_JSON, NULL));
    /* comments are not JSON, though LEJP would skip them */
    T("{\"type\":\"ping\" # note\n}", bad(CM_INVALID_JSON, NULL));
    T("{# note\n\"type\":\"ping\"}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"n\":1# note\n}", bad(CM_INVALID_JSON, NULL));
    /* but '#' inside a string is just a character */
    T("{\"type\":\"subscribe\",\"skill\":\"#x\"}", ok(CM_SUBSCRIBE, "#x", "subscribe"));
    T("{\"type\":\"subscribe\",\"#\":1,\"skill\":\"x\"}", ok(CM_SUBSCRIBE, "x", "subscribe"));
}

static void test_trailing_garbage(void)
{
    T("{\"type\":\"ping\"} x", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\"}{}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\"}}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\"},", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\"}# note", bad(CM_INVALID_JSON, NULL));
    T("{}x", bad(CM_INVALID_JSON, NULL));
    T("{ } {", bad(CM_INVALID_JSON, NULL));
    TN("{\"type\":\"ping\"}\0", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\"} \n\t\r ", ok(CM_PING, NULL, "ping"));
}

static void test_duplicates_and_nesting(void)
{
    /* duplicated keys: the last occurrence wins, whatever its type */
    T("{\"type\":\"ping\",\"type\":\"subscribe\",\"skill\":\"a\",\"skill\":\"b\"}",
      ok(CM_SUBSCRIBE, "b", "subscribe"));
    T("{\"type\":\"subscribe\",\"type\":\"ping\"}", ok(CM_PING, NULL, "ping"));
    T("{\"type\":\"subscribe\",\"skill\":\"a\",\"skill\":null}", ok(CM_SUBSCRIBE, NULL, "subscribe"));
    T("{\"type\":\"subscribe\",\"skill\":null,\"skill\":\"a\"}", ok(CM_SUBSCRIBE, "a", "subscribe"));
    T("{\"type\":\"subscribe\",\"skill\":\"a\",\"skill\":[\"a\"]}", bad(CM_INVALID_REQUEST, "subscribe"));
    T("{\"type\":\"subscribe\",\"skill\":{},\"skill\":\"a\"}", ok(CM_SUBSCRIBE, "a", "subscribe"));
    T("{\"type\":\"auth\",\"token\":\"a\",\"token\":\"bb\"}",
      ((struct want){CM_OK, CM_AUTH, NULL, 0, "bb", "auth"}));
    T("{\"type\":\"ping\",\"type\":5}", bad(CM_INVALID_REQUEST, NULL));
    /* a longer value first, then a shorter one: no bytes of the first survive */
    T("{\"type\":\"get_metrics\",\"skill\":\"abcdef\",\"skill\":\"xy\"}",
      ok(CM_GET_METRICS, "xy", "get_metrics"));

    /* keys of the same name nested deeper are ignored, at any depth */
    T("{\"type\":\"get_metrics\",\"x\":{\"skill\":\"a\",\"type\":\"ping\"},\"skill\":\"b\"}",
      ok(CM_GET_METRICS, "b", "get_metrics"));
    T("{\"type\":\"ping\",\"\":{\"type\":\"auth\",\"token\":\"x\"}}", ok(CM_PING, NULL, "ping"));
    T("{\"\":{\"\":{\"skill\":\"evil\"}},\"type\":\"get_metrics\",\"skill\":\"good\"}",
      ok(CM_GET_METRICS, "good", "get_metrics"));
    T("{\"type\":\"subscribe\",\"\":{\"skill\":\"evil\"}}", ok(CM_SUBSCRIBE, NULL, "subscribe"));
    T("{\"type\":\"subscribe\",\"x\":[{\"skill\":\"evil\"}],\"y\":[[\"skill\"]]}",
      ok(CM_SUBSCRIBE, NULL, "subscribe"));
    T("{\"type\":\"auth\",\"a\":{\"token\":\"evil\"}}", bad(CM_INVALID_REQUEST, "auth"));
    /* a key is matched on all its bytes */
    TN("{\"type\\u0000x\":\"ping\"}", bad(CM_INVALID_REQUEST, NULL));
    TN("{\"type\":\"subscribe\",\"skill\\u0000\":\"evil\"}", ok(CM_SUBSCRIBE, NULL, "subscribe"));
    /* an escaped key is the same key */
    T("{\"\\u0074ype\":\"ping\"}", ok(CM_PING, NULL, "ping"));
    /* a key that is a prefix or extension of a field name is another key */
    T("{\"type\":\"subscribe\",\"skil\":\"a\",\"skills\":\"b\",\"skill_name_\":\"c\"}",
      ok(CM_SUBSCRIBE, NULL, "subscribe"));

    /* nesting inside the parser's limits: 11 object levels, 5 array levels */
    T("{\"type\":\"ping\",\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":{\"k\":\"s\"}}}}}}}}}}}",
      ok(CM_PING, NULL, "ping"));
    T("{\"type\":\"ping\",\"a\":[[[[[1,\"s\"]]]]]}", ok(CM_PING, NULL, "ping"));
    /* LEJP leaks a slot of its index stack per top-level array: many still work */
    T("{\"type\":\"ping\",\"a\":[1],\"b\":[],\"c\":[[2]],\"d\":[1],\"e\":[1],\"f\":[1],\"g\":[1],"
      "\"h\":[1],\"i\":[[[[[1]]]]]}",
      ok(CM_PING, NULL, "ping"));
    /* one level further is CM_INVALID_JSON */
    T("{\"type\":\"ping\",\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":{\"k\":{\"l\":\"s\"}}}}}}}}}}}}",
      bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"a\":[[[[[[1]]]]]]}", bad(CM_INVALID_JSON, NULL));

    /* 10,000 levels: rejected, without a crash, for arrays, objects and a mix */
    static const char *const opens[] = {"[", "{\"a\":", "[{\"\":"};
    static const char *const closes[] = {"]", "}", "}]"};
    for (size_t k = 0; k < 3; k++) {
        size_t len;
        char *s = nested("{\"type\":\"ping\",\"x\":", opens[k], "1", closes[k], 10000, &len);
        if (!s)
            continue;
        check(__LINE__, s, len, bad(CM_INVALID_JSON, NULL));
        /* and unclosed */
        check(__LINE__, s, len / 2, bad(CM_INVALID_JSON, NULL));
        free(s);
        s = nested("", opens[k], "1", closes[k], 10000, &len); /* as the whole message */
        if (!s)
            continue;
        check(__LINE__, s, len - 1, bad(CM_INVALID_JSON, NULL));
        free(s);
    }
}

static void test_nul_and_long_strings(void)
{
    /* \u0000 in a skill name or token: rejected, not truncated */
    TN("{\"type\":\"subscribe\",\"skill\":\"a\\u0000b\"}", bad(CM_INVALID_REQUEST, "subscribe"));
    TN("{\"type\":\"get_metrics\",\"skill_name\":\"\\u0000\"}", bad(CM_INVALID_REQUEST, "get_metrics"));
    TN("{\"type\":\"auth\",\"token\":\"abc\\u0000def\"}", bad(CM_INVALID_REQUEST, "auth"));
    /* \u0000 in an ignored field is fine */
    TN("{\"type\":\"ping\",\"note\":\"a\\u0000b\"}", ok(CM_PING, NULL, "ping"));

    /* skill names survive whole up to SKILL_NAME_MAX (1 KiB); longer ones, up to just under
     * the 64 KiB message limit, are refused; tokens of any of these lengths pass */
    static const size_t lengths[] = {253, 254, 255, 508, 1024, 1025, 10 * 1024, 65536 - 64};
    for (size_t k = 0; k < sizeof(lengths) / sizeof(lengths[0]); k++) {
        size_t name_len = lengths[k];
        char *name = malloc(name_len + 1);
        char *s = malloc(name_len + 64);
        if (!name || !s) {
            free(name);
            free(s);
            continue;
        }
        for (size_t i = 0; i < name_len; i++)
            name[i] = (char)('a' + i % 26);
        name[name_len] = '\0';
        int n = snprintf(s, name_len + 64, "{\"type\":\"subscribe\",\"skill_name\":\"%s\"}", name);
        check(__LINE__, s, (size_t)n,
              name_len <= 1024 ? ok(CM_SUBSCRIBE, name, "subscribe") : bad(CM_INVALID_REQUEST, "subscribe"));
        n = snprintf(s, name_len + 64, "{\"type\":\"auth\",\"token\":\"%s\"}", name);
        check(__LINE__, s, (size_t)n, ((struct want){CM_OK, CM_AUTH, NULL, 0, name, "auth"}));
        free(s);
        free(name);
    }

    /* escapes that straddle LEJP's 254-byte chunks: 2-, 3- and 4-byte results */
    {
        char s[16384], want[4096];
        size_t n = 0, w = 0;
        n += (size_t)sprintf(s + n, "{\"type\":\"get_metrics\",\"skill\":\"");
        for (int i = 0; i < 100; i++) { /* 1,000 bytes: under SKILL_NAME_MAX */
            n += (size_t)sprintf(s + n, "%c\\u00e9\\u20ac\\ud83d\\ude00", 'a' + i % 26);
            want[w++] = (char)('a' + i % 26);
            memcpy(want + w, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9);
            w += 9;
        }
        n += (size_t)sprintf(s + n, "\"}");
        want[w] = '\0';
        check(__LINE__, s, n, ok(CM_GET_METRICS, want, "get_metrics"));
    }

    /* LEJP's key path limit: a 125-byte key works, a longer one is CM_INVALID_JSON
     * (it would otherwise overrun LEJP's path buffer) */
    {
        char s[1024], key[400];
        memset(key, 'k', sizeof(key));
        snprintf(s, sizeof(s), "{\"type\":\"ping\",\"%.*s\":\"v\"}", 125, key);
        T(s, ok(CM_PING, NULL, "ping"));
        snprintf(s, sizeof(s), "{\"type\":\"ping\",\"%.*s\":\"v\"}", 126, key);
        T(s, bad(CM_INVALID_JSON, NULL));
        /* LEJP's path index is 8 bits: 256+ bytes must not wrap round to "type" */
        snprintf(s, sizeof(s), "{\"type\":\"ping\",\"%.*stype\":\"auth\",\"token\":\"t\"}", 252, key);
        T(s, bad(CM_INVALID_JSON, NULL));
        snprintf(s, sizeof(s), "{\"%.*s\":1}", 400, key);
        T(s, bad(CM_INVALID_JSON, NULL));
        snprintf(s, sizeof(s), "{\"type\":\"ping\",\"x\":{\"%.*s\":{\"%.*s\":1}}}", 70, key, 70, key);
        T(s, bad(CM_INVALID_JSON, NULL));
    }
}

static void test_numbers(void)
{
    /* big numbers are just numbers when they fit LEJP's 20 digits */
    T("{\"type\":\"ping\",\"n\":1e99999,\"m\":-12345678901234567890,\"f\":-0.0,\"e\":1E-400}",
      ok(CM_PING, NULL, "ping"));
    T("{\"type\":\"subscribe\",\"skill\":1e99999}", bad(CM_INVALID_REQUEST, "subscribe"));
    /* more digits than LEJP takes: CM_INVALID_JSON, never a crash or a wrong field */
    T("{\"type\":\"ping\",\"m\":123456789012345678901234567890}", bad(CM_INVALID_JSON, NULL));
    T("{\"type\":\"ping\",\"m\":0.000000000000000000000000000001}", bad(CM_INVALID_JSON, NULL));
    {
        char s[4200];
        int n = snprintf(s, sizeof(s), "{\"type\":\"ping\",\"m\":");
        for (int i = 0; i < 4000; i++)
            s[n++] = '9';
        s[n++] = '}';
        check(__LINE__, s, (size_t)n, bad(CM_INVALID_JSON, NULL));
    }
}

/* The reason is cut to the caller's buffer, and a NULL / empty buffer is allowed. */
static void test_err_buffer(void)
{
    struct client_msg m;
    char small[8];
    memset(small, 'x', sizeof(small));
    int st = client_msg_parse("{}", 2, &m, small, sizeof(small));
    if (st != CM_INVALID_REQUEST || strlen(small) != sizeof(small) - 1) {
        fprintf(stderr, "small err buffer: status %d, err \"%.8s\"\n", st, small);
        failures++;
    }
    client_msg_free(&m);
    st = client_msg_parse("x", 1, &m, NULL, 0);
    if (st != CM_INVALID_JSON) {
        fprintf(stderr, "NULL err buffer: status %d\n", st);
        failures++;
    }
    client_msg_free(&m);
    /* *out is zeroed first, whatever it held */
    memset(&m, 0xAB, sizeof(m));
    st = client_msg_parse("[", 1, &m, small, sizeof(small));
    if (st != CM_INVALID_JSON || m.skill || m.token || m.request_type || m.type != CM_NONE) {
        fprintf(stderr, "out not zeroed on error\n");
        failures++;
    }
    client_msg_free(&m);
    /* freeing twice, or a zeroed struct, is safe */
    client_msg_free(&m);
}

/* One message's since / window / step, parsed or refused. */
static struct client_msg parsed(const char *s, int want_status)
{
    struct client_msg m;
    char err[256];
    int st = client_msg_parse(s, strlen(s), &m, err, sizeof(err));
    CHECK(st == want_status, "%s: status %s, want %s (%s)", s, status_name(st),
          status_name(want_status), err);
    return m;
}

static void test_since_and_history(void)
{
    struct client_msg m = parsed("{\"type\":\"subscribe\",\"skill_name\":\"a\","
                                 "\"since\":{\"epoch\":\"0123456789abcdef\",\"seq\":42}}", CM_OK);
    CHECK(m.type == CM_SUBSCRIBE && m.has_since && m.since_seq == 42 &&
              !strcmp(m.since_epoch, "0123456789abcdef") && m.skill && !strcmp(m.skill, "a"),
          "since parsed");
    client_msg_free(&m);
    m = parsed("{\"type\":\"subscribe\",\"since\":null}", CM_OK);
    CHECK(!m.has_since && !m.skill, "since null: none");
    client_msg_free(&m);
    static const char *const bad_since[] = {
        "{\"type\":\"subscribe\",\"since\":3}",
        "{\"type\":\"subscribe\",\"since\":{\"epoch\":\"e\"}}",
        "{\"type\":\"subscribe\",\"since\":{\"seq\":1}}",
        "{\"type\":\"subscribe\",\"since\":{\"epoch\":\"e\",\"seq\":-1}}",
        "{\"type\":\"subscribe\",\"since\":{\"epoch\":\"e\",\"seq\":1.5}}",
        "{\"type\":\"subscribe\",\"since\":{\"epoch\":\"e\\u0000\",\"seq\":1}}",
        /* the keys only count under a top-level "since" object, one level down */
        "{\"type\":\"subscribe\",\"since\":[],\"since.epoch\":\"e\",\"since.seq\":1}",
        "{\"type\":\"subscribe\",\"since\":{\"x\":{\"epoch\":\"e\",\"seq\":1}}}",
        "{\"type\":\"subscribe\",\"since\":{},\"\":{\"since\":{\"epoch\":\"e\",\"seq\":1}}}",
    };
    for (size_t i = 0; i < sizeof(bad_since) / sizeof(bad_since[0]); i++) {
        m = parsed(bad_since[i], CM_INVALID_REQUEST);
        client_msg_free(&m);
    }
    m = parsed("{\"type\":\"get_history\"}", CM_OK);
    CHECK(m.type == CM_GET_HISTORY && !m.skill && m.window_s == 3600 && m.step_s == 60,
          "get_history defaults");
    client_msg_free(&m);
    m = parsed("{\"type\":\"get_history\",\"skill\":\"b\",\"window\":86400,\"step\":60}", CM_OK);
    CHECK(m.skill && !strcmp(m.skill, "b") && m.window_s == 86400 && m.step_s == 60, "get_history");
    client_msg_free(&m);
    static const char *const bad_history[] = {
        "{\"type\":\"get_history\",\"window\":0}",
        "{\"type\":\"get_history\",\"window\":86401}",
        "{\"type\":\"get_history\",\"window\":\"60\"}",
        "{\"type\":\"get_history\",\"step\":15}",
        "{\"type\":\"get_history\",\"step\":3601}",
        "{\"type\":\"get_history\",\"window\":86400,\"step\":50}",
        "{\"type\":\"get_history\",\"step\":null}",
        "{\"type\":\"get_history\",\"skill_name\":7}",
    };
    for (size_t i = 0; i < sizeof(bad_history) / sizeof(bad_history[0]); i++) {
        m = parsed(bad_history[i], CM_INVALID_REQUEST);
        CHECK(m.request_type && !strcmp(m.request_type, "get_history"), "request_type kept");
        client_msg_free(&m);
    }
}

int main(void)
{
    test_since_and_history();
    test_every_message_type();
    test_skill_keys();
    test_wrong_types();
    test_missing_and_unknown_type();
    test_typeless_token();
    test_invalid_json();
    test_trailing_garbage();
    test_duplicates_and_nesting();
    test_nul_and_long_strings();
    test_numbers();
    test_err_buffer();

    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
