/* check_turn_core.c - the TURN core against SPEC §2-§6 and the behaviour
 * cases of SPEC §11 (fixture: R4/R6/R46, ports 49152-65535, one worker,
 * all-zero randomness unless a case counts).  Time moves only when a test
 * moves it.  tests/unit/spec_cases maps each case id to its test here. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atab.h"
#include "auth.h"
#include "chandata.h"
#include "helper.h"
#include "rly_err.h"
#include "stun_integrity.h"
#include "stun_msg.h"
#include "suites.h"
#include "turn_core.h"

#define SECRET  "4c98bf59c99b3e467ecd7cf9d6b3e5279645fca59be67bc5bb4af3cf653761ab"
#define SECRET2 "1cab293a-4032-46f4-862a-40e5d174b0d2"
#define WALL    1700000000ULL
#define Z       "00000000-0000-0000-0000-000000000000"
#define SW      "firezone-relay; rev=test"

#define C   "198.51.100.7:40000"
#define C2  "198.51.100.8:40000"
#define C6  "[2001:db8:1::7]:40000"
#define P   "203.0.113.9:5000"
#define P2  "203.0.113.10:5000"
#define P6  "[2001:db8:2::9]:5000"

enum relay { R4, R6, R46 };

/* --- Fixture ---------------------------------------------------------- */

struct nonce_ent {
    struct addr a;
    char        text[40];
};

static struct {
    void               *region;
    struct atab        *tab;
    struct turn_core   *core;
    struct turn_conf    conf;
    struct peer_policy  pol;
    struct turn_cmdq    q;
    struct rand_counter rc;
    struct nonce_ent    nonces[64];
    int                 nn;
    uint8_t             txn;
    char                u[64], u2[64];
    enum relay          relay;
    uint32_t            max_allocs, max_chans, nworkers;
} F;

typedef void (*tweak_fn)(struct turn_conf *conf, struct peer_policy *pol);

static void
fx_up_ex(enum relay relay, int counting, tweak_fn tweak)
{
    uint8_t ukey[32] = { 1 }, hkey[16] = { 2 };
    size_t  size;

    if (F.max_allocs == 0)
        F.max_allocs = 64;
    if (F.max_chans == 0)
        F.max_chans = 256;
    if (F.nworkers == 0)
        F.nworkers = 2;
    size = atab_region_size(F.max_allocs, F.max_chans, F.nworkers);
    F.region = aligned_alloc(64, (size + 63) & ~(size_t)63);
    ck_assert_ptr_nonnull(F.region);
    memset(F.region, 0, size);
    ck_assert_int_eq(atab_format(F.region, size, F.max_allocs, F.max_chans,
        F.nworkers, ukey, hkey), 0);
    ck_assert_int_eq(atab_attach(F.region, size, &F.tab), 0);
    atab_set_ready(F.tab);

    peer_policy_init(&F.pol);
    memset(&F.conf, 0, sizeof(F.conf));
    F.relay = relay;
    if (relay != R6)
        F.conf.public4 = A("192.0.2.1:0");
    if (relay != R4)
        F.conf.public6 = A("[2001:db8::1]:0");
    if (relay != R6) {
        struct addr l = A("192.0.2.1:3478");
        peer_policy_listen(&F.pol, &l);
    }
    if (relay != R4) {
        struct addr l = A("[2001:db8::1]:3478");
        peer_policy_listen(&F.pol, &l);
    }
    F.conf.listen_port = 3478;
    F.conf.port_min = 49152;
    F.conf.port_max = 65535;
    F.conf.max_allocs = 16384;
    F.conf.nonce_table_size = 65536;
    F.conf.error_rate = 100;
    F.conf.error_burst = 200;
    F.conf.secret = SECRET;
    F.conf.software = SW;
    F.conf.worker = 0;
    F.conf.stats = atab_worker_stats(F.tab, 0);
    F.conf.rand = counting ? rand_count : rand_zero;
    F.conf.rand_ud = &F.rc;
    F.conf.log.level = RLY_LOG_ERROR;
    F.conf.gated = 1;
    if (tweak != NULL)
        tweak(&F.conf, &F.pol);
    F.conf.policy = &F.pol;
    F.core = turn_core_new(&F.conf, F.tab);
    ck_assert_ptr_nonnull(F.core);
    ck_assert_int_eq(turn_cmdq_init(&F.q, 64, 64 * 1024), 0);
    snprintf(F.u, sizeof(F.u), "%llu:saltA", WALL + 1000);
    snprintf(F.u2, sizeof(F.u2), "%llu:saltB", WALL + 1000);
}

static void
fx_up(enum relay relay, int counting)
{
    fx_up_ex(relay, counting, NULL);
}

static void
fx_down(void)
{
    turn_core_free(F.core);
    turn_cmdq_fini(&F.q);
    atab_detach(F.tab);
    free(F.region);
    memset(&F, 0, sizeof(F));
}

static struct turn_stats *
stats(void)
{
    return atab_worker_stats(F.tab, 0);
}

/* --- Requests --------------------------------------------------------- */

struct rq {
    uint8_t             buf[2048];
    uint8_t             txid[STUN_TXID_LEN];
    struct stun_builder b;
    size_t              len;
};

static void
rq_init_type(struct rq *r, uint16_t type)
{
    memset(r->txid, 0, sizeof(r->txid));
    r->txid[0] = 0xA0;
    r->txid[11] = ++F.txn;
    r->txid[10] = (uint8_t)(F.txn >> 8);
    stun_build_init(&r->b, r->buf, sizeof(r->buf), type, r->txid, 0);
}

static void
rq_init(struct rq *r, uint16_t method)
{
    rq_init_type(r, stun_type(method, STUN_REQUEST));
}

static void
rq_str(struct rq *r, uint16_t type, const char *s)
{
    stun_build_attr(&r->b, type, s, strlen(s));
}

static void
rq_u32(struct rq *r, uint16_t type, uint32_t v)
{
    stun_build_u32(&r->b, type, v);
}

static void
rq_transport(struct rq *r, uint8_t proto)
{
    uint8_t v[4] = { proto, 0, 0, 0 };

    stun_build_attr(&r->b, STUN_ATTR_REQUESTED_TRANSPORT, v, 4);
}

static void
rq_family(struct rq *r, uint16_t type, uint8_t fam)
{
    uint8_t v[4] = { fam, 0, 0, 0 };

    stun_build_attr(&r->b, type, v, 4);
}

static void
rq_channel(struct rq *r, uint16_t number, const char *peer)
{
    uint8_t     v[4] = { (uint8_t)(number >> 8), (uint8_t)number, 0, 0 };
    struct addr a = A(peer);

    stun_build_attr(&r->b, STUN_ATTR_CHANNEL_NUMBER, v, 4);
    stun_build_xor_addr(&r->b, STUN_ATTR_XOR_PEER_ADDRESS, &a);
}

static void
key_of(const char *user, const char *secret, uint8_t key[16])
{
    uint64_t expiry;

    ck_assert_int_eq(auth_key(secret, (const uint8_t *)user, strlen(user),
        &expiry, key), 0);
}

/* USERNAME, REALM, NONCE (when given), MESSAGE-INTEGRITY with secret. */
static void
rq_auth_with(struct rq *r, const char *user, const char *nonce,
    const char *secret)
{
    uint8_t key[16];

    rq_str(r, STUN_ATTR_USERNAME, user);
    rq_str(r, STUN_ATTR_REALM, AUTH_REALM);
    if (nonce != NULL)
        rq_str(r, STUN_ATTR_NONCE, nonce);
    key_of(user, secret, key);
    stun_build_integrity(&r->b, key);
}

static const char *nonce_for(const char *client);

static void
rq_auth(struct rq *r, const char *client, const char *user)
{
    rq_auth_with(r, user, nonce_for(client), SECRET);
}

/* Sends r from client at now; returns the core's return code. */
static int
send_at(const char *client, struct rq *r, turn_ms_t now,
    enum turn_drop *drop)
{
    struct addr_path path;
    int              len = stun_build_finish(&r->b);

    ck_assert_int_gt(len, 0);
    r->len = (size_t)len;
    path.remote = A(client);
    path.local = path.remote.family == ADDR_V4 ? A("192.0.2.1:3478") :
        A("[2001:db8::1]:3478");
    turn_cmdq_reset(&F.q);
    return turn_core_on_client(F.core, &path, r->buf, r->len, now, WALL,
        &F.q, drop);
}

static int
raw_at(const char *client, const void *buf, size_t len, turn_ms_t now,
    enum turn_drop *drop)
{
    struct addr_path path;

    path.remote = A(client);
    path.local = path.remote.family == ADDR_V4 ? A("192.0.2.1:3478") :
        A("[2001:db8::1]:3478");
    turn_cmdq_reset(&F.q);
    return turn_core_on_client(F.core, &path, buf, len, now, WALL, &F.q,
        drop);
}

/* --- Responses -------------------------------------------------------- */

/* Parses the i-th command as a STUN response sent to a client. */
static void
resp(size_t i, struct stun_msg *m)
{
    ck_assert_uint_gt(F.q.n, i);
    ck_assert_int_eq(F.q.cmd[i].kind, TURN_CMD_SEND_CLIENT);
    ck_assert_uint_eq(F.q.cmd[i].paylen, 0);
    ck_assert_int_eq(stun_msg_parse(m, F.q.cmd[i].hdr, F.q.cmd[i].hdrlen), 0);
}

/* The only response in the queue. */
static void
only_resp(struct stun_msg *m)
{
    ck_assert_uint_eq(F.q.n, 1);
    resp(0, m);
}

static unsigned
code_of(const struct stun_msg *m)
{
    size_t         len;
    const uint8_t *v = stun_msg_attr(m, STUN_K_ERROR_CODE, &len);

    if (v == NULL)
        return 0;
    return (unsigned)(v[2] & 7) * 100 + v[3];
}

static int
has(const struct stun_msg *m, enum stun_known k)
{
    size_t len;

    return stun_msg_attr(m, k, &len) != NULL;
}

static void
save_nonce(const char *client, const struct stun_msg *m)
{
    size_t         len;
    const uint8_t *v = stun_msg_attr(m, STUN_K_NONCE, &len);
    struct addr    a = A(client);
    int            i;

    if (v == NULL)
        return;
    for (i = 0; i < F.nn; i++)
        if (addr_eq(&F.nonces[i].a, &a))
            break;
    if (i == F.nn) {
        ck_assert_int_lt(F.nn, 64);
        F.nn++;
    }
    F.nonces[i].a = a;
    ck_assert_uint_lt(len, sizeof(F.nonces[i].text));
    memcpy(F.nonces[i].text, v, len);
    F.nonces[i].text[len] = '\0';
}

static const char *
nonce_for(const char *client)
{
    struct addr a = A(client);

    for (int i = 0; i < F.nn; i++)
        if (addr_eq(&F.nonces[i].a, &a))
            return F.nonces[i].text;
    return Z;
}

static void
assert_signed_by(const struct stun_msg *m, const char *user)
{
    uint8_t key[16];

    ck_assert(has(m, STUN_K_MESSAGE_INTEGRITY));
    key_of(user, SECRET, key);
    ck_assert_int_eq(stun_integrity_verify(m, key, 16), 0);
}

static void
assert_unsigned(const struct stun_msg *m)
{
    ck_assert(!has(m, STUN_K_MESSAGE_INTEGRITY));
}

static void
assert_error(const struct stun_msg *m, uint16_t method, unsigned code,
    const char *reason)
{
    size_t         len;
    const uint8_t *v;

    ck_assert_uint_eq(m->type, stun_type(method, STUN_ERROR));
    ck_assert_uint_eq(code_of(m), code);
    v = stun_msg_attr(m, STUN_K_ERROR_CODE, &len);
    ck_assert_uint_eq(len - 4, strlen(reason));
    ck_assert(memcmp(v + 4, reason, len - 4) == 0);
}

/* Attribute types of m in wire order into types[]; returns the count. */
static size_t
attr_types(const struct stun_msg *m, uint16_t *types, size_t cap)
{
    size_t off = STUN_HDR_LEN, n = 0;

    while (off + 4 <= m->len && n < cap) {
        uint16_t t = (uint16_t)(m->buf[off] << 8 | m->buf[off + 1]);
        uint16_t l = (uint16_t)(m->buf[off + 2] << 8 | m->buf[off + 3]);

        types[n++] = t;
        off += 4 + ((l + 3u) & ~3u);
    }
    return n;
}

