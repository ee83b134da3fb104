/* pmd_extension.c - permessage-deflate negotiated through lws, frames left to the server. */
#include "pmd_extension.h"

#include <string.h>

#include "ws_protocol.h"

/* lws echoes the client's value-less parameters it finds in this list: none, so the reply line
 * is exactly the extension's name and pmd_extension_add_headers appends the parameters. */
static const struct lws_ext_options no_options[] = {{NULL, 0}};

/* Decide on the offer lws is trying (the offers_seen-th of the header).  Returns 0 to accept, -1
 * to decline it (lws then tries the client's next offer, or goes without). */
static int construct(struct lws *wsi, void *opts_out)
{
    char header[256]; /* lws 4.1.6 fails handshakes whose extension header is longer */
    *(const struct lws_ext_options **)opts_out = no_options;

    struct session *s = lws_wsi_user(wsi);
    if (!s)
        return -1;
    struct pmd_conn *c = session_pmd(s);
    unsigned index = c->offers_seen++;
    int n = lws_hdr_copy(wsi, header, sizeof(header), WSI_TOKEN_EXTENSIONS);
    if (n < 0 || !pmd_negotiate(header, (size_t)n, index, &c->terms))
        return -1;
    c->agreed = 1;
    return 0;
}

/* Every other reason returns 0, which lws treats as "no extension acted": payloads in both
 * directions pass untouched, so replies go out uncompressed (RSV1 clear) and compressed client
 * messages reach the protocol's RECEIVE as they came. */
static int pmd_callback(struct lws_context *context, const struct lws_extension *ext,
                        struct lws *wsi, enum lws_extension_callback_reasons reason, void *user,
                        void *in, size_t len)
{
    (void)context;
    (void)ext;
    (void)user;
    (void)len;
    return reason == LWS_EXT_CB_CONSTRUCT ? construct(wsi, in) : 0;
}

const struct lws_extension pmd_extensions[] = {
    {"permessage-deflate", pmd_callback, "permessage-deflate"},
    {NULL, NULL, NULL},
};

int pmd_extension_add_headers(struct pmd_conn *c, struct lws_process_html_args *args)
{
    static const char line[] = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    const size_t n = sizeof(line) - 1;
    char params[96];

    if (!c->agreed || c->replied)
        return 0;
    int plen = pmd_reply_params(&c->terms, params, sizeof(params));
    if (plen < 0 || args->max_len < plen || memcmp(args->p - n, line, n))
        return -1;
    /* Overwrite the line's CRLF with the parameters, then end the line again. */
    memcpy(args->p - 2, params, (size_t)plen);
    memcpy(args->p - 2 + plen, "\r\n", 2);
    args->p += plen;
    args->max_len -= plen;
    c->replied = 1;
    return 0;
}
