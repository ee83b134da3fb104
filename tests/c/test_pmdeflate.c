/* test_pmdeflate.c - permessage-deflate: deciding on offers, shared compressed frames, the per-message inflater. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pmdeflate.h"

static int negotiate(const char *header, unsigned index, struct pmd_agreement *a)
{
    return pmd_negotiate(header, strlen(header), index, a);
}

static void test_offers(void)
{
    struct pmd_agreement a;
    char reply[96];

    CHECK(negotiate("permessage-deflate", 0, &a) && a.window_bits == 15 && !a.window_requested, "plain offer");
    CHECK(pmd_reply_params(&a, reply, sizeof(reply)) > 0 &&
              !strcmp(reply, "; server_no_context_takeover; client_no_context_takeover"), "reply: %s", reply);
    CHECK(negotiate("permessage-deflate; client_max_window_bits", 0, &a) && a.window_bits == 15, "Chromium's offer");
    CHECK(negotiate(" permessage-deflate ; server_max_window_bits=\"10\" ; client_max_window_bits=9", 0, &a) &&
              a.window_bits == 10 && a.window_requested, "quoted value, blanks");
    CHECK(pmd_reply_params(&a, reply, sizeof(reply)) > 0 && strstr(reply, "; server_max_window_bits=10"),
          "reply names the window: %s", reply);
    CHECK(negotiate("permessage-deflate; server_max_window_bits=9", 0, &a) && a.window_bits == 9, "9 bits");
    CHECK(pmd_reply_params(&a, reply, sizeof(reply)) > 0 && strstr(reply, "=9") && !strstr(reply, "=19"),
          "one digit: %s", reply);
    CHECK(negotiate("permessage-deflate; server_no_context_takeover; client_no_context_takeover", 0, &a),
          "both no-context-takeover flags");

    CHECK(!negotiate("permessage-deflate; server_max_window_bits=8", 0, &a), "8 bits: zlib cannot");
    CHECK(!negotiate("permessage-deflate; server_max_window_bits", 0, &a), "a value is required");
    CHECK(!negotiate("permessage-deflate; server_max_window_bits=16", 0, &a), "over 15");
    CHECK(!negotiate("permessage-deflate; server_max_window_bits=010", 0, &a), "leading zero");
    CHECK(!negotiate("permessage-deflate; client_max_window_bits=7", 0, &a), "client under 8");
    CHECK(!negotiate("permessage-deflate; client_no_context_takeover=1", 0, &a), "a flag with a value");
    CHECK(!negotiate("permessage-deflate; client_no_context_takeover; client_no_context_takeover", 0, &a),
          "repeated");
    CHECK(!negotiate("permessage-deflate; mystery", 0, &a), "unknown parameter");
    CHECK(!negotiate("x-webkit-deflate-frame", 0, &a), "another extension");
    CHECK(!negotiate("permessage-deflate", 1, &a), "no second offer");

    const char *two = "x-other; a=1, permessage-deflate; server_max_window_bits=8, permessage-deflate; "
                      "server_max_window_bits=12";
    CHECK(!negotiate(two, 0, &a), "the first offer cannot be honoured");
    CHECK(negotiate(two, 1, &a) && a.window_bits == 12, "the second can");
}

static struct msgbuf *text_message(size_t n)
{
    struct msgbuf *m = msgbuf_new(n);
    for (size_t i = 0; i < n; i++) {
        char c = (char)('a' + (i * 7 + i / 13) % 26);
        jb_raw(&m->jb, &c, 1);
    }
    return m;
}

/* Inflate a frame's payload through pmd_receive in pieces of `piece` bytes. */
static enum pmd_rx_status receive_in_pieces(struct rx_buffer *rx, const unsigned char *p, size_t n,
                                            size_t piece, size_t max)
{
    struct pmd_inflater *inf = NULL;
    enum pmd_rx_status st = PMD_RX_OK;
    size_t off = 0;
    do {
        size_t len = n - off < piece ? n - off : piece;
        st = pmd_receive(&inf, rx, p + off, len, off == 0, 1, 0, off + len == n, max);
        off += len;
    } while (st == PMD_RX_OK && off < n);
    CHECK(inf == NULL, "the inflater is gone after the message (status %d)", st);
    pmd_inflater_free(&inf);
    return st;
}