static void
assert_attrs(const struct stun_msg *m, const uint16_t *want, size_t n)
{
    uint16_t got[32];
    size_t   k = attr_types(m, got, 32);

    ck_assert_uint_eq(k, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(got[i], want[i]);
}

static struct addr
xor_addr(const struct stun_msg *m, enum stun_known k, int nth)
{
    struct addr a;
    size_t      off = STUN_HDR_LEN;
    uint16_t    type = k == STUN_K_XOR_MAPPED_ADDRESS ?
        STUN_ATTR_XOR_MAPPED_ADDRESS : STUN_ATTR_XOR_RELAYED_ADDRESS;

    while (off + 4 <= m->len) {
        uint16_t t = (uint16_t)(m->buf[off] << 8 | m->buf[off + 1]);
        uint16_t l = (uint16_t)(m->buf[off + 2] << 8 | m->buf[off + 3]);

        if (t == type && nth-- == 0) {
            ck_assert_int_eq(stun_xor_addr_decode(m->buf + off + 4, l,
                m->txid, &a), 0);
            return a;
        }
        off += 4 + ((l + 3u) & ~3u);
    }
    ck_abort_msg("no such address attribute");
    return a;
}

static uint32_t
lifetime_of(const struct stun_msg *m)
{
    size_t         len;
    const uint8_t *v = stun_msg_attr(m, STUN_K_LIFETIME, &len);
    uint32_t       l;

    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(stun_attr_u32(v, len, &l), 0);
    return l;
}

/* --- Allocation helpers ------------------------------------------------ */

struct aopts {
    long        lifetime;       /* < 0: absent */
    int         aaf6;           /* ADDITIONAL-ADDRESS-FAMILY IPv6 */
    int         raf;            /* 0 absent, 1 IPv4, 2 IPv6 */
    const char *user;
};

/* Credential-less Allocate: expect a 401 and keep its nonce. */
static void
challenge(const char *client, turn_ms_t now)
{
    struct rq      r;
    struct stun_msg m;

    rq_init(&r, STUN_ALLOCATE);
    rq_transport(&r, 17);
    ck_assert_int_eq(send_at(client, &r, now, NULL), 0);
    only_resp(&m);
    ck_assert_uint_eq(code_of(&m), 401);
    save_nonce(client, &m);
}

static void
alloc_rq(struct rq *r, const char *client, const struct aopts *o)
{
    rq_init(r, STUN_ALLOCATE);
    rq_transport(r, 17);
    if (o->lifetime >= 0)
        rq_u32(r, STUN_ATTR_LIFETIME, (uint32_t)o->lifetime);
    if (o->raf)
        rq_family(r, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, (uint8_t)o->raf);
    if (o->aaf6)
        rq_family(r, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY, 0x02);
    rq_auth(r, client, o->user ? o->user : F.u);
}

/* Carries out the RELAY_OPEN commands in the queue (ok or failing); the
 * follow-up commands land in a fresh queue.  Returns the number done. */
static int
open_relays(int ok, turn_ms_t now)
{
    struct turn_cmd cmds[16];
    size_t          n = 0;
    int             done = 0;

    for (size_t i = 0; i < F.q.n && n < 16; i++)
        if (F.q.cmd[i].kind == TURN_CMD_RELAY_OPEN)
            cmds[n++] = F.q.cmd[i];
    turn_cmdq_reset(&F.q);
    for (size_t i = 0; i < n; i++, done++)
        ck_assert_int_eq(turn_core_on_relay_opened(F.core, cmds[i].ref, ok,
            ok ? NULL : "Address already in use", now, &F.q), 0);
    return done;
}

static const struct turn_cmd *
find_cmd(enum turn_cmd_kind kind)
{
    for (size_t i = 0; i < F.q.n; i++)
        if (F.q.cmd[i].kind == kind)
            return &F.q.cmd[i];
    return NULL;
}

/* alloc(client): the 401 dance (if no nonce yet) and an auth'd Allocate
 * whose relay sockets open; returns the success, sets *ref. */
static void
alloc_ex(const char *client, const struct aopts *o, turn_ms_t now,
    struct stun_msg *m, struct atab_ref *ref)
{
    struct rq              r;
    const struct turn_cmd *open;

    if (strcmp(nonce_for(client), Z) == 0 && F.nn == 0)
        challenge(client, now);
    alloc_rq(&r, client, o);
    ck_assert_int_eq(send_at(client, &r, now, NULL), 0);
    open = find_cmd(TURN_CMD_RELAY_OPEN);
    ck_assert_ptr_nonnull(open);
    if (ref != NULL)
        *ref = open->ref;
    ck_assert_int_eq(open_relays(1, now), 1);
    only_resp(m);
    ck_assert_uint_eq(m->type, 0x0103);
}

static struct atab_ref
alloc_at(const char *client, long lifetime, turn_ms_t now)
{
    struct aopts    o = { .lifetime = lifetime };
    struct stun_msg m;
    struct atab_ref ref;

    alloc_ex(client, &o, now, &m, &ref);
    return ref;
}

static void
refresh_rq(struct rq *r, const char *client, long lifetime)
{
    rq_init(r, STUN_REFRESH);
    if (lifetime >= 0)
        rq_u32(r, STUN_ATTR_LIFETIME, (uint32_t)lifetime);
    rq_auth(r, client, F.u);
}

/* ChannelBind from client; returns the response code (0 = success). */
static unsigned
bind_at(const char *client, const char *user, uint16_t number,
    const char *peer, turn_ms_t now)
{
    struct rq       r;
    struct stun_msg m;
    size_t          i;

    rq_init(&r, STUN_CHANNEL_BIND);
    rq_channel(&r, number, peer);
    rq_auth(&r, client, user);
    ck_assert_int_eq(send_at(client, &r, now, NULL), 0);
    ck_assert_uint_ge(F.q.n, 1);
    i = F.q.n - 1;
    resp(i, &m);
    assert_signed_by(&m, user);
    if (code_of(&m) == 0) {
        ck_assert_uint_eq(m.type, 0x0109);
        ck_assert_ptr_nonnull(find_cmd(TURN_CMD_CHAN_BOUND));
    }
    return code_of(&m);
}

/* Client ChannelData; returns the core's code, *drop the reason. */
static int
cdata_at(const char *client, uint16_t number, const char *payload,
    turn_ms_t now, enum turn_drop *drop)
{
    /* Commands point into the datagram: keep it alive after the call. */
    static uint8_t buf[256];
    size_t         len = strlen(payload);

    chandata_hdr(buf, number, (uint16_t)len);
    memcpy(buf + 4, payload, len);
    return raw_at(client, buf, 4 + len, now, drop);
}

/* A peer datagram to relay port of ref. */
static int
peer_at(struct atab_ref ref, uint16_t port, const char *peer,
    const char *payload, turn_ms_t now, enum turn_drop *drop)
{
    struct addr p = A(peer);

    turn_cmdq_reset(&F.q);
    return turn_core_on_peer(F.core, ref, port, &p, (const uint8_t *)payload,
        strlen(payload), now, &F.q, drop);
}

static uint16_t
port_of(struct atab_ref ref)
{
    return atab_alloc_at(F.tab, ref.idx)->port;
}

static void
counts(uint32_t *allocs, uint32_t *chans)
{
    uint32_t active;

    atab_count(F.tab, &active, allocs, chans);
}

/* --- SPEC §2.2-§2.5: demultiplexing and pre-checks ------------------- */

START_TEST(test_c1_binding)
{
    struct rq       r;
    struct stun_msg m;
    struct addr     x;
    const uint16_t  want[] = { STUN_ATTR_SOFTWARE,
        STUN_ATTR_XOR_MAPPED_ADDRESS };
    size_t          len;
    const uint8_t  *sw;

    fx_up(R4, 0);
    rq_init(&r, STUN_BINDING);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    ck_assert_uint_eq(m.type, 0x0101);
    ck_assert(memcmp(m.txid, r.txid, STUN_TXID_LEN) == 0);
    assert_attrs(&m, want, 2);
    x = xor_addr(&m, STUN_K_XOR_MAPPED_ADDRESS, 0);
    ck_assert(addr_eq(&x, &(struct addr){ 0 }) == 0);
    {
        struct addr c = A(C);
        ck_assert(addr_eq(&x, &c));
    }
    sw = stun_msg_attr(&m, STUN_K_SOFTWARE, &len);
    ck_assert_uint_eq(len, strlen(SW));
    ck_assert(memcmp(sw, SW, len) == 0);
    ck_assert_uint_eq(stats()->responses[TURN_MT_BINDING][TURN_RESP_SUCCESS],
        1);
}
END_TEST

START_TEST(test_c2_port_zero)
{
    struct rq      r;
    enum turn_drop d = TURN_DROP_NONE;

    fx_up(R4, 0);
    rq_init(&r, STUN_BINDING);
    ck_assert_int_eq(send_at("198.51.100.7:0", &r, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_PORT_ZERO);
    ck_assert_int_eq(cdata_at("198.51.100.7:0", 0x4000, "x", 0, &d),
        RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_PORT_ZERO);
    ck_assert_uint_eq(F.q.n, 0);
    ck_assert_uint_eq(stats()->dropped[TURN_DROP_PORT_ZERO], 2);
}
END_TEST

START_TEST(test_c3_malformed)
{
    uint8_t        b[64];
    struct rq      r;
    enum turn_drop d;
    int            len;
    static const uint8_t first[] = { 0x80, 0xC0, 0xFF, 0x04, 0x3F };

    fx_up(R4, 0);
    ck_assert_int_eq(raw_at(C, b, 0, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_MALFORMED);
    for (size_t i = 0; i < sizeof(first); i++) {
        memset(b, 0, sizeof(b));
        b[0] = first[i];
        d = TURN_DROP_NONE;
        ck_assert_int_eq(raw_at(C, b, 20, 0, &d), RLY_ERR_DROP);
        ck_assert_int_eq(d, TURN_DROP_MALFORMED);
    }
    /* Bad cookie. */
    rq_init(&r, STUN_BINDING);
    len = stun_build_finish(&r.b);
    memcpy(b, r.buf, (size_t)len);
    b[4] ^= 1;
    ck_assert_int_eq(raw_at(C, b, (size_t)len, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_MALFORMED);
    /* Length field 4 too large. */
    memcpy(b, r.buf, (size_t)len);
    b[3] = 4;
    ck_assert_int_eq(raw_at(C, b, (size_t)len, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_MALFORMED);
    /* Four trailing bytes. */
    memcpy(b, r.buf, (size_t)len);
    memset(b + len, 0, 4);
    ck_assert_int_eq(raw_at(C, b, (size_t)len + 4, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_MALFORMED);
    ck_assert_uint_eq(F.q.n, 0);
    ck_assert_uint_eq(stats()->dropped[TURN_DROP_MALFORMED], 9);
}
END_TEST

START_TEST(test_c4_not_request)
{
    struct rq      r;
    enum turn_drop d;

    fx_up(R4, 0);
    rq_init_type(&r, 0x0016);               /* Send indication */
    ck_assert_int_eq(send_at(C, &r, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_NOT_REQUEST);
    rq_init_type(&r, 0x0101);               /* Binding success */
    ck_assert_int_eq(send_at(C, &r, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_NOT_REQUEST);
    rq_init_type(&r, 0x0113);               /* Allocate error */
    rq_str(&r, STUN_ATTR_USERNAME, "\xff\xfe");     /* bad value: no reply */
    ck_assert_int_eq(send_at(C, &r, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_NOT_REQUEST);
    ck_assert_uint_eq(F.q.n, 0);
}
END_TEST

START_TEST(test_c5_unknown_method)
{
    struct rq       r;
    struct stun_msg m;
    const uint16_t  want[] = { STUN_ATTR_SOFTWARE, STUN_ATTR_ERROR_CODE };

    fx_up(R4, 0);
    rq_init(&r, 0x00A);
    rq_auth(&r, C, F.u);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, 0x00A, 400, "Bad Request");
    assert_attrs(&m, want, 2);
    ck_assert_uint_eq(stats()->responses[TURN_MT_OTHER][TURN_RESP_400], 1);
    /* Send 0x006 and Data 0x007 requests too. */
    rq_init(&r, STUN_SEND);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_SEND, 400, "Bad Request");
}
END_TEST

START_TEST(test_c6_unknown_attributes_skipped)
{
    struct rq       r;
    struct stun_msg m;
    uint8_t         v[4] = { 0x80, 0, 0, 0 };

    fx_up(R4, 0);
    rq_init(&r, STUN_BINDING);
    stun_build_attr(&r.b, 0x0018, v, 4);
    stun_build_attr(&r.b, 0x7FFF, v, 3);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    ck_assert_uint_eq(m.type, 0x0101);
}
END_TEST

START_TEST(test_c7_unauthenticated_400)
{
    struct rq       r;
    struct stun_msg m;
    const uint16_t  want[] = { STUN_ATTR_SOFTWARE, STUN_ATTR_ERROR_CODE };

    fx_up(R4, 0);
    challenge(C, 0);
    rq_init(&r, STUN_CHANNEL_BIND);
    rq_channel(&r, 0x3FFF, P);
    rq_auth(&r, C, F.u);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_CHANNEL_BIND, 400, "Bad Request");
    assert_attrs(&m, want, 2);
    rq_init(&r, STUN_ALLOCATE);
    rq_auth(&r, C, F.u);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_ALLOCATE, 400, "Bad Request");
    assert_attrs(&m, want, 2);
    /* No nonce use consumed: the nonce still allows 10,000 requests. */
    for (int i = 0; i < 10000; i++) {
        rq_init(&r, STUN_CREATE_PERMISSION);
        rq_auth(&r, C, F.u);
        ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
        resp(0, &m);
        ck_assert_uint_eq(m.type, 0x0108);
    }
}
END_TEST

START_TEST(test_c8_fingerprint)
{
    struct rq       r;
    struct stun_msg m;
    enum turn_drop  d;
    uint16_t        types[8];
    size_t          n;

    fx_up(R4, 0);
    rq_init(&r, STUN_BINDING);
    stun_build_fingerprint(&r.b);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    n = attr_types(&m, types, 8);
    ck_assert_uint_eq(types[n - 1], STUN_ATTR_FINGERPRINT);
    ck_assert_int_eq(stun_fingerprint_verify(&m), 0);
    /* A wrong one. */
    rq_init(&r, STUN_BINDING);
    stun_build_fingerprint(&r.b);
    r.len = (size_t)stun_build_finish(&r.b);
    r.buf[r.len - 1] ^= 1;
    ck_assert_int_eq(raw_at(C, r.buf, r.len, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_FINGERPRINT);
    /* One that is not last. */
    rq_init(&r, STUN_BINDING);
    stun_build_fingerprint(&r.b);
    rq_str(&r, STUN_ATTR_SOFTWARE, "x");
    ck_assert_int_eq(send_at(C, &r, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_FINGERPRINT);
    ck_assert_uint_eq(stats()->dropped[TURN_DROP_FINGERPRINT], 2);
}
END_TEST

START_TEST(test_c9_allocate_with_fingerprint)
{
    struct rq       r;
    struct stun_msg m;
    uint16_t        types[16];
    size_t          n;
    struct aopts    o = { .lifetime = -1 };

    fx_up(R4, 0);
    challenge(C, 0);
    alloc_rq(&r, C, &o);
    stun_build_fingerprint(&r.b);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    open_relays(1, 0);
    only_resp(&m);
    n = attr_types(&m, types, 16);
    ck_assert_uint_ge(n, 2);
    ck_assert_uint_eq(types[n - 2], STUN_ATTR_MESSAGE_INTEGRITY);
    ck_assert_uint_eq(types[n - 1], STUN_ATTR_FINGERPRINT);
    assert_signed_by(&m, F.u);
    ck_assert_int_eq(stun_fingerprint_verify(&m), 0);
}
END_TEST

/* --- SPEC §3: authentication ----------------------------------------- */

START_TEST(test_c10_only_sha256_integrity)
{
    struct rq       r;
    struct stun_msg m;
    uint8_t         mi[32] = { 0 };

    fx_up(R4, 0);
    rq_init(&r, STUN_ALLOCATE);
    rq_transport(&r, 17);
    rq_str(&r, STUN_ATTR_USERNAME, F.u);
    rq_str(&r, STUN_ATTR_NONCE, Z);
    stun_build_attr(&r.b, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, mi, 32);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_ALLOCATE, 401, "Unauthorized");
    assert_signed_by(&m, F.u);
}
END_TEST

START_TEST(test_c11_challenge_without_credentials)
{
    struct rq       r;
    struct stun_msg m;
    const uint16_t  want[] = { STUN_ATTR_SOFTWARE, STUN_ATTR_ERROR_CODE,
        STUN_ATTR_REALM, STUN_ATTR_NONCE };
    size_t          len;
    const uint8_t  *v;

    fx_up(R4, 0);
    rq_init(&r, STUN_ALLOCATE);
    rq_transport(&r, 17);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_ALLOCATE, 401, "Unauthorized");
    assert_attrs(&m, want, 4);
    assert_unsigned(&m);
    v = stun_msg_attr(&m, STUN_K_REALM, &len);
    ck_assert_uint_eq(len, 8);
    ck_assert(memcmp(v, "firezone", 8) == 0);
    v = stun_msg_attr(&m, STUN_K_NONCE, &len);
    ck_assert_uint_eq(len, strlen(Z));
    ck_assert(memcmp(v, Z, len) == 0);
    ck_assert_uint_eq(stats()->responses[TURN_MT_ALLOCATE][TURN_RESP_401], 1);
}
END_TEST

START_TEST(test_c12_challenge_signed_when_username)
{
    struct rq       r;
    struct stun_msg m;

    fx_up(R4, 0);
    rq_init(&r, STUN_ALLOCATE);
    rq_transport(&r, 17);
    rq_auth_with(&r, F.u, NULL, SECRET);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_ALLOCATE, 401, "Unauthorized");
    ck_assert(has(&m, STUN_K_REALM));
    ck_assert(has(&m, STUN_K_NONCE));
    assert_signed_by(&m, F.u);
}
END_TEST

START_TEST(test_c13_unparsable_username_dropped)
{
    struct rq      r;
    enum turn_drop d;
    uint8_t        key[16] = { 0 };

    fx_up(R4, 0);
    rq_init(&r, STUN_ALLOCATE);
    rq_transport(&r, 17);
    rq_str(&r, STUN_ATTR_USERNAME, "foobar");
    stun_build_integrity(&r.b, key);
    ck_assert_int_eq(send_at(C, &r, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_BAD_USERNAME);
    ck_assert_uint_eq(F.q.n, 0);
}
END_TEST

START_TEST(test_c14_nonce_is_per_socket)
{
    struct rq       r;
    struct stun_msg m;
    size_t          len;
    const uint8_t  *v;
    char            n[40];

    fx_up(R4, 1);
    challenge(C, 0);
    snprintf(n, sizeof(n), "%s", nonce_for(C));
    rq_init(&r, STUN_REFRESH);
    rq_auth_with(&r, F.u2, n, SECRET);
    ck_assert_int_eq(send_at(C2, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_REFRESH, 438, "Stale Nonce");
    assert_signed_by(&m, F.u2);
    v = stun_msg_attr(&m, STUN_K_NONCE, &len);
    ck_assert_uint_eq(len, 36);
    ck_assert(memcmp(v, n, 36) != 0);
}
END_TEST

START_TEST(test_c15_allocate_success)
{
    struct rq              r;
    struct stun_msg        m;
    struct aopts           o = { .lifetime = -1 };
    const struct turn_cmd *open;
    struct addr            x;
    const uint16_t         want[] = { STUN_ATTR_SOFTWARE,
        STUN_ATTR_XOR_RELAYED_ADDRESS, STUN_ATTR_XOR_MAPPED_ADDRESS,
        STUN_ATTR_LIFETIME, STUN_ATTR_MESSAGE_INTEGRITY };

    fx_up(R4, 0);
    challenge(C, 0);
    alloc_rq(&r, C, &o);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    ck_assert_uint_eq(F.q.n, 1);
    open = find_cmd(TURN_CMD_RELAY_OPEN);
    ck_assert_ptr_nonnull(open);
    ck_assert_uint_eq(open->port, 49152);
    ck_assert_uint_eq(open->families, ATAB_FAM_V4);
    open_relays(1, 0);
    only_resp(&m);
    ck_assert_uint_eq(m.type, 0x0103);
    ck_assert(memcmp(m.txid, r.txid, STUN_TXID_LEN) == 0);
    assert_attrs(&m, want, 5);
    x = xor_addr(&m, STUN_K_XOR_RELAYED_ADDRESS, 0);
    {
        struct addr w = A("192.0.2.1:49152"), c = A(C);
        ck_assert(addr_eq(&x, &w));
        x = xor_addr(&m, STUN_K_XOR_MAPPED_ADDRESS, 0);
        ck_assert(addr_eq(&x, &c));
    }
    ck_assert_uint_eq(lifetime_of(&m), 600);
    assert_signed_by(&m, F.u);
    ck_assert_uint_eq(stats()->responses[TURN_MT_ALLOCATE][TURN_RESP_SUCCESS],
        1);
}
END_TEST

START_TEST(test_c16_nonce_not_uuid)
{
    struct rq       r;
    struct stun_msg m;

    fx_up(R4, 0);
    rq_init(&r, STUN_ALLOCATE);
    rq_transport(&r, 17);
    rq_auth_with(&r, F.u, "not-a-uuid", SECRET);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_ALLOCATE, 401, "Unauthorized");
    assert_signed_by(&m, F.u);
}
END_TEST

START_TEST(test_c17_nonce_uses)
{
    struct rq       r;
    struct stun_msg m;
    char            n[40];

    fx_up(R4, 1);
    challenge(C, 0);
    snprintf(n, sizeof(n), "%s", nonce_for(C));
    for (int i = 0; i < 10000; i++) {
        refresh_rq(&r, C, -1);
        ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
        only_resp(&m);
        ck_assert_uint_eq(code_of(&m), 437);
    }
    refresh_rq(&r, C, -1);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_REFRESH, 438, "Stale Nonce");
    save_nonce(C, &m);
    ck_assert_str_ne(nonce_for(C), n);
}
END_TEST

START_TEST(test_c18_credential_expiry)
{
    struct rq       r;
    struct stun_msg m;
    char            u[64];

    fx_up(R4, 0);
    challenge(C, 0);
    snprintf(u, sizeof(u), "%llu:saltA", WALL - 1);
    rq_init(&r, STUN_CREATE_PERMISSION);
    rq_auth(&r, C, u);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_CREATE_PERMISSION, 401, "Unauthorized");
    assert_signed_by(&m, u);
    snprintf(u, sizeof(u), "%llu:saltA", WALL);
    rq_init(&r, STUN_CREATE_PERMISSION);
    rq_auth(&r, C, u);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    ck_assert_uint_eq(m.type, 0x0108);
}
END_TEST

START_TEST(test_c19_wrong_secret)
{
    struct rq       r;
    struct stun_msg m;

    fx_up(R4, 0);
    challenge(C, 0);
    rq_init(&r, STUN_ALLOCATE);
    rq_transport(&r, 17);
    rq_auth_with(&r, F.u, Z, SECRET2);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_ALLOCATE, 401, "Unauthorized");
    assert_signed_by(&m, F.u);
}
END_TEST

/* --- SPEC §2.6.2, §4: allocations ------------------------------------ */

START_TEST(test_c22_second_allocate_437)
{
    struct rq       r;
    struct stun_msg m;
    struct aopts    o = { .lifetime = -1 };

    fx_up(R4, 0);
    alloc_at(C, -1, 0);
    alloc_rq(&r, C, &o);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_ALLOCATE, 437, "Allocation Mismatch");
    assert_signed_by(&m, F.u);
}
END_TEST

START_TEST(test_c23_allocate_replay)
{
    struct rq       r;
    struct stun_msg m, m2;
    struct aopts    o = { .lifetime = -1 };
    struct turn_cmd open;
    uint64_t        expiry;

    fx_up(R4, 0);
    challenge(C, 0);
    alloc_rq(&r, C, &o);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    ck_assert_ptr_nonnull(find_cmd(TURN_CMD_RELAY_OPEN));
    open = *find_cmd(TURN_CMD_RELAY_OPEN);
    /* Early replay while the sockets open: discarded, uncounted. */
    ck_assert_int_eq(raw_at(C, r.buf, r.len, 0, NULL), 0);
    ck_assert_uint_eq(F.q.n, 0);
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_on_relay_opened(F.core, open.ref, 1, NULL, 0,
        &F.q), 0);
    only_resp(&m);
    ck_assert_uint_eq(lifetime_of(&m), 600);
    expiry = atab_alloc_at(F.tab, open.ref.idx)->expiry;
    /* The replay: the same success, no socket, expiry unchanged. */
    ck_assert_int_eq(raw_at(C, r.buf, r.len, 200000, NULL), 0);
    only_resp(&m2);
    ck_assert_uint_eq(m2.len, m.len);
    ck_assert(memcmp(m2.buf, m.buf, m.len) == 0);
    ck_assert_uint_eq(atab_alloc_at(F.tab, open.ref.idx)->expiry, expiry);
    ck_assert_uint_eq(stats()->responses[TURN_MT_ALLOCATE][TURN_RESP_SUCCESS],
        2);
}
END_TEST

