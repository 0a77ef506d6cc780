/* gen_seeds.c - writes the generated seed inputs of the fuzz targets.
 *
 *   gen_seeds DIR          writes DIR/<target>/<name> for fuzz_stun,
 *                          fuzz_chandata, fuzz_core and fuzz_ws
 *   gen_seeds -x IN OUT    decodes a hex file (whitespace and '#'
 *                          comments ignored) into the binary file OUT
 *
 * The STUN seeds are built with the project's builder and keys (a
 * Binding, an authenticated Allocate, a ChannelBind, responses); the core
 * seeds are event scripts in the encoding of fuzz_core.h that walk the
 * main paths (the 401 dance, Allocate, ChannelBind, relaying both ways,
 * expiry, replacement across workers, failing binds, respawn, reload). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "auth.h"
#include "chandata.h"
#include "fuzz_core.h"
#include "stun_attr.h"
#include "stun_integrity.h"
#include "stun_msg.h"

#define SECRET  "4c98bf59c99b3e467ecd7cf9d6b3e527" \
                "9645fca59be67bc5bb4af3cf653761ab"

static const char *outdir;

struct out {
    uint8_t b[16384];
    size_t  n;
};

static void
save(const char *target, const char *name, const void *buf, size_t len)
{
    char  path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
    if ((f = fopen(path, "wb")) == NULL ||
        fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void
put8(struct out *o, unsigned v)
{
    if (o->n >= sizeof(o->b))
        abort();
    o->b[o->n++] = (uint8_t)v;
}

static void
put16(struct out *o, unsigned v)
{
    put8(o, v >> 8);
    put8(o, v);
}

static void
put32(struct out *o, uint32_t v)
{
    put16(o, v >> 16);
    put16(o, v & 0xFFFF);
}

static void
putn(struct out *o, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put8(o, ((const uint8_t *)p)[i]);
}

/* --- STUN ------------------------------------------------------------- */

static struct addr
addr_of(const char *s)
{
    struct addr a;

    if (addr_parse_ip_port(&a, s) != 0)
        abort();
    return a;
}

static void
user_key(const char *user, uint8_t key[16])
{
    uint64_t expiry;

    if (auth_key(SECRET, (const uint8_t *)user, strlen(user), &expiry,
            key) != 0)
        abort();
}

static void
finish(struct stun_builder *b, const char *target, const char *name)
{
    int n = stun_build_finish(b);

    if (n <= 0)
        abort();
    save(target, name, b->buf, (size_t)n);
}

static void
str_attr(struct stun_builder *b, uint16_t type, const char *s)
{
    stun_build_attr(b, type, s, strlen(s));
}

static void
stun_seeds(void)
{
    static const uint8_t txid[STUN_TXID_LEN] = { 0xA0, 1, 2, 3, 4, 5, 6,
        7, 8, 9, 10, 11 };
    const char          *user = "1892160000:n23JJ2wKKtt30oXi";
    const char          *nonce = "00000000-0000-0000-0000-000000000000";
    uint8_t              buf[1024], key[16], v[4] = { 17, 0, 0, 0 };
    uint8_t              ch[4] = { 0x40, 0x00, 0, 0 };
    struct stun_builder  b;
    struct addr          a;

    user_key(user, key);
    stun_build_init(&b, buf, sizeof(buf), 0x0001, txid, 0);
    finish(&b, "fuzz_stun", "binding");
    stun_build_init(&b, buf, sizeof(buf), 0x0001, txid, 0);
    stun_build_fingerprint(&b);
    finish(&b, "fuzz_stun", "binding_fp");

    stun_build_init(&b, buf, sizeof(buf), 0x0003, txid, 0);
    stun_build_attr(&b, STUN_ATTR_REQUESTED_TRANSPORT, v, 4);
    v[0] = 2;
    stun_build_attr(&b, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY, v, 4);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 600);
    str_attr(&b, STUN_ATTR_USERNAME, user);
    str_attr(&b, STUN_ATTR_REALM, AUTH_REALM);
    str_attr(&b, STUN_ATTR_NONCE, nonce);
    stun_build_integrity(&b, key);
    stun_build_fingerprint(&b);
    finish(&b, "fuzz_stun", "allocate_auth");

    stun_build_init(&b, buf, sizeof(buf), 0x0009, txid, 0);
    stun_build_attr(&b, STUN_ATTR_CHANNEL_NUMBER, ch, 4);
    a = addr_of("[2001:db8:2::9]:5000");
    stun_build_xor_addr(&b, STUN_ATTR_XOR_PEER_ADDRESS, &a);
    str_attr(&b, STUN_ATTR_USERNAME, user);
    str_attr(&b, STUN_ATTR_REALM, AUTH_REALM);
    str_attr(&b, STUN_ATTR_NONCE, nonce);
    stun_build_integrity(&b, key);
    finish(&b, "fuzz_stun", "channelbind");

    stun_build_init(&b, buf, sizeof(buf), 0x0113, txid, 0);
    str_attr(&b, STUN_ATTR_SOFTWARE, "firezone-relay; rev=fuzz");
    stun_build_error(&b, 401, "Unauthorized");
    str_attr(&b, STUN_ATTR_REALM, AUTH_REALM);
    str_attr(&b, STUN_ATTR_NONCE, nonce);
    stun_build_integrity(&b, key);
    finish(&b, "fuzz_stun", "error_401");

    stun_build_init(&b, buf, sizeof(buf), 0x0103, txid, 0);
    str_attr(&b, STUN_ATTR_SOFTWARE, "firezone-relay; rev=fuzz");
    a = addr_of("192.0.2.1:49152");
    stun_build_xor_addr(&b, STUN_ATTR_XOR_RELAYED_ADDRESS, &a);
    a = addr_of("[2001:db8::1]:49152");
    stun_build_xor_addr(&b, STUN_ATTR_XOR_RELAYED_ADDRESS, &a);
    a = addr_of("198.51.100.7:40000");
    stun_build_xor_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, &a);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 600);
    stun_build_integrity(&b, key);
    stun_build_fingerprint(&b);
    finish(&b, "fuzz_stun", "allocate_success");
}