static void test_frames(void)
{
    struct pmd_compressor zip = {0};
    struct rx_buffer rx = {0};

    for (size_t n = 200; n <= 70000; n *= 7) {
        struct msgbuf *m = text_message(n);
        for (int bits = PMD_MIN_WINDOW_BITS; bits <= PMD_MAX_WINDOW_BITS; bits += 3) {
            struct msgbuf *f = pmd_compress(&zip, bits, m);
            CHECK(f && f != m && f->frame_head, "compressed (%zu bytes, %d bits)", n, bits);
            if (!f || f == m) {
                msgbuf_unref(f);
                continue;
            }
            const unsigned char *payload = (const unsigned char *)jb_text(&f->jb);
            const unsigned char *head = payload - f->frame_head;
            size_t len = f->jb.len;
            CHECK(head[0] == 0xC1, "FIN, RSV1, text: %02x", head[0]);
            size_t declared = (head[1] & 0x7f) < 126 ? head[1] : (head[1] & 0x7f) == 126
                                  ? (size_t)head[2] << 8 | head[3]
                                  : (size_t)head[8] << 8 | head[9];
            CHECK(declared == len && f->frame_head == (len < 126 ? 2u : len < 65536 ? 4u : 10u),
                  "length %zu in a %u-byte header", len, f->frame_head);
            CHECK(len < 4 || memcmp(payload + len - 4, "\x00\x00\xff\xff", 4), "tail removed");
            CHECK(receive_in_pieces(&rx, payload, len, 1000, 1 << 20) == PMD_RX_OK && rx.len == n &&
                      !memcmp(rx.data, jb_text(&m->jb), n), "round trip (%zu bytes, %d bits)", n, bits);
            CHECK(receive_in_pieces(&rx, payload, len, 1, 1 << 20) == PMD_RX_OK && rx.len == n,
                  "byte by byte");
            CHECK(receive_in_pieces(&rx, payload, len, len, n - 1) == PMD_RX_TOO_LARGE, "over max");
            msgbuf_unref(f);
        }
        msgbuf_unref(m);
    }
    CHECK(pmd_live_streams() == 3, "one deflater per window used (9, 12, 15): %ld", pmd_live_streams());

    struct msgbuf *tiny = msgbuf_new(8);
    jb_lit(&tiny->jb, "{}");
    struct msgbuf *same = pmd_compress(&zip, 15, tiny);
    CHECK(same == tiny && tiny->refs == 2, "a message deflate cannot shrink goes out as it is");
    msgbuf_unref(same);
    msgbuf_unref(tiny);

    static const unsigned char garbage[64] = {0xff, 0xff, 0xff};
    CHECK(receive_in_pieces(&rx, garbage, sizeof(garbage), 16, 1 << 20) == PMD_RX_BAD_DATA, "garbage");

    struct pmd_inflater *inf = NULL;
    CHECK(pmd_receive(&inf, &rx, "{\"a\":1}", 7, 1, 0, 1, 1, 100) == PMD_RX_OK && !inf && rx.len == 7 &&
              rx.binary, "an uncompressed message is appended as it is");
    CHECK(pmd_receive(&inf, &rx, NULL, 0, 1, 1, 0, 0, 100) == PMD_RX_OK && inf, "a message under way");
    CHECK(pmd_live_streams() == 4, "its inflater counts: %ld", pmd_live_streams());
    pmd_inflater_free(&inf);
    CHECK(!inf && pmd_live_streams() == 3, "freed when the connection closes mid-message");

    pmd_compressor_release(&zip);
    CHECK(pmd_live_streams() == 0, "all released: %ld", pmd_live_streams());
    rx_free(&rx);
}

int main(void)
{
    test_offers();
    test_frames();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures != 0;
}