START_TEST(test_c24_same_username_replaces)
{
    struct stun_msg m;
    struct rq       r;
    struct aopts    o = { .lifetime = -1 };
    struct atab_ref ref;
    const struct turn_cmd *close, *open;

    fx_up(R4, 0);
    alloc_at(C, -1, 0);
    challenge(C2, 0);
    alloc_rq(&r, C2, &o);                   /* C2 with U */
    ck_assert_int_eq(send_at(C2, &r, 0, NULL), 0);
    ck_assert_uint_eq(F.q.n, 2);
    close = &F.q.cmd[0];
    open = &F.q.cmd[1];
    ck_assert_int_eq(close->kind, TURN_CMD_RELAY_CLOSE);
    ck_assert_uint_eq(close->port, 49152);
    ck_assert_int_eq(open->kind, TURN_CMD_RELAY_OPEN);
    ck_assert_uint_eq(open->port, 49152);
    ref = open->ref;
    open_relays(1, 0);
    only_resp(&m);
    ck_assert_uint_eq(m.type, 0x0103);
    ck_assert_uint_eq(port_of(ref), 49152);
    refresh_rq(&r, C, -1);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    ck_assert_uint_eq(code_of(&m), 437);
}
END_TEST

START_TEST(test_c25_transport_not_udp)
{
    struct rq       r;
    struct stun_msg m;

    fx_up(R4, 0);
    challenge(C, 0);
    rq_init(&r, STUN_ALLOCATE);
    rq_transport(&r, 6);
    rq_auth(&r, C, F.u);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_ALLOCATE, 400, "Bad Request");
    assert_signed_by(&m, F.u);
}
END_TEST