static void
chandata_seeds(void)
{
    uint8_t buf[16];

    chandata_hdr(buf, 0x4000, 0);
    save("fuzz_chandata", "empty", buf, 4);
    chandata_hdr(buf, 0x4001, 5);
    memcpy(buf + 4, "hello", 5);
    save("fuzz_chandata", "hello", buf, 9);
    memset(buf + 9, 0, 3);
    save("fuzz_chandata", "padded", buf, 12);
    chandata_hdr(buf, 0x7FFF, 9);
    save("fuzz_chandata", "short", buf, 8);
}

/* --- Core event scripts ----------------------------------------------- */

static void
header(struct out *o, unsigned h0, unsigned h1)
{
    o->n = 0;
    put8(o, h0);
    put8(o, h1);
    put16(o, 0x1234);
}

/* A request: the event byte, client, method (0-5), attributes, txid
 * byte; the caller appends attribute values and the user. */
static void
req(struct out *o, unsigned flags, unsigned client, unsigned method,
    unsigned attrs, unsigned auth, unsigned txid)
{
    put8(o, FZC_EV_REQUEST | flags);
    put8(o, client);
    put8(o, method);
    put16(o, attrs | auth << FZC_A_AUTH_SHIFT);
    put8(o, txid);
}

static void
binding(struct out *o, unsigned client)
{
    req(o, 0, client, 0, FZC_A_FINGERPRINT, FZC_AUTH_NONE, 1);
}

/* Allocate: REQUESTED-TRANSPORT, LIFETIME, AAF IPv6 (the Firezone
 * client's request), then the auth attributes. */
static void
allocate(struct out *o, unsigned flags, unsigned client, unsigned user,
    unsigned auth, uint32_t lifetime, unsigned extra)
{
    req(o, flags, client, 1, FZC_A_TRANSPORT | FZC_A_LIFETIME | FZC_A_AAF |
        extra, auth, client + 10);
    put32(o, lifetime);
    put8(o, 1);                 /* AAF: IPv6 */
    if (auth != FZC_AUTH_NONE)
        put8(o, user);
}

/* The 401 dance, then an authenticated Allocate. */
static void
allocate_ok(struct out *o, unsigned client, unsigned user,
    uint32_t lifetime)
{
    allocate(o, 0, client, user, FZC_AUTH_NONE, lifetime, 0);
    allocate(o, 0, client, user, FZC_AUTH_NO_NONCE, lifetime, 0);
    allocate(o, 0, client, user, FZC_AUTH_OK, lifetime, 0);
}

static void
refresh(struct out *o, unsigned client, unsigned user, uint32_t lifetime)
{
    req(o, 0, client, 2, FZC_A_LIFETIME, FZC_AUTH_OK, 30);
    put32(o, lifetime);
    put8(o, user);
}

/* ChannelBind of channel 0x4000 + chan % 8 to peer index peer. */
static void
chan_bind(struct out *o, unsigned client, unsigned user, unsigned chan,
    unsigned peer)
{
    req(o, 0, client, 3, FZC_A_CHANNEL | FZC_A_PEER, FZC_AUTH_OK, 40);
    put8(o, chan);
    put8(o, peer);
    put8(o, user);
}

static void
permission(struct out *o, unsigned client, unsigned user)
{
    req(o, 0, client, 4, 0, FZC_AUTH_OK, 50);
    put8(o, user);
}

