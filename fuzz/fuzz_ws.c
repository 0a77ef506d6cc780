/* fuzz_ws.c - libFuzzer target for the portal's WebSocket input (SPEC
 * §7.3, §7.4).
 *
 * master/portal.c does its WebSocket work with wslay's event API and has
 * no pure parser of its own, so this target covers the pieces that take
 * bytes from the network (the first input byte c picks one, c % 3):
 *   0  the Sec-WebSocket-Accept check (portal_msg_ws_accept_ok()) on an
 *      arbitrary header value, and portal_msg_ws_accept() on an arbitrary
 *      key, which must then be accepted with surrounding blanks;
 *   1  wslay's frame parser (wslay_frame_recv()) over the rest of the
 *      input, fed in chunks of 1 + c / 3 % 8 bytes (8: everything);
 *   2  the client pipeline as the portal runs it: wslay's event API with
 *      a 1 MiB message limit, every text message handed to
 *      portal_msg_on_text() within a joined session, pongs and closes
 *      sent to a sink, chunked as in 1.
 * wslay is the system library, built without coverage instrumentation:
 * the fuzzer is guided by our code only, so mode 1 and 2 mostly check
 * that the combination stays memory-safe and leak-free. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <wslay/wslay.h>

#include "fuzz_util.h"
#include "portal_msg.h"
#include "rly_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSG (1024 * 1024)   /* master/portal.h PORTAL_MAX_MSG */

/* The input as a socket that delivers at most chunk bytes per read. */
struct feed {
    const uint8_t      *p;
    size_t              n, chunk;
    struct portal_sess  sess;
    size_t              sent, msgs;
};

/* --- 0. Sec-WebSocket-Accept ---------------------------------------- */

static void
accept_check(const uint8_t *r, size_t n)
{
    /* RFC 6455 §1.3's example. */
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    static const char good[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    char             *v = malloc(n + 1), out[PORTAL_WS_ACCEPT_LEN + 1];
    char              padded[PORTAL_WS_ACCEPT_LEN + 5];
    size_t            i = 0, j;
    int               ok;

    if (v == NULL)
        abort();
    if (n > 0)
        memcpy(v, r, n);
    v[n] = '\0';
    ok = portal_msg_ws_accept_ok(key, v);
    FZ_CHECK(ok == 0 || ok == 1);
    /* Accepted exactly when the value is the right one within blanks. */
    while (v[i] == ' ' || v[i] == '\t')
        i++;
    j = strlen(v);
    while (j > i && (v[j - 1] == ' ' || v[j - 1] == '\t'))
        j--;
    FZ_CHECK(ok == (j - i == sizeof(good) - 1 &&
        memcmp(v + i, good, j - i) == 0));
    FZ_CHECK(portal_msg_ws_accept_ok(key, NULL) == 0);
    /* Any key: its own accept value passes, with blanks around it. */
    if (portal_msg_ws_accept(v, out) == 0) {
        FZ_CHECK(strlen(out) == PORTAL_WS_ACCEPT_LEN);
        snprintf(padded, sizeof(padded), " \t%s\t ", out);
        FZ_CHECK(portal_msg_ws_accept_ok(v, out) == 1);
        FZ_CHECK(portal_msg_ws_accept_ok(v, padded) == 1);
    }
    free(v);
}

/* --- 1. Frames -------------------------------------------------------- */

static ssize_t
frame_recv_cb(uint8_t *buf, size_t len, int flags, void *ud)
{
    struct feed *f = ud;
    size_t       n = len < f->chunk ? len : f->chunk;

    (void)flags;
    if (n > f->n)
        n = f->n;
    if (n == 0)
        return -1;          /* no more data: the parser stops */
    memcpy(buf, f->p, n);
    f->p += n;
    f->n -= n;
    return (ssize_t)n;
}

static ssize_t
frame_send_cb(const uint8_t *data, size_t len, int flags, void *ud)
{
    (void)data;
    (void)flags;
    (void)ud;
    return (ssize_t)len;
}

static int
genmask_cb(uint8_t *buf, size_t len, void *ud)
{
    (void)ud;
    memset(buf, 0x5A, len);
    return 0;
}

static void
frames(struct feed *f)
{
    struct wslay_frame_callbacks cb = { frame_send_cb, frame_recv_cb,
        genmask_cb };
    wslay_frame_context_ptr      ctx;
    struct wslay_frame_iocb      io;
    uint64_t                     got = 0;
    int                          guard = 0;

    if (wslay_frame_context_init(&ctx, &cb, f) != 0)
        abort();
    for (;;) {
        ssize_t r;

        memset(&io, 0, sizeof(io));
        r = wslay_frame_recv(ctx, &io);
        if (r == WSLAY_ERR_WANT_READ) {
            /* A callback failure reads as "want read"; stop at the end
             * of the input (and never spin). */
            if (f->n == 0 || ++guard > 1000000)
                break;
            continue;
        }
        if (r < 0)
            break;
        FZ_CHECK(io.opcode <= 0xF && io.rsv <= 7);
        FZ_CHECK((size_t)r == io.data_length);
        FZ_CHECK(io.data_length <= io.payload_length);
        got += io.data_length;
    }
    (void)got;
    wslay_frame_context_free(ctx);
}

/* --- 2. The portal's client pipeline ------------------------------ */

static ssize_t
ev_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *ud)
{
    struct feed *f = ud;
    size_t       n = len < f->chunk ? len : f->chunk;

    (void)flags;
    if (n > f->n)
        n = f->n;
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, f->p, n);
    f->p += n;
    f->n -= n;
    return (ssize_t)n;
}