START_TEST(test_c26_lifetime_clamped_and_zero)
{
    struct stun_msg m;
    struct aopts    o = { .lifetime = 10000000 };
    struct aopts    o2 = { .lifetime = 0 };
    uint32_t        allocs, chans;

    fx_up(R4, 0);
    alloc_ex(C, &o, 0, &m, NULL);
    ck_assert_uint_eq(lifetime_of(&m), 3600);
    o2.user = F.u2;
    challenge(C2, 0);
    alloc_ex(C2, &o2, 0, &m, NULL);
    ck_assert_uint_eq(lifetime_of(&m), 0);
    counts(&allocs, &chans);
    ck_assert_uint_eq(allocs, 2);
    ck_assert_uint_eq(turn_core_next_deadline(F.core), 0);
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_on_timer(F.core, 0, &F.q), 0);
    ck_assert_uint_eq(F.q.n, 1);
    ck_assert_int_eq(F.q.cmd[0].kind, TURN_CMD_RELAY_CLOSE);
    counts(&allocs, &chans);
    ck_assert_uint_eq(allocs, 1);
}
END_TEST

START_TEST(test_c27_allocation_expires)
{
    const turn_ms_t L = 600000;
    uint32_t        allocs, chans;

    fx_up(R4, 0);
    alloc_at(C, -1, 0);
    ck_assert_uint_eq(turn_core_next_deadline(F.core), L);
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_on_timer(F.core, L - 1, &F.q), 0);
    ck_assert_uint_eq(F.q.n, 0);
    ck_assert_int_eq(turn_core_on_timer(F.core, L, &F.q), 0);
    ck_assert_uint_eq(F.q.n, 1);
    ck_assert_int_eq(F.q.cmd[0].kind, TURN_CMD_RELAY_CLOSE);
    ck_assert_uint_eq(F.q.cmd[0].port, 49152);
    counts(&allocs, &chans);
    ck_assert_uint_eq(allocs, 0);
    ck_assert_uint_eq(turn_core_next_deadline(F.core), TURN_NEVER);
}
END_TEST

START_TEST(test_c28_refresh_extends)
{
    struct rq       r;
    struct stun_msg m;
    const uint16_t  want[] = { STUN_ATTR_SOFTWARE, STUN_ATTR_LIFETIME,
        STUN_ATTR_MESSAGE_INTEGRITY };

    fx_up(R4, 0);
    alloc_at(C, -1, 0);
    refresh_rq(&r, C, 900);
    ck_assert_int_eq(send_at(C, &r, 300000, NULL), 0);
    only_resp(&m);
    ck_assert_uint_eq(m.type, 0x0104);
    assert_attrs(&m, want, 3);
    ck_assert_uint_eq(lifetime_of(&m), 900);
    assert_signed_by(&m, F.u);
    ck_assert_uint_eq(turn_core_next_deadline(F.core), 1200000);
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_on_timer(F.core, 1199999, &F.q), 0);
    ck_assert_uint_eq(F.q.n, 0);
    ck_assert_int_eq(cdata_at(C, 0x4000, "x", 1199999, NULL), RLY_ERR_DROP);
    refresh_rq(&r, C, 60);                  /* still alive: success */
    ck_assert_int_eq(send_at(C, &r, 1199999, NULL), 0);
    only_resp(&m);
    ck_assert_uint_eq(m.type, 0x0104);
    /* A Refresh may shorten (no accumulation). */
    ck_assert_uint_eq(turn_core_next_deadline(F.core), 1199999 + 60000);
}
END_TEST

START_TEST(test_c29_refresh_zero_deletes)
{
    struct rq              r;
    struct stun_msg        m;
    uint32_t               allocs, chans;
    const struct turn_cmd *close;

    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    refresh_rq(&r, C, 0);
    ck_assert_int_eq(send_at(C, &r, 1000, NULL), 0);
    close = find_cmd(TURN_CMD_RELAY_CLOSE);
    ck_assert_ptr_nonnull(close);
    ck_assert_uint_eq(close->port, 49152);
    resp(F.q.n - 1, &m);
    ck_assert_uint_eq(m.type, 0x0104);
    ck_assert_uint_eq(lifetime_of(&m), 0);
    counts(&allocs, &chans);
    ck_assert_uint_eq(allocs, 0);
    ck_assert_uint_eq(chans, 0);
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_on_timer(F.core, 2000000, &F.q), 0);
    ck_assert_uint_eq(F.q.n, 0);
    refresh_rq(&r, C, -1);
    ck_assert_int_eq(send_at(C, &r, 2000, NULL), 0);
    only_resp(&m);
    ck_assert_uint_eq(code_of(&m), 437);
}
END_TEST

START_TEST(test_c30_refresh_without_allocation)
{
    struct rq       r;
    struct stun_msg m;

    fx_up(R4, 0);
    challenge(C, 0);
    refresh_rq(&r, C, -1);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_REFRESH, 437, "Allocation Mismatch");
    assert_signed_by(&m, F.u);
}
END_TEST

static void
one_port(struct turn_conf *conf, struct peer_policy *pol)
{
    (void)pol;
    conf->port_min = conf->port_max = 50000;
}

START_TEST(test_c31_capacity_508)
{
    struct rq       r;
    struct stun_msg m;
    struct aopts    o = { .lifetime = -1 };
    struct atab_ref ref;

    fx_up_ex(R4, 0, one_port);
    ref = alloc_at(C, -1, 0);
    ck_assert_uint_eq(port_of(ref), 50000);
    challenge(C2, 0);
    o.user = F.u2;
    alloc_rq(&r, C2, &o);
    ck_assert_int_eq(send_at(C2, &r, 0, NULL), 0);
    only_resp(&m);
    assert_error(&m, STUN_ALLOCATE, 508, "Insufficient Capacity");
    assert_signed_by(&m, F.u2);
}
END_TEST

START_TEST(test_c32_dual_allocation)
{
    struct stun_msg m;
    struct aopts    o = { .lifetime = -1, .aaf6 = 1 };
    struct addr     x4, x6, w4 = A("192.0.2.1:49152"),
                    w6 = A("[2001:db8::1]:49152");
    const uint16_t  want[] = { STUN_ATTR_SOFTWARE,
        STUN_ATTR_XOR_RELAYED_ADDRESS, STUN_ATTR_XOR_RELAYED_ADDRESS,
        STUN_ATTR_XOR_MAPPED_ADDRESS, STUN_ATTR_LIFETIME,
        STUN_ATTR_MESSAGE_INTEGRITY };

    fx_up(R46, 0);
    alloc_ex(C, &o, 0, &m, NULL);
    assert_attrs(&m, want, 6);
    x4 = xor_addr(&m, STUN_K_XOR_RELAYED_ADDRESS, 0);
    x6 = xor_addr(&m, STUN_K_XOR_RELAYED_ADDRESS, 1);
    ck_assert(addr_eq(&x4, &w4));
    ck_assert(addr_eq(&x6, &w6));
}
END_TEST

static unsigned
family_case(enum relay relay, int raf, int aaf)
{
    struct rq       r;
    struct stun_msg m;
    unsigned        code;

    fx_up(relay, 0);
    challenge(C, 0);
    rq_init(&r, STUN_ALLOCATE);
    rq_transport(&r, 17);
    if (raf)
        rq_family(&r, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, (uint8_t)raf);
    if (aaf)
        rq_family(&r, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY, (uint8_t)aaf);
    rq_auth(&r, C, F.u);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    if (find_cmd(TURN_CMD_RELAY_OPEN) != NULL) {
        uint8_t fams = find_cmd(TURN_CMD_RELAY_OPEN)->families;
        fx_down();
        return 1000u + fams;
    }
    only_resp(&m);
    assert_signed_by(&m, F.u);
    code = code_of(&m);
    fx_down();
    return code;
}

START_TEST(test_c33_bad_family_combinations)
{
    ck_assert_uint_eq(family_case(R46, 1, 2), 400);
    ck_assert_uint_eq(family_case(R46, 0, 1), 400);
    ck_assert_uint_eq(family_case(R4, 2, 2), 400);
}
END_TEST

START_TEST(test_c34_family_not_supported)
{
    ck_assert_uint_eq(family_case(R4, 2, 0), 440);
    ck_assert_uint_eq(family_case(R6, 0, 0), 440);
    ck_assert_uint_eq(family_case(R6, 1, 0), 440);
}
END_TEST

START_TEST(test_c35_aaf6_on_ipv4_relay)
{
    ck_assert_uint_eq(family_case(R4, 0, 2), 1000u + ATAB_FAM_V4);
    ck_assert_uint_eq(family_case(R6, 0, 2), 1000u + ATAB_FAM_V6);
    ck_assert_uint_eq(family_case(R46, 2, 0), 1000u + ATAB_FAM_V6);
    ck_assert_uint_eq(family_case(R46, 1, 0), 1000u + ATAB_FAM_V4);
    ck_assert_uint_eq(family_case(R46, 0, 0), 1000u + ATAB_FAM_V4);
    ck_assert_uint_eq(family_case(R46, 0, 2),
        1000u + (ATAB_FAM_V4 | ATAB_FAM_V6));
}
END_TEST

/* --- SPEC §2.6.4, §2.11, §5: channels and data ------------------------ */

/* Checks one SEND_PEER command: payload to peer from relay port. */
static void
assert_to_peer(const char *peer, uint16_t port, const char *payload)
{
    struct addr p = A(peer);

    ck_assert_uint_eq(F.q.n, 1);
    ck_assert_int_eq(F.q.cmd[0].kind, TURN_CMD_SEND_PEER);
    ck_assert(addr_eq(&F.q.cmd[0].path.remote, &p));
    ck_assert_uint_eq(F.q.cmd[0].port, port);
    ck_assert_uint_eq(F.q.cmd[0].hdrlen, 0);
    ck_assert_uint_eq(F.q.cmd[0].paylen, strlen(payload));
    ck_assert(memcmp(F.q.cmd[0].payload, payload, strlen(payload)) == 0);
}

/* Checks one SEND_CLIENT of ChannelData {number, payload} to client. */
static void
assert_to_client(const char *client, uint16_t number, const char *payload)
{
    struct addr c = A(client);
    uint8_t     hdr[4];

    ck_assert_uint_eq(F.q.n, 1);
    ck_assert_int_eq(F.q.cmd[0].kind, TURN_CMD_SEND_CLIENT);
    ck_assert(addr_eq(&F.q.cmd[0].path.remote, &c));
    ck_assert_uint_eq(F.q.cmd[0].path.local.port, 3478);
    chandata_hdr(hdr, number, (uint16_t)strlen(payload));
    ck_assert_uint_eq(F.q.cmd[0].hdrlen, 4);
    ck_assert(memcmp(F.q.cmd[0].hdr, hdr, 4) == 0);
    ck_assert_uint_eq(F.q.cmd[0].paylen, strlen(payload));
    ck_assert(memcmp(F.q.cmd[0].payload, payload, strlen(payload)) == 0);
}