static void
chandata(struct out *o, unsigned client, unsigned chan, const char *data)
{
    put8(o, FZC_EV_CHANDATA);
    put8(o, client);
    put8(o, chan);
    put8(o, (unsigned)strlen(data));
    put8(o, 0);
    putn(o, data, strlen(data));
}

/* A datagram from peer index peer to the first bound relay port. */
static void
peer(struct out *o, unsigned peer, const char *data)
{
    put8(o, FZC_EV_PEER);
    put8(o, 0);
    put8(o, peer);
    put16(o, (unsigned)strlen(data));
    putn(o, data, strlen(data));
}

static void
ev2(struct out *o, unsigned ev, unsigned a)
{
    put8(o, ev);
    put8(o, a);
}

static void
time_step(struct out *o, unsigned sel, unsigned v)
{
    put8(o, FZC_EV_TIME);
    put8(o, sel);
    put8(o, v);
}

static void
core_seeds(void)
{
    struct out o;

    /* Dual relay: allocate, bind, relay both ways, refresh, expire. */
    header(&o, FZC_RELAY_DUAL, 11);
    binding(&o, 0);
    allocate_ok(&o, 0, FZC_USER_A, 600);
    chan_bind(&o, 0, FZC_USER_A, 0, 0);
    chan_bind(&o, 0, FZC_USER_A, 1, 2);
    permission(&o, 0, FZC_USER_A);
    chandata(&o, 0, 0, "hello");
    peer(&o, 0, "world");
    refresh(&o, 0, FZC_USER_A, 300);
    time_step(&o, 2, 6);
    ev2(&o, FZC_EV_TIMER, 0);
    chandata(&o, 0, 0, "late");
    time_step(&o, 3, 0);
    ev2(&o, FZC_EV_TIMER, 0);
    refresh(&o, 0, FZC_USER_A, 0);
    save("fuzz_core", "allocate_relay", o.b, o.n);

    /* Two workers: the same username from another worker's client
     * replaces the allocation; the owner reaps it at its timer. */
    header(&o, FZC_RELAY_V4 | FZC_TWO_WORKERS, 11);
    allocate_ok(&o, 0, FZC_USER_A, 600);
    chan_bind(&o, 0, FZC_USER_A, 0, 1);
    allocate_ok(&o, 1, FZC_USER_A, 600);
    peer(&o, 1, "to the old one");
    ev2(&o, FZC_EV_TIMER, 0);
    ev2(&o, FZC_EV_TIMER, 1);
    allocate_ok(&o, 2, FZC_USER_B, 600);
    ev2(&o, FZC_EV_RESPAWN, 0);
    chandata(&o, 2, 0, "after respawn");
    save("fuzz_core", "two_workers", o.b, o.n);

    /* Every bind refused: 8 ports, then 508; then a respawn whose
     * re-bind fails. */
    header(&o, FZC_RELAY_V6, 11);
    ev2(&o, FZC_EV_OPEN_FAIL, 9);
    allocate_ok(&o, 3, FZC_USER_B, 600);
    allocate(&o, 0, 3, FZC_USER_B, FZC_AUTH_OK, 600, 0);
    chan_bind(&o, 3, FZC_USER_B, 2, 2);
    ev2(&o, FZC_EV_OPEN_FAIL, 1);
    ev2(&o, FZC_EV_RESPAWN, 0);
    save("fuzz_core", "bind_failures", o.b, o.n);

    /* Gate, rate limit, a nonce table of two sockets, failing
     * randomness, a reload that denies every peer. */
    header(&o, FZC_RELAY_V4 | FZC_GATED | FZC_RATELIM | FZC_SMALL_NONCES, 3);
    binding(&o, 0);
    put8(&o, FZC_EV_READY);
    binding(&o, 0);
    allocate_ok(&o, 0, FZC_USER_A, 600);
    allocate_ok(&o, 1, FZC_USER_B, 600);
    allocate_ok(&o, 2, FZC_USER_C, 600);
    allocate(&o, 0, 0, FZC_USER_A, FZC_AUTH_OK, 600, 0);
    put8(&o, FZC_EV_RELOAD | FZC_F1);
    put8(&o, 3);
    put8(&o, 2);
    put8(&o, 1);
    chan_bind(&o, 1, FZC_USER_B, 3, 5);
    ev2(&o, FZC_EV_RAND_FAIL, 1);
    allocate(&o, 0, 5, FZC_USER_C, FZC_AUTH_NONE, 600, 0);
    save("fuzz_core", "gate_limits", o.b, o.n);

    /* A batch: the Allocate and its early replay, then the replay. */
    header(&o, FZC_RELAY_DUAL, 5);
    allocate(&o, 0, 4, FZC_USER_C, FZC_AUTH_NONE, 0, 0);
    allocate(&o, FZC_BATCH, 4, FZC_USER_C, FZC_AUTH_OK, 1200, 0);
    allocate(&o, 0, 4, FZC_USER_C, FZC_AUTH_OK, 1200, FZC_A_SAME_TXID);
    allocate(&o, 0, 4, FZC_USER_C, FZC_AUTH_OK, 1200, FZC_A_SAME_TXID);
    chan_bind(&o, 4, FZC_USER_C, 7, 2);
    time_step(&o, 1, 255);
    time_step(&o, 1, 255);
    time_step(&o, 1, 100);
    ev2(&o, FZC_EV_TIMER, 0);
    chan_bind(&o, 4, FZC_USER_C, 7, 2);
    time_step(&o, 2, 20);
    ev2(&o, FZC_EV_TIMER, 0);
    save("fuzz_core", "batch_replay", o.b, o.n);
}