static ssize_t
ev_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *ud)
{
    struct feed *f = ud;

    (void)ctx;
    (void)flags;
    /* Touch the bytes: they must be readable. */
    for (size_t i = 0; i < len; i++)
        f->sent += data[i] != 0;
    return (ssize_t)len;
}

static int
ev_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
    void *ud)
{
    (void)ctx;
    return genmask_cb(buf, len, ud);
}

static void
ev_msg_cb(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *ud)
{
    struct feed        *f = ud;
    struct portal_event ev;
    uint8_t            *text;

    (void)ctx;
    f->msgs++;
    FZ_CHECK(arg->msg_length <= MAX_MSG || wslay_is_ctrl_frame(arg->opcode));
    if (arg->opcode != WSLAY_TEXT_FRAME)
        return;
    text = fz_dup(arg->msg, arg->msg_length);
    (void)portal_msg_on_text(&f->sess, (const char *)text, arg->msg_length,
        &ev);
    FZ_CHECK(memchr(ev.detail, '\0', sizeof(ev.detail)) != NULL);
    free(text);
}

static void
pipeline(struct feed *f)
{
    struct wslay_event_callbacks cb;
    wslay_event_context_ptr      ctx;
    int                          rounds = 0;

    memset(&cb, 0, sizeof(cb));
    cb.recv_callback = ev_recv_cb;
    cb.send_callback = ev_send_cb;
    cb.genmask_callback = ev_genmask_cb;
    cb.on_msg_recv_callback = ev_msg_cb;
    portal_msg_sess_init(&f->sess);
    free(portal_msg_join(&f->sess, "secret"));
    if (wslay_event_context_client_init(&ctx, &cb, f) != 0)
        abort();
    wslay_event_config_set_max_recv_msg_length(ctx, MAX_MSG);
    while (f->n > 0 && wslay_event_want_read(ctx) && rounds++ < 1000) {
        if (wslay_event_recv(ctx) != 0)
            break;
        /* Pongs and the Close reply, as the portal flushes them. */
        if (wslay_event_want_write(ctx) && wslay_event_send(ctx) != 0)
            break;
    }
    wslay_event_context_free(ctx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct feed f;
    uint8_t     c;

    if (size == 0)
        return 0;
    c = data[0];
    memset(&f, 0, sizeof(f));
    f.p = data + 1;
    f.n = size - 1;
    f.chunk = c / 3 % 8 == 7 ? SIZE_MAX : 1 + (size_t)(c / 3 % 8);
    switch (c % 3) {
    case 0:  accept_check(f.p, f.n); break;
    case 1:  frames(&f); break;
    default: pipeline(&f); break;
    }
    return 0;
}