START_TEST(test_c36_ipv6_client_ipv6_relay)
{
    struct stun_msg m;
    struct aopts    o = { .lifetime = -1, .raf = 2 };
    struct atab_ref ref;
    struct addr     x, w = A("[2001:db8::1]:49152");

    fx_up(R46, 0);
    alloc_ex(C6, &o, 0, &m, &ref);
    x = xor_addr(&m, STUN_K_XOR_RELAYED_ADDRESS, 0);
    ck_assert(addr_eq(&x, &w));
    ck_assert_uint_eq(bind_at(C6, F.u, 0x4000, P6, 0), 0);
    ck_assert_int_eq(cdata_at(C6, 0x4000, "ping", 1, NULL), 0);
    assert_to_peer(P6, 49152, "ping");
    ck_assert_int_eq(peer_at(ref, 49152, P6, "pong", 2, NULL), 0);
    assert_to_client(C6, 0x4000, "pong");
}
END_TEST

START_TEST(test_c37_channel_data_both_ways)
{
    struct atab_ref ref;
    uint32_t        allocs, chans;

    fx_up(R4, 0);
    ref = alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    counts(&allocs, &chans);
    ck_assert_uint_eq(chans, 1);
    ck_assert_int_eq(cdata_at(C, 0x4000, "ping", 1, NULL), 0);
    assert_to_peer(P, 49152, "ping");
    ck_assert_int_eq(peer_at(ref, 49152, P, "pong", 2, NULL), 0);
    assert_to_client(C, 0x4000, "pong");
    ck_assert_uint_eq(stats()->relayed_packets[TURN_DIR_C2P], 1);
    ck_assert_uint_eq(stats()->relayed_bytes[TURN_DIR_P2C], 4);
    ck_assert_uint_eq(stats()->size_hist[0], 2);
}
END_TEST

/* --- Runs: a GRO message of one client's datagrams ---------------------- */

/* Buffer for runs: segments of seg bytes, written by put_cd / put_bind. */
static uint8_t run_buf[80 * 1300];

static void
put_cd(size_t at, uint16_t number, size_t paylen, uint8_t fill)
{
    chandata_hdr(run_buf + at, number, (uint16_t)paylen);
    memset(run_buf + at + 4, fill, paylen);
}

static void
put_bind(size_t at, uint8_t tid)
{
    static const uint8_t head[8] = { 0x00, 0x01, 0x00, 0x00,
        0x21, 0x12, 0xa4, 0x42 };

    memcpy(run_buf + at, head, 8);
    memset(run_buf + at + 8, tid, 12);
}

/* All of run_buf[0, total) through turn_core_on_client_run(), resetting
 * the queue first; returns the bytes used. */
static size_t
run_at(const char *client, size_t seg, size_t total)
{
    struct addr_path path;
    size_t           used = 0;

    path.remote = A(client);
    path.local = A("192.0.2.1:3478");
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_on_client_run(F.core, &path, run_buf, seg,
        total, 1, WALL, &F.q, &used), 0);
    ck_assert_uint_gt(used, 0);
    ck_assert_uint_le(used, total);
    return used;
}

/* Checks command i: a SEND_PEER to P of nseg datagrams (0: a single one)
 * of paylen bytes starting at segment first of seg bytes, the last one
 * lastlen bytes. */
static void
assert_run(size_t i, size_t first, size_t seg, unsigned nseg, size_t paylen,
    size_t lastlen)
{
    const struct turn_cmd *c = &F.q.cmd[i];
    struct addr            p = A(P);

    ck_assert_uint_lt(i, F.q.n);
    ck_assert_int_eq(c->kind, TURN_CMD_SEND_PEER);
    ck_assert(addr_eq(&c->path.remote, &p));
    ck_assert_uint_eq(c->hdrlen, 0);
    ck_assert_ptr_eq(c->payload, run_buf + first * seg + 4);
    ck_assert_uint_eq(c->paylen, paylen);
    if (nseg <= 1) {
        ck_assert_uint_le(c->nseg, 1);
        return;
    }
    ck_assert_uint_eq(c->nseg, nseg);
    ck_assert_uint_eq(c->stride, seg);
    ck_assert_uint_eq(c->lastlen, lastlen);
}

START_TEST(test_run_channel_data_one_command)
{
    size_t total = 10 * 104 + 41;

    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    for (size_t k = 0; k < 10; k++)
        put_cd(k * 104, 0x4000, 100, (uint8_t)k);
    put_cd(10 * 104, 0x4000, 37, 0xee);
    ck_assert_uint_eq(run_at(C, 104, total), total);
    ck_assert_uint_eq(F.q.n, 1);
    assert_run(0, 0, 104, 11, 100, 37);
    ck_assert_uint_eq(stats()->relayed_packets[TURN_DIR_C2P], 11);
    ck_assert_uint_eq(stats()->relayed_bytes[TURN_DIR_C2P], 1037);
    ck_assert_uint_eq(stats()->size_hist[0], 11);

    /* A single datagram through the run entry point: one plain command. */
    ck_assert_uint_eq(run_at(C, 104, 104), 104);
    ck_assert_uint_eq(F.q.n, 1);
    assert_run(0, 0, 104, 0, 100, 100);
}
END_TEST

/* Each datagram keeps its own fate: an unbound channel is dropped and
 * counted, a Binding request answered, and relaying resumes after. */
START_TEST(test_run_mixed_datagrams)
{
    struct stun_msg m;
    uint64_t        nochan;

    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    nochan = stats()->dropped[TURN_DROP_NO_CHANNEL];
    /* seg 20: ChannelData of 16 bytes and a bare Binding request. */
    put_cd(0, 0x4000, 16, 1);
    put_cd(20, 0x4000, 16, 2);
    put_cd(40, 0x4abc, 16, 3);          /* unbound */
    put_cd(60, 0x4000, 16, 4);
    put_cd(80, 0x4000, 16, 5);
    put_bind(100, 0x77);
    put_cd(120, 0x4000, 12, 6);         /* shorter: the last */
    ck_assert_uint_eq(run_at(C, 20, 136), 136);
    ck_assert_uint_eq(F.q.n, 4);
    assert_run(0, 0, 20, 2, 16, 16);
    assert_run(1, 3, 20, 2, 16, 16);
    resp(2, &m);
    ck_assert_uint_eq(m.type, 0x0101);
    ck_assert(memcmp(m.txid, run_buf + 108, 12) == 0);
    assert_run(3, 6, 20, 0, 12, 12);
    ck_assert_uint_eq(stats()->dropped[TURN_DROP_NO_CHANNEL], nochan + 1);
    ck_assert_uint_eq(stats()->relayed_packets[TURN_DIR_C2P], 5);
}
END_TEST

/* A run command is at most TURN_RUN_MAX datagrams and TURN_RUN_BYTES
 * payload bytes; a longer payload than the run's starts a new one. */
START_TEST(test_run_limits)
{
    size_t total;

    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    for (size_t k = 0; k < 70; k++)
        put_cd(k * 104, 0x4000, 100, (uint8_t)k);
    ck_assert_uint_eq(run_at(C, 104, 70 * 104), 70 * 104);
    ck_assert_uint_eq(F.q.n, 2);
    assert_run(0, 0, 104, TURN_RUN_MAX, 100, 100);
    assert_run(1, TURN_RUN_MAX, 104, 70 - TURN_RUN_MAX, 100, 100);

    for (size_t k = 0; k < 60; k++)
        put_cd(k * 1204, 0x4000, 1200, (uint8_t)k);
    total = 60 * 1204;
    ck_assert_uint_eq(run_at(C, 1204, total), total);
    ck_assert_uint_eq(F.q.n, 2);
    assert_run(0, 0, 1204, TURN_RUN_BYTES / 1200, 1200, 1200);
    assert_run(1, TURN_RUN_BYTES / 1200, 1204, 60 - TURN_RUN_BYTES / 1200,
        1200, 1200);

    /* Padded ChannelData: payload 90 in segments of 104, then a payload
     * of 100 (longer than the run's): a new command. */
    put_cd(0, 0x4000, 90, 1);
    put_cd(104, 0x4000, 90, 2);
    put_cd(208, 0x4000, 100, 3);
    ck_assert_uint_eq(run_at(C, 104, 312), 312);
    ck_assert_uint_eq(F.q.n, 2);
    assert_run(0, 0, 104, 2, 90, 90);
    assert_run(1, 2, 104, 0, 100, 100);

    /* A shorter (padded) payload inside: it ends the run, whose datagrams
     * all but the last have one length; the next starts a new one. */
    put_cd(0, 0x4000, 100, 1);
    put_cd(104, 0x4000, 100, 2);
    put_cd(208, 0x4000, 90, 3);
    put_cd(312, 0x4000, 100, 4);
    put_cd(416, 0x4000, 100, 5);
    ck_assert_uint_eq(run_at(C, 104, 520), 520);
    ck_assert_uint_eq(F.q.n, 2);
    assert_run(0, 0, 104, 3, 100, 90);
    assert_run(1, 3, 104, 2, 100, 100);
}
END_TEST

/* The queue fills: the call stops with room for nothing more and says how
 * far it got; the rest, in a second call, loses nothing. */
START_TEST(test_run_stops_when_queue_full)
{
    size_t          used, total = 100 * 20, answered = 0;
    struct addr_path path;

    fx_up(R4, 0);
    for (size_t k = 0; k < 100; k++)
        put_bind(k * 20, (uint8_t)k);
    used = run_at(C, 20, total);
    ck_assert_uint_lt(used, total);
    ck_assert_uint_eq(used % 20, 0);
    ck_assert_uint_eq(F.q.n, used / 20);
    answered += F.q.n;
    path.remote = A(C);
    path.local = A("192.0.2.1:3478");
    while (answered < 100) {
        size_t more = 0;

        turn_cmdq_reset(&F.q);
        ck_assert_int_eq(turn_core_on_client_run(F.core, &path,
            run_buf + used, 20, total - used, 1, WALL, &F.q, &more), 0);
        ck_assert_uint_gt(more, 0);
        for (size_t i = 0; i < F.q.n; i++) {
            struct stun_msg m;

            resp(i, &m);
            ck_assert_uint_eq(m.txid[0], (uint8_t)(answered + i));
        }
        answered += F.q.n;
        used += more;
    }
    ck_assert_uint_eq(used, total);
    ck_assert_uint_eq(answered, 100);
}
END_TEST

START_TEST(test_c38_padding_and_lying_length)
{
    uint8_t        buf[16] = { 0x40, 0x00, 0x00, 0x04, 'a', 'b', 'c', 'd',
        0, 0, 0, 0 };
    enum turn_drop d;

    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    ck_assert_int_eq(raw_at(C, buf, 12, 1, NULL), 0);
    assert_to_peer(P, 49152, "abcd");
    buf[3] = 9;
    ck_assert_int_eq(raw_at(C, buf, 9, 1, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_MALFORMED);
    ck_assert_int_eq(raw_at(C, buf, 3, 1, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_MALFORMED);
    /* Length 0 is a valid empty payload. */
    buf[3] = 0;
    ck_assert_int_eq(raw_at(C, buf, 4, 1, NULL), 0);
    assert_to_peer(P, 49152, "");
}
END_TEST

START_TEST(test_c39_unbound_channel_and_peer)
{
    struct atab_ref ref;
    enum turn_drop  d;

    fx_up(R4, 0);
    ref = alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    ck_assert_int_eq(cdata_at(C, 0x4001, "x", 1, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_NO_CHANNEL);
    ck_assert_int_eq(peer_at(ref, 49152, P2, "x", 1, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_NO_PEER_BINDING);
    ck_assert_uint_eq(F.q.n, 0);
    /* Another client using the same number has no channel either. */
    ck_assert_int_eq(cdata_at(C2, 0x4000, "x", 1, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_NO_CHANNEL);
}
END_TEST

START_TEST(test_c40_peer_family_mismatch)
{
    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P6, 0), 443);
}
END_TEST

START_TEST(test_c41_channel_bind_without_allocation)
{
    fx_up(R4, 0);
    challenge(C, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 437);
}
END_TEST

START_TEST(test_c42_channel_conflicts)
{
    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4001, P, 0), 400);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P2, 0), 400);
}
END_TEST