/* --- WebSocket -------------------------------------------------------- */

static void
frame(struct out *o, unsigned b0, const char *payload)
{
    size_t n = strlen(payload);

    put8(o, b0);
    if (n < 126) {
        put8(o, (unsigned)n);
    } else {
        put8(o, 126);
        put16(o, (unsigned)n);
    }
    putn(o, payload, n);
}

static void
ws_seeds(void)
{
    static const char join_ok[] = "{\"topic\":\"relay\",\"event\":"
        "\"phx_reply\",\"payload\":{\"status\":\"ok\",\"response\":{}},"
        "\"ref\":0}";
    static const char init[] = "{\"topic\":\"relay\",\"event\":\"init\","
        "\"payload\":{}}";
    struct out        o;

    o.n = 0;
    put8(&o, 0);
    putn(&o, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28);
    save("fuzz_ws", "accept", o.b, o.n);
    o.n = 0;
    put8(&o, 3);
    putn(&o, " dGhlIHNhbXBsZSBub25jZQ==\t", 26);
    save("fuzz_ws", "accept_key", o.b, o.n);

    for (unsigned mode = 1; mode <= 2; mode++) {
        char name[32];

        for (unsigned chunk = 0; chunk < 8; chunk += 7) {
            o.n = 0;
            put8(&o, mode + 3 * chunk);
            frame(&o, 0x81, join_ok);
            frame(&o, 0x89, "");
            frame(&o, 0x01, "{\"topic\":\"relay\",");
            frame(&o, 0x80, "\"event\":\"init\",\"payload\":{}}");
            frame(&o, 0x81, init);
            frame(&o, 0x82, "binary");
            frame(&o, 0x8A, "pong");
            put8(&o, 0x88);
            put8(&o, 2);
            put16(&o, 1000);
            snprintf(name, sizeof(name), "session_%u_%u", mode, chunk);
            save("fuzz_ws", name, o.b, o.n);
        }
    }
    /* A masked frame with a 16-bit length. */
    o.n = 0;
    put8(&o, 1 + 3 * 7);
    put8(&o, 0x81);
    put8(&o, 0x80 | 126);
    put16(&o, 200);
    put32(&o, 0x01020304);
    for (int i = 0; i < 200; i++)
        put8(&o, 'a' ^ (unsigned)(i % 4 + 1));
    save("fuzz_ws", "masked_long", o.b, o.n);
}

/* --- Hex files -------------------------------------------------------- */

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int
unhex(const char *in, const char *outpath)
{
    FILE       *f = fopen(in, "r");
    struct out  o;
    int         c, hi = -1;

    if (f == NULL) {
        perror(in);
        return 1;
    }
    o.n = 0;
    while ((c = getc(f)) != EOF) {
        if (c == '#') {
            while ((c = getc(f)) != EOF && c != '\n')
                ;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        if (hexval(c) < 0) {
            fprintf(stderr, "%s: not hex: '%c'\n", in, c);
            fclose(f);
            return 1;
        }
        if (hi < 0) {
            hi = hexval(c);
        } else {
            put8(&o, (unsigned)(hi << 4 | hexval(c)));
            hi = -1;
        }
    }
    fclose(f);
    if (hi >= 0) {
        fprintf(stderr, "%s: odd number of hex digits\n", in);
        return 1;
    }
    if ((f = fopen(outpath, "wb")) == NULL ||
        fwrite(o.b, 1, o.n, f) != o.n || fclose(f) != 0) {
        perror(outpath);
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "-x") == 0)
        return unhex(argv[2], argv[3]);
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds DIR | gen_seeds -x IN OUT\n");
        return 64;
    }
    outdir = argv[1];
    stun_seeds();
    chandata_seeds();
    core_seeds();
    ws_seeds();
    return 0;
}