START_TEST(test_c43_channel_refresh)
{
    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 300000), 0);
    ck_assert_uint_eq(turn_core_next_deadline(F.core), 900000);
    ck_assert_int_eq(cdata_at(C, 0x4000, "x", 899999, NULL), 0);
}
END_TEST

START_TEST(test_c44_unbind_and_cooldown)
{
    struct atab_ref        ref;
    enum turn_drop         d;
    const struct turn_cmd *u;
    uint32_t               allocs, chans;

    fx_up(R4, 0);
    ref = alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    turn_cmdq_reset(&F.q);
    ck_assert_uint_eq(turn_core_next_deadline(F.core), 600000);
    ck_assert_int_eq(turn_core_on_timer(F.core, 600000, &F.q), 0);
    u = find_cmd(TURN_CMD_CHAN_UNBOUND);
    ck_assert_ptr_nonnull(u);
    ck_assert_uint_eq(u->number, 0x4000);
    counts(&allocs, &chans);
    ck_assert_uint_eq(chans, 0);
    ck_assert_int_eq(cdata_at(C, 0x4000, "x", 601000, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_NO_CHANNEL);
    ck_assert_int_eq(peer_at(ref, 49152, P, "x", 601000, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_NO_PEER_BINDING);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P2, 700000), 400);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4001, P, 700000), 400);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 800000), 0);
    ck_assert_uint_eq(turn_core_next_deadline(F.core), 1400000);
    ck_assert_int_eq(cdata_at(C, 0x4000, "x", 1399999, NULL), 0);
}
END_TEST

START_TEST(test_c45_number_reused_after_cooldown)
{
    struct atab_ref ref;

    fx_up(R4, 0);
    ref = alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P2, 899999), 400);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P2, 900000), 0);
    ck_assert_uint_eq(turn_core_next_deadline(F.core), 1500000);
    ck_assert_int_eq(peer_at(ref, 49152, P2, "y", 900001, NULL), 0);
    assert_to_client(C, 0x4000, "y");
    ck_assert_int_eq(peer_at(ref, 49152, P, "y", 900001, NULL),
        RLY_ERR_DROP);
    /* The old peer is free for another number too. */
    ck_assert_uint_eq(bind_at(C, F.u, 0x4001, P, 900002), 0);
}
END_TEST

START_TEST(test_c46_refresh_zero_clears_channels)
{
    struct rq r;
    uint32_t  allocs, chans;

    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4001, P2, 0), 0);
    counts(&allocs, &chans);
    ck_assert_uint_eq(chans, 2);
    refresh_rq(&r, C, 0);
    ck_assert_int_eq(send_at(C, &r, 10, NULL), 0);
    counts(&allocs, &chans);
    ck_assert_uint_eq(chans, 0);
    ck_assert_int_eq(atab_check(F.tab), 0);
    ck_assert_uint_eq(turn_core_next_deadline(F.core), TURN_NEVER);
}
END_TEST

START_TEST(test_c47_create_permission_noop)
{
    struct rq       r;
    struct stun_msg m;
    const uint16_t  want[] = { STUN_ATTR_SOFTWARE,
        STUN_ATTR_MESSAGE_INTEGRITY };
    uint32_t        allocs, chans;

    fx_up(R4, 0);
    challenge(C, 0);
    rq_init(&r, STUN_CREATE_PERMISSION);
    {
        struct addr p = A(P);
        stun_build_xor_addr(&r.b, STUN_ATTR_XOR_PEER_ADDRESS, &p);
    }
    rq_auth(&r, C, F.u);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    ck_assert_uint_eq(m.type, 0x0108);
    assert_attrs(&m, want, 2);
    assert_signed_by(&m, F.u);
    counts(&allocs, &chans);
    ck_assert_uint_eq(allocs + chans, 0);
}
END_TEST

START_TEST(test_c48_denied_peers_403)
{
    static const char *const denied[] = {
        "127.0.0.1:5000", "0.0.0.0:5000", "169.254.1.1:5000",
        "224.0.0.1:5000", "255.255.255.255:5000", "[::1]:5000",
        "[fe80::1]:5000", "[ff02::1]:5000", "[::ffff:127.0.0.1]:5000",
        "[64:ff9b::a9fe:101]:5000", "203.0.113.9:0", "192.0.2.1:3478",
        "[2001:db8::1]:3478",
    };
    struct aopts    o = { .lifetime = 3600, .aaf6 = 1 };
    struct stun_msg m;
    uint32_t        allocs, chans;

    fx_up(R46, 0);
    alloc_ex(C, &o, 0, &m, NULL);
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        struct rq r;

        rq_init(&r, STUN_CHANNEL_BIND);
        rq_channel(&r, (uint16_t)(0x4000 + i), denied[i]);
        rq_auth(&r, C, F.u);
        ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
        only_resp(&m);
        assert_error(&m, STUN_CHANNEL_BIND, 403, "Forbidden");
        assert_signed_by(&m, F.u);
    }
    counts(&allocs, &chans);
    ck_assert_uint_eq(chans, 0);
}
END_TEST

START_TEST(test_c49_same_number_different_clients)
{
    struct atab_ref r1, r2;

    fx_up(R4, 0);
    r1 = alloc_at(C, 3600, 0);
    {
        struct aopts    o = { .lifetime = 3600, .user = F.u2 };
        struct stun_msg m;

        challenge(C2, 0);
        alloc_ex(C2, &o, 0, &m, &r2);
    }
    ck_assert_uint_ne(port_of(r1), port_of(r2));
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    ck_assert_uint_eq(bind_at(C2, F.u2, 0x4000, P2, 0), 0);
    ck_assert_int_eq(peer_at(r1, port_of(r1), P, "for C", 1, NULL), 0);
    assert_to_client(C, 0x4000, "for C");
    ck_assert_int_eq(peer_at(r2, port_of(r2), P2, "for C2", 1, NULL), 0);
    assert_to_client(C2, 0x4000, "for C2");
    /* P reaches only C: on C2's port it has no binding. */
    ck_assert_int_eq(peer_at(r2, port_of(r2), P, "x", 1, NULL), RLY_ERR_DROP);
    ck_assert_int_eq(cdata_at(C, 0x4000, "a", 1, NULL), 0);
    assert_to_peer(P, port_of(r1), "a");
    ck_assert_int_eq(cdata_at(C2, 0x4000, "b", 1, NULL), 0);
    assert_to_peer(P2, port_of(r2), "b");
    ck_assert_uint_eq(bind_at(C2, F.u2, 0x4001, P, 1), 0);
    ck_assert_int_eq(peer_at(r2, port_of(r2), P, "c", 2, NULL), 0);
    assert_to_client(C2, 0x4001, "c");
}
END_TEST

START_TEST(test_c50_private_peers_allowed)
{
    struct aopts    o = { .lifetime = 3600, .aaf6 = 1 };
    struct stun_msg m;

    fx_up(R46, 0);
    alloc_ex(C, &o, 0, &m, NULL);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, "10.1.2.3:5000", 0), 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4001, "[fd00::1]:5000", 0), 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4002, "100.64.0.1:5000", 0), 0);
    /* Hair-pinning to the relay's own public address, another port. */
    ck_assert_uint_eq(bind_at(C, F.u, 0x4003, "192.0.2.1:49153", 0), 0);
}
END_TEST

static void
allow_loopback(struct turn_conf *conf, struct peer_policy *pol)
{
    struct cidr c;

    (void)conf;
    ck_assert_int_eq(cidr_parse("127.0.0.0/8", &c), 0);
    peer_policy_allow(pol, &c);
}

START_TEST(test_c51_allow_loopback)
{
    struct atab_ref ref;

    fx_up_ex(R4, 0, allow_loopback);
    ref = alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, "127.0.0.1:5000", 0), 0);
    ck_assert_int_eq(cdata_at(C, 0x4000, "lo", 1, NULL), 0);
    assert_to_peer("127.0.0.1:5000", 49152, "lo");
    ck_assert_int_eq(peer_at(ref, 49152, "127.0.0.1:5000", "ol", 1, NULL), 0);
    assert_to_client(C, 0x4000, "ol");
    /* Still never a listen socket. */
    ck_assert_uint_eq(bind_at(C, F.u, 0x4001, "192.0.2.1:3478", 0), 403);
}
END_TEST

static void
deny_allow(struct turn_conf *conf, struct peer_policy *pol)
{
    struct cidr c;

    (void)conf;
    ck_assert_int_eq(cidr_parse("203.0.113.0/24", &c), 0);
    peer_policy_deny(pol, &c);
    ck_assert_int_eq(cidr_parse("203.0.113.9/32", &c), 0);
    peer_policy_allow(pol, &c);
}

START_TEST(test_c52_allow_beats_deny)
{
    fx_up_ex(R4, 0, deny_allow);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4001, P2, 0), 403);
}
END_TEST

/* --- SPEC §2.12, §3.7: rate limit and nonce table --------------------- */

START_TEST(test_c53_rate_limit)
{
    struct rq       r;
    struct stun_msg m;
    enum turn_drop  d;
    int             ok = 0, dropped = 0;

    fx_up(R4, 0);
    for (int i = 0; i < 300; i++) {
        rq_init(&r, STUN_ALLOCATE);
        rq_transport(&r, 17);
        if (send_at(C, &r, 0, &d) == 0) {
            only_resp(&m);
            ck_assert_uint_eq(code_of(&m), 401);
            ck_assert_int_eq(dropped, 0);
            ok++;
        } else {
            ck_assert_int_eq(d, TURN_DROP_RATE_LIMITED);
            dropped++;
        }
    }
    ck_assert_int_eq(ok, 200);
    ck_assert_int_eq(dropped, 100);
    ok = dropped = 0;
    for (int i = 0; i < 150; i++) {
        rq_init(&r, STUN_ALLOCATE);
        rq_transport(&r, 17);
        if (send_at(C, &r, 1000, &d) == 0)
            ok++;
        else
            dropped++;
    }
    ck_assert_int_eq(ok, 100);
    ck_assert_int_eq(dropped, 50);
    for (int i = 0; i < 500; i++) {
        rq_init(&r, STUN_BINDING);
        ck_assert_int_eq(send_at(C, &r, 1000, NULL), 0);
        only_resp(&m);
        ck_assert_uint_eq(m.type, 0x0101);
    }
    /* Unauthenticated 400s draw from the same bucket. */
    rq_init(&r, 0x00A);
    ck_assert_int_eq(send_at(C, &r, 1000, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_RATE_LIMITED);
    ck_assert_uint_eq(stats()->dropped[TURN_DROP_RATE_LIMITED], 151);
}
END_TEST

static void
two_nonces(struct turn_conf *conf, struct peer_policy *pol)
{
    (void)pol;
    conf->nonce_table_size = 2;
}

START_TEST(test_c54_nonce_table_eviction)
{
    struct rq       r;
    struct stun_msg m;

    fx_up_ex(R4, 1, two_nonces);
    challenge(C, 0);
    challenge(C2, 0);
    challenge("198.51.100.9:1", 0);
    rq_init(&r, STUN_CREATE_PERMISSION);
    rq_auth(&r, C, F.u);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    ck_assert_uint_eq(code_of(&m), 438);
    ck_assert_str_ne(nonce_for(C), "");
    {
        char old[40];

        snprintf(old, sizeof(old), "%s", nonce_for(C));
        save_nonce(C, &m);
        ck_assert_str_ne(nonce_for(C), old);
    }
    rq_init(&r, STUN_CREATE_PERMISSION);
    rq_auth(&r, C, F.u);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    only_resp(&m);
    ck_assert_uint_eq(m.type, 0x0108);
}
END_TEST

START_TEST(test_c73_same_socket_same_nonce)
{
    char n1[40];

    fx_up(R4, 1);
    challenge(C, 0);
    snprintf(n1, sizeof(n1), "%s", nonce_for(C));
    challenge(C, 0);
    ck_assert_str_eq(nonce_for(C), n1);
    challenge(C2, 0);
    ck_assert_str_ne(nonce_for(C2), n1);
}
END_TEST

/* --- Beyond the cases: ports, respawn, other workers, limits ---------- */

/* Found by fuzz_core: a ChannelBind while the allocation's sockets are
 * still opening must not create a channel whose port may still move. */
START_TEST(test_channel_bind_while_opening_437)
{
    struct rq       r;
    struct aopts    o = { .lifetime = -1 };
    struct turn_cmd open;
    struct stun_msg m;

    fx_up(R4, 0);
    challenge(C, 0);
    alloc_rq(&r, C, &o);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    open = *find_cmd(TURN_CMD_RELAY_OPEN);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 437);
    /* The bind fails: the allocation moves to the next port ... */
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_on_relay_opened(F.core, open.ref, 0, NULL, 0,
        &F.q), 0);
    ck_assert_int_eq(open_relays(1, 0), 1);
    only_resp(&m);
    ck_assert_uint_eq(m.type, 0x0103);
    /* ... and only now may channels be bound, on the final port. */
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 1), 0);
    ck_assert_int_eq(cdata_at(C, 0x4000, "x", 2, NULL), 0);
    assert_to_peer(P, 49153, "x");
}
END_TEST

START_TEST(test_bind_failure_moves_port_then_508)
{
    struct rq       r;
    struct stun_msg m;
    struct aopts    o = { .lifetime = -1 };
    uint32_t        allocs, chans;

    fx_up(R4, 0);
    challenge(C, 0);
    alloc_rq(&r, C, &o);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    for (int i = 1; i < TURN_BIND_ATTEMPTS; i++) {
        ck_assert_int_eq(open_relays(0, 0), 1);
        ck_assert_uint_eq(F.q.n, 1);
        ck_assert_int_eq(F.q.cmd[0].kind, TURN_CMD_RELAY_OPEN);
        ck_assert_uint_eq(F.q.cmd[0].port, 49152 + i);
    }
    ck_assert_int_eq(open_relays(0, 0), 1);
    only_resp(&m);
    assert_error(&m, STUN_ALLOCATE, 508, "Insufficient Capacity");
    assert_signed_by(&m, F.u);
    counts(&allocs, &chans);
    ck_assert_uint_eq(allocs, 0);
    ck_assert_uint_eq(atab_active(F.tab), 0);
    ck_assert_int_eq(atab_check(F.tab), 0);
    /* A later Allocate works again. */
    alloc_at(C, -1, 0);
}
END_TEST

START_TEST(test_too_large_peer_datagram)
{
    struct atab_ref ref;
    static uint8_t  big[65504];
    struct addr     p;
    enum turn_drop  d;

    fx_up(R4, 0);
    ref = alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    p = A(P);
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_on_peer(F.core, ref, 49152, &p, big, 65503, 1,
        &F.q, &d), 0);
    ck_assert_uint_eq(F.q.cmd[0].paylen, 65503);
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_on_peer(F.core, ref, 49152, &p, big, 65504, 1,
        &F.q, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_TOO_LARGE);
}
END_TEST

START_TEST(test_gate_closed_until_ready)
{
    struct rq      r;
    enum turn_drop d;
    uint8_t        ukey[32] = { 0 }, hkey[16] = { 0 };
    size_t         size;

    fx_up(R4, 0);
    /* A fresh table has the gate closed. */
    turn_core_free(F.core);
    atab_detach(F.tab);
    size = atab_region_size(F.max_allocs, F.max_chans, F.nworkers);
    memset(F.region, 0, size);
    ck_assert_int_eq(atab_format(F.region, size, F.max_allocs, F.max_chans,
        F.nworkers, ukey, hkey), 0);
    ck_assert_int_eq(atab_attach(F.region, size, &F.tab), 0);
    F.conf.stats = atab_worker_stats(F.tab, 0);
    F.core = turn_core_new(&F.conf, F.tab);
    rq_init(&r, STUN_BINDING);
    ck_assert_int_eq(send_at(C, &r, 0, &d), RLY_ERR_DROP);
    ck_assert_int_eq(d, TURN_DROP_NOT_READY);
    atab_set_ready(F.tab);
    rq_init(&r, STUN_BINDING);
    ck_assert_int_eq(send_at(C, &r, 0, NULL), 0);
    ck_assert_uint_eq(F.q.n, 1);
}
END_TEST

/* A second worker's core on the same table (worker slot 1). */
static struct turn_core *
second_core(void)
{
    struct turn_conf conf = F.conf;

    conf.worker = 1;
    conf.stats = atab_worker_stats(F.tab, 1);
    return turn_core_new(&conf, F.tab);
}

START_TEST(test_replacement_by_other_worker_reaped_by_owner)
{
    struct turn_core *w1;
    struct turn_cmdq  q1;
    struct rq         r;
    struct aopts      o = { .lifetime = -1 };
    struct addr_path  path = { A("192.0.2.1:3478"), A(C2) };
    struct atab_ref   ref0;
    uint32_t          allocs, chans;

    fx_up(R4, 0);
    ref0 = alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    w1 = second_core();
    ck_assert_ptr_nonnull(w1);
    ck_assert_int_eq(turn_cmdq_init(&q1, 16, 8192), 0);
    /* C2 (served by worker 1) allocates with C's username. */
    rq_init(&r, STUN_ALLOCATE);
    rq_transport(&r, 17);
    r.len = (size_t)stun_build_finish(&r.b);
    ck_assert_int_eq(turn_core_on_client(w1, &path, r.buf, r.len, 10, WALL,
        &q1, NULL), 0);
    save_nonce(C2, &(struct stun_msg){ 0 });
    {
        struct stun_msg m;
        ck_assert_int_eq(stun_msg_parse(&m, q1.cmd[0].hdr, q1.cmd[0].hdrlen),
            0);
        save_nonce(C2, &m);
    }
    alloc_rq(&r, C2, &o);
    r.len = (size_t)stun_build_finish(&r.b);
    turn_cmdq_reset(&q1);
    ck_assert_int_eq(turn_core_on_client(w1, &path, r.buf, r.len, 10, WALL,
        &q1, NULL), 0);
    ck_assert_uint_eq(q1.n, 1);
    ck_assert_int_eq(q1.cmd[0].kind, TURN_CMD_RELAY_OPEN);
    /* C's port is still held until its owner closes it. */
    ck_assert_uint_ne(q1.cmd[0].port, port_of(ref0));
    ck_assert_int_eq(atab_alloc_state(atab_alloc_at(F.tab, ref0.idx)),
        ATAB_A_DELETED);
    /* The owner stops relaying at once ... */
    ck_assert_int_eq(cdata_at(C, 0x4000, "x", 11, NULL), RLY_ERR_DROP);
    /* ... and closes the sockets at its next timer run. */
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_on_timer(F.core, 12, &F.q), 0);
    ck_assert_ptr_nonnull(find_cmd(TURN_CMD_RELAY_CLOSE));
    ck_assert_uint_eq(find_cmd(TURN_CMD_RELAY_CLOSE)->port, 49152);
    ck_assert_uint_eq(atab_port_holder(F.tab, 49152), ATAB_NONE);
    counts(&allocs, &chans);
    ck_assert_uint_eq(allocs, 0);       /* C2's is still opening */
    ck_assert_uint_eq(chans, 0);
    ck_assert_int_eq(atab_check(F.tab), 0);
    turn_core_free(w1);
    turn_cmdq_fini(&q1);
}
END_TEST

/* Found by the simulation (tests/sim, seed 6): a client whose allocation
 * another worker deleted (same username elsewhere) allocates again and
 * re-binds the same number before its own worker reaped the old one. */
START_TEST(test_rebind_after_remote_replacement)
{
    struct turn_core *w1;
    struct turn_cmdq  q1;
    struct rq         r;
    struct aopts      o = { .lifetime = -1 };
    struct addr_path  path = { A("192.0.2.1:3478"), A(C2) };
    struct stun_msg   m;
    struct atab_ref   ref;

    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    w1 = second_core();
    ck_assert_ptr_nonnull(w1);
    ck_assert_int_eq(turn_cmdq_init(&q1, 16, 8192), 0);
    rq_init(&r, STUN_ALLOCATE);
    rq_transport(&r, 17);
    r.len = (size_t)stun_build_finish(&r.b);
    ck_assert_int_eq(turn_core_on_client(w1, &path, r.buf, r.len, 10, WALL,
        &q1, NULL), 0);
    ck_assert_int_eq(stun_msg_parse(&m, q1.cmd[0].hdr, q1.cmd[0].hdrlen), 0);
    save_nonce(C2, &m);
    alloc_rq(&r, C2, &o);
    r.len = (size_t)stun_build_finish(&r.b);
    turn_cmdq_reset(&q1);
    ck_assert_int_eq(turn_core_on_client(w1, &path, r.buf, r.len, 10, WALL,
        &q1, NULL), 0);
    /* C allocates again (new transaction) and re-binds 0x4000 at once. */
    alloc_ex(C, &o, 20, &m, &ref);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 30), 0);
    ck_assert_int_eq(cdata_at(C, 0x4000, "again", 31, NULL), 0);
    assert_to_peer(P, port_of(ref), "again");
    ck_assert_int_eq(peer_at(ref, port_of(ref), P, "back", 32, NULL), 0);
    assert_to_client(C, 0x4000, "back");
    /* The owner's reap of the old allocation leaves the new one alone. */
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_on_timer(F.core, 1000, &F.q), 0);
    ck_assert_ptr_nonnull(find_cmd(TURN_CMD_RELAY_CLOSE));
    ck_assert_int_eq(cdata_at(C, 0x4000, "still", 1001, NULL), 0);
    assert_to_peer(P, port_of(ref), "still");
    ck_assert_int_eq(atab_check(F.tab), 0);
    turn_core_free(w1);
    turn_cmdq_fini(&q1);
}
END_TEST

START_TEST(test_respawned_worker_adopts_allocations)
{
    struct atab_ref ref;
    uint32_t        allocs, chans;

    fx_up(R4, 0);
    ref = alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, P, 0), 0);
    /* The worker dies: a new core for the same slot adopts. */
    turn_core_free(F.core);
    F.core = turn_core_new(&F.conf, F.tab);
    ck_assert_ptr_nonnull(F.core);
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_adopt(F.core, 5000, &F.q), 0);
    ck_assert_uint_eq(F.q.n, 1);
    ck_assert_int_eq(F.q.cmd[0].kind, TURN_CMD_RELAY_OPEN);
    ck_assert_uint_eq(F.q.cmd[0].port, 49152);
    ck_assert_int_eq(open_relays(1, 5000), 1);
    ck_assert_uint_eq(F.q.n, 0);            /* no response to anyone */
    ck_assert_int_eq(cdata_at(C, 0x4000, "again", 5001, NULL), 0);
    assert_to_peer(P, 49152, "again");
    ck_assert_int_eq(peer_at(ref, 49152, P, "back", 5002, NULL), 0);
    assert_to_client(C, 0x4000, "back");
    ck_assert_uint_eq(turn_core_next_deadline(F.core), 600000);
    counts(&allocs, &chans);
    ck_assert_uint_eq(allocs, 1);
    ck_assert_uint_eq(chans, 1);
}
END_TEST

START_TEST(test_respawn_lost_port_counts)
{
    struct rq       r;
    struct stun_msg m;
    uint32_t        allocs, chans;

    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    turn_core_free(F.core);
    F.core = turn_core_new(&F.conf, F.tab);
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_adopt(F.core, 5000, &F.q), 0);
    ck_assert_int_eq(open_relays(0, 5000), 1);
    counts(&allocs, &chans);
    ck_assert_uint_eq(allocs, 0);
    ck_assert_uint_eq(stats()->allocations_lost, 1);
    refresh_rq(&r, C, -1);
    ck_assert_int_eq(send_at(C, &r, 6000, NULL), 0);
    resp(F.q.n - 1, &m);
    ck_assert_uint_ge(code_of(&m), 437);
}
END_TEST

/* --- The channel index grows on the control path ------------------- */

static const char *
peer_n(int i)
{
    static char buf[32];

    snprintf(buf, sizeof(buf), "203.0.113.%d:%d", 1 + i % 200, 1 + i / 200);
    return buf;
}

/* Binds channels 0x4000+from .. 0x4000+to-1 of C to peer_n(). */
static void
bind_many(int from, int to, turn_ms_t now)
{
    for (int i = from; i < to; i++)
        ck_assert_uint_eq(bind_at(C, F.u, (uint16_t)(0x4000 + i), peer_n(i),
            now), 0);
}

/* Channel i of C relays both ways on relay port 49152. */
static void
assert_relays(struct atab_ref ref, int i, turn_ms_t now)
{
    uint16_t number = (uint16_t)(0x4000 + i);
    char     peer[32];

    snprintf(peer, sizeof(peer), "%s", peer_n(i));
    ck_assert_int_eq(cdata_at(C, number, "ping", now, NULL), 0);
    assert_to_peer(peer, 49152, "ping");
    ck_assert_int_eq(peer_at(ref, 49152, peer, "pong", now, NULL), 0);
    assert_to_client(C, number, "pong");
}

START_TEST(test_channel_index_grows)
{
    struct atab_ref ref;
    uint32_t        allocs, chans;

    fx_up(R4, 0);
    ref = alloc_at(C, 3600, 0);
    bind_many(0, 100, 0);              /* the index doubles three times */
    counts(&allocs, &chans);
    ck_assert_uint_eq(chans, 100);
    for (int i = 0; i < 100; i += 11)
        assert_relays(ref, i, 1);
    assert_relays(ref, 99, 1);
}
END_TEST

/* No memory to grow the index: the new channel gets 508 and leaves no
 * slot behind; the bindings held keep relaying and can be refreshed. */
START_TEST(test_channel_bind_508_when_index_cannot_grow)
{
    struct atab_ref ref;
    uint32_t        allocs, chans;

    fx_up(R4, 0);
    ref = alloc_at(C, 3600, 0);
    bind_many(0, 12, 0);               /* 3/4 of the first 16 entries */
    fail_calloc(0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000 + 12, peer_n(12), 1), 508);
    ck_assert_ptr_null(find_cmd(TURN_CMD_CHAN_BOUND));
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000 + 5, peer_n(5), 2), 0);
    fail_calloc(-1);
    counts(&allocs, &chans);
    ck_assert_uint_eq(chans, 12);
    ck_assert_int_eq(atab_check(F.tab), 0);
    for (int i = 0; i < 12; i++)
        assert_relays(ref, i, 3);
    ck_assert_int_eq(cdata_at(C, 0x4000 + 12, "x", 3, NULL), RLY_ERR_DROP);
    /* With memory again the same bind succeeds. */
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000 + 12, peer_n(12), 4), 0);
    assert_relays(ref, 12, 5);
}
END_TEST

/* A new worker's index starts small and grows as it adopts. */
START_TEST(test_adoption_grows_channel_index)
{
    struct atab_ref ref;

    fx_up(R4, 0);
    ref = alloc_at(C, 3600, 0);
    bind_many(0, 60, 0);
    turn_core_free(F.core);
    F.core = turn_core_new(&F.conf, F.tab);
    ck_assert_ptr_nonnull(F.core);
    turn_cmdq_reset(&F.q);
    ck_assert_int_eq(turn_core_adopt(F.core, 5000, &F.q), 0);
    ck_assert_int_eq(open_relays(1, 5000), 1);
    for (int i = 0; i < 60; i += 7)
        assert_relays(ref, i, 5001);
    assert_relays(ref, 59, 5001);
}
END_TEST

/* Adoption without memory for the index: RLY_ERR_NOMEM (the worker exits)
 * and the allocation stays in the table, channels included, for the next
 * worker, which adopts it whole. */
START_TEST(test_adoption_without_memory_leaves_table)
{
    struct atab_ref ref;
    uint32_t        allocs, chans;

    fx_up(R4, 0);
    ref = alloc_at(C, 3600, 0);
    bind_many(0, 20, 0);
    turn_core_free(F.core);
    F.core = turn_core_new(&F.conf, F.tab);
    ck_assert_ptr_nonnull(F.core);
    turn_cmdq_reset(&F.q);
    fail_calloc(0);
    ck_assert_int_eq(turn_core_adopt(F.core, 5000, &F.q), RLY_ERR_NOMEM);
    fail_calloc(-1);
    ck_assert_uint_eq(F.q.n, 0);
    ck_assert_uint_eq(turn_core_owned(F.core), 0);
    counts(&allocs, &chans);
    ck_assert_uint_eq(allocs, 1);
    ck_assert_uint_eq(chans, 20);
    ck_assert_int_eq(atab_alloc_state(atab_alloc_at(F.tab, ref.idx)),
        ATAB_A_LIVE);
    ck_assert_int_eq(atab_check(F.tab), 0);
    turn_core_free(F.core);
    F.core = turn_core_new(&F.conf, F.tab);
    ck_assert_ptr_nonnull(F.core);
    ck_assert_int_eq(turn_core_adopt(F.core, 6000, &F.q), 0);
    ck_assert_int_eq(open_relays(1, 6000), 1);
    for (int i = 0; i < 20; i++)
        assert_relays(ref, i, 6001);
}
END_TEST

static void
small_table(void)
{
    F.max_allocs = 4;
    F.max_chans = 3;
}

START_TEST(test_channel_table_full_508)
{
    small_table();
    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, "203.0.113.1:1", 0), 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4001, "203.0.113.2:1", 0), 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4002, "203.0.113.3:1", 0), 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4003, "203.0.113.4:1", 0), 508);
    /* A refresh of an existing one still works when full. */
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, "203.0.113.1:1", 10), 0);
}
END_TEST

START_TEST(test_allocation_table_full_508)
{
    char     client[32], user[64];
    uint32_t allocs, chans;

    small_table();
    fx_up(R4, 0);
    for (int i = 0; i < 4; i++) {
        struct aopts    o = { .lifetime = -1, .user = user };
        struct stun_msg m;

        snprintf(client, sizeof(client), "198.51.100.%d:1", 20 + i);
        snprintf(user, sizeof(user), "%llu:s%d", WALL + 1, i);
        challenge(client, 0);
        alloc_ex(client, &o, 0, &m, NULL);
    }
    counts(&allocs, &chans);
    ck_assert_uint_eq(allocs, 4);
    {
        struct rq       r;
        struct aopts    o = { .lifetime = -1, .user = F.u2 };
        struct stun_msg m;

        challenge(C2, 0);
        alloc_rq(&r, C2, &o);
        ck_assert_int_eq(send_at(C2, &r, 0, NULL), 0);
        only_resp(&m);
        ck_assert_uint_eq(code_of(&m), 508);
    }
}
END_TEST

START_TEST(test_timer_run_resumes_when_queue_full)
{
    struct turn_cmdq small;
    int              rounds = 0;
    size_t           closes = 0;
    char             client[32], user[64];

    F.max_allocs = 32;
    fx_up(R4, 0);
    for (int i = 0; i < 20; i++) {
        struct aopts    o = { .lifetime = 60, .user = user };
        struct stun_msg m;

        snprintf(client, sizeof(client), "198.51.100.%d:1", 20 + i);
        snprintf(user, sizeof(user), "%llu:s%d", WALL + 1, i);
        challenge(client, 0);
        alloc_ex(client, &o, 0, &m, NULL);
    }
    ck_assert_int_eq(turn_cmdq_init(&small, 8, 8 * 1024), 0);
    for (;;) {
        int rc = turn_core_on_timer(F.core, 60000, &small);

        ck_assert_int_ge(rc, 0);
        closes += small.n;
        turn_cmdq_reset(&small);
        rounds++;
        if (rc == 0)
            break;
        ck_assert_int_lt(rounds, 100);
    }
    ck_assert_uint_eq(closes, 20);
    ck_assert_int_gt(rounds, 1);
    turn_cmdq_fini(&small);
}
END_TEST

START_TEST(test_reload_policy)
{
    struct peer_policy pol;
    struct cidr        c;

    fx_up(R4, 0);
    alloc_at(C, 3600, 0);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, "127.0.0.1:5000", 0), 403);
    pol = F.pol;
    ck_assert_int_eq(cidr_parse("127.0.0.1/32", &c), 0);
    peer_policy_allow(&pol, &c);
    turn_core_reload(F.core, &pol, 100, 200, RLY_LOG_ERROR);
    ck_assert_uint_eq(bind_at(C, F.u, 0x4000, "127.0.0.1:5000", 1), 0);
}
END_TEST

static void
teardown(void)
{
    if (F.core != NULL || F.tab != NULL)
        fx_down();
}

Suite *
turn_core_suite(void)
{
    Suite *s = suite_create("turn_core");
    TCase *tc = tcase_create("spec");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_c1_binding);
    tcase_add_test(tc, test_c2_port_zero);
    tcase_add_test(tc, test_c3_malformed);
    tcase_add_test(tc, test_c4_not_request);
    tcase_add_test(tc, test_c5_unknown_method);
    tcase_add_test(tc, test_c6_unknown_attributes_skipped);
    tcase_add_test(tc, test_c7_unauthenticated_400);
    tcase_add_test(tc, test_c8_fingerprint);
    tcase_add_test(tc, test_c9_allocate_with_fingerprint);
    tcase_add_test(tc, test_c10_only_sha256_integrity);
    tcase_add_test(tc, test_c11_challenge_without_credentials);
    tcase_add_test(tc, test_c12_challenge_signed_when_username);
    tcase_add_test(tc, test_c13_unparsable_username_dropped);
    tcase_add_test(tc, test_c14_nonce_is_per_socket);
    tcase_add_test(tc, test_c15_allocate_success);
    tcase_add_test(tc, test_c16_nonce_not_uuid);
    tcase_add_test(tc, test_c17_nonce_uses);
    tcase_add_test(tc, test_c18_credential_expiry);
    tcase_add_test(tc, test_c19_wrong_secret);
    tcase_add_test(tc, test_c22_second_allocate_437);
    tcase_add_test(tc, test_c23_allocate_replay);
    tcase_add_test(tc, test_c24_same_username_replaces);
    tcase_add_test(tc, test_c25_transport_not_udp);
    tcase_add_test(tc, test_c26_lifetime_clamped_and_zero);
    tcase_add_test(tc, test_c27_allocation_expires);
    tcase_add_test(tc, test_c28_refresh_extends);
    tcase_add_test(tc, test_c29_refresh_zero_deletes);
    tcase_add_test(tc, test_c30_refresh_without_allocation);
    tcase_add_test(tc, test_c31_capacity_508);
    tcase_add_test(tc, test_c32_dual_allocation);
    tcase_add_test(tc, test_c33_bad_family_combinations);
    tcase_add_test(tc, test_c34_family_not_supported);
    tcase_add_test(tc, test_c35_aaf6_on_ipv4_relay);
    tcase_add_test(tc, test_c36_ipv6_client_ipv6_relay);
    tcase_add_test(tc, test_c37_channel_data_both_ways);
    tcase_add_test(tc, test_run_channel_data_one_command);
    tcase_add_test(tc, test_run_mixed_datagrams);
    tcase_add_test(tc, test_run_limits);
    tcase_add_test(tc, test_run_stops_when_queue_full);
    tcase_add_test(tc, test_c38_padding_and_lying_length);
    tcase_add_test(tc, test_c39_unbound_channel_and_peer);
    tcase_add_test(tc, test_c40_peer_family_mismatch);
    tcase_add_test(tc, test_c41_channel_bind_without_allocation);
    tcase_add_test(tc, test_c42_channel_conflicts);
    tcase_add_test(tc, test_c43_channel_refresh);
    tcase_add_test(tc, test_c44_unbind_and_cooldown);
    tcase_add_test(tc, test_c45_number_reused_after_cooldown);
    tcase_add_test(tc, test_c46_refresh_zero_clears_channels);
    tcase_add_test(tc, test_c47_create_permission_noop);
    tcase_add_test(tc, test_c48_denied_peers_403);
    tcase_add_test(tc, test_c49_same_number_different_clients);
    tcase_add_test(tc, test_c50_private_peers_allowed);
    tcase_add_test(tc, test_c51_allow_loopback);
    tcase_add_test(tc, test_c52_allow_beats_deny);
    tcase_add_test(tc, test_c53_rate_limit);
    tcase_add_test(tc, test_c54_nonce_table_eviction);
    tcase_add_test(tc, test_c73_same_socket_same_nonce);
    tcase_add_test(tc, test_channel_bind_while_opening_437);
    tcase_add_test(tc, test_bind_failure_moves_port_then_508);
    tcase_add_test(tc, test_too_large_peer_datagram);
    tcase_add_test(tc, test_gate_closed_until_ready);
    tcase_add_test(tc, test_replacement_by_other_worker_reaped_by_owner);
    tcase_add_test(tc, test_rebind_after_remote_replacement);
    tcase_add_test(tc, test_respawned_worker_adopts_allocations);
    tcase_add_test(tc, test_respawn_lost_port_counts);
    tcase_add_test(tc, test_channel_table_full_508);
    tcase_add_test(tc, test_channel_index_grows);
    tcase_add_test(tc, test_channel_bind_508_when_index_cannot_grow);
    tcase_add_test(tc, test_adoption_grows_channel_index);
    tcase_add_test(tc, test_adoption_without_memory_leaves_table);
    tcase_add_test(tc, test_allocation_table_full_508);
    tcase_add_test(tc, test_timer_run_resumes_when_queue_full);
    tcase_add_test(tc, test_reload_policy);
    suite_add_tcase(s, tc);
    return s;
}
