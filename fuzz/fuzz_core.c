/* fuzz_core.c - libFuzzer target for the whole TURN core, stateful (SPEC
 * §2-§6): one or two workers' cores over one allocation table, driven by
 * a sequence of events decoded from the input (fuzz_core.h): client
 * datagrams (raw, ChannelData, or STUN requests that the harness signs
 * with the nonce from the last 401/438 it saw), peer datagrams on the
 * relay ports, time steps, timer runs, failing relay opens and
 * randomness, reloads of the peer policy, the relaying gate and worker
 * respawns.
 *
 * The harness carries out the commands as a worker does (udp_io.c): in
 * queue order, a batch at a time, then reports RELAY_OPEN results with
 * turn_core_on_relay_opened().  It keeps a model of the host (which
 * worker has which relay port bound) and of the channels announced by
 * CHAN_BOUND / CHAN_UNBOUND / RELAY_CLOSE, and checks:
 *  - every command when emitted: response bytes inside the queue arena,
 *    relayed payloads inside the datagram given to that call, responses
 *    that parse, follow SPEC §2.7 and verify (FINGERPRINT, and
 *    MESSAGE-INTEGRITY with the request's key), relaying only through
 *    LIVE allocations of this worker, and only on a channel the table
 *    holds bound for the sender (a client relays through its own
 *    allocation only), RELAY_OPEN within the port range;
 *  - every command when carried out: no port bound twice, data sent to a
 *    peer only from a bound relay socket of its family and on an
 *    announced channel, ChannelData to a client only on an announced
 *    channel;
 *  - after each event: counts within capacity, queues within bounds; the
 *    next deadline after a timer run lies in the future; atab_check()
 *    every 64 events and at the end of the input.
 * Everything is torn down at the end of each input (LeakSanitizer). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "atab.h"
#include "auth.h"
#include "chandata.h"
#include "fuzz_core.h"
#include "fuzz_util.h"
#include "peer_policy.h"
#include "rly_err.h"
#include "stun_integrity.h"
#include "stun_msg.h"
#include "turn_cmd.h"
#include "turn_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_WORKERS     2
#define MAX_ALLOCS      8
#define MAX_CHANS       16
#define MAX_EVENTS      512
#define MAX_RANGE       12
#define QCMDS           32
#define QARENA          (8 * TURN_ARENA_PER_EVENT)
#define MAX_BUFS        16
#define NREFS           16
#define NREQS           64
#define MODEL_CHANS     64
#define CHECK_EVERY     64      /* atab_check() scans 65,536 ports */
#define SECRET  "4c98bf59c99b3e467ecd7cf9d6b3e527" \
                "9645fca59be67bc5bb4af3cf653761ab"
#define ZERO_NONCE      "00000000-0000-0000-0000-000000000000"

struct pending {
    struct atab_ref ref;
    int             ok;
};

struct worker {
    struct turn_core   *core;
    struct turn_cmdq    q;
    uint8_t            *bufs[MAX_BUFS];     /* datagrams of the batch */
    size_t              nbufs;
    struct pending      pend[QCMDS];        /* RELAY_OPEN results */
    size_t              npend;
};

/* A relay port of the host: bound by worker owner - 1 (0: free). */
struct port_state {
    uint8_t         owner;
    uint8_t         fams;
    struct atab_ref ref;
};

/* A channel announced by CHAN_BOUND and not yet withdrawn. */
struct model_chan {
    int         used;
    int         worker;
    struct addr client, peer;
    uint16_t    number, port;
};

/* A request the harness built, to check its response by: the key of its
 * USERNAME (when it parses) and whether it carried FINGERPRINT. */
struct req_rec {
    int         used;
    int         client;
    int         have_key, fp;
    uint8_t     txid[STUN_TXID_LEN];
    uint8_t     key[16];
};

/* What a core call was given: the datagram and its sender (NULL for
 * timer runs, relay-open results and adoption). */
struct origin {
    const uint8_t      *buf;
    size_t              len;
    const struct addr  *from;
};

struct harness {
    struct fz           in;
    void               *region;
    struct atab        *tab;
    struct turn_conf    conf;
    struct peer_policy  pol;
    struct worker       w[MAX_WORKERS];
    int                 nworkers;
    uint32_t            capacity;
    uint8_t             fams;               /* ATAB_FAM_* relayed */
    turn_ms_t           now;
    uint64_t            rng;
    unsigned            rand_fail, open_fail;
    int                 rand_failed;        /* during the current call */
    char                nonce[FZC_NCLIENTS][64];
    uint8_t             txid[FZC_NCLIENTS][STUN_TXID_LEN];
    int                 have_txid[FZC_NCLIENTS];
    uint32_t            txn;
    struct port_state   ports[MAX_RANGE];
    struct atab_ref     refs[NREFS];
    uint16_t            ref_port[NREFS];
    size_t              nrefs, next_ref;
    struct req_rec      reqs[NREQS];
    size_t              next_req;
    struct model_chan   chans[MODEL_CHANS];
    unsigned            events;
};

static struct harness H;
static const struct origin none;    /* a call without a datagram */
static int trace;               /* FUZZ_TRACE set: events and commands */
static void *region;            /* the table's region, reused */
static struct addr clients[FZC_NCLIENTS], peers[FZC_NPEERS];
static struct addr local4, local6, public4, public6;

/* --- Setup ------------------------------------------------------------ */

static struct addr
addr_of(const char *s)
{
    struct addr a;

    if (addr_parse_ip_port(&a, s) != 0)
        abort();
    return a;
}

static void
init_addrs(void)
{
    static const char *const c[FZC_NCLIENTS] = { "198.51.100.7:40000",
        "198.51.100.7:40001", "198.51.100.8:40000", "[2001:db8:1::7]:40000",
        "[2001:db8:1::7]:40001", "10.1.2.3:3478",
        "[::ffff:198.51.100.7]:40000", "198.51.100.9:0" };
    static const char *const p[FZC_NPEERS] = { "203.0.113.9:5000",
        "203.0.113.10:5000", "[2001:db8:2::9]:5000", "127.0.0.1:5000",
        "192.0.2.1:3478", "10.0.0.1:6000", "192.0.2.1:49152",
        "203.0.113.11:5000" };

    for (int i = 0; i < FZC_NCLIENTS; i++)
        clients[i] = addr_of(c[i]);
    for (int i = 0; i < FZC_NPEERS; i++)
        peers[i] = addr_of(p[i]);
    local4 = addr_of("192.0.2.1:3478");
    local6 = addr_of("[2001:db8::1]:3478");
    public4 = addr_of("192.0.2.1:0");
    public6 = addr_of("[2001:db8::1]:0");
}

static int
fz_rand(void *ud, uint8_t *buf, size_t len)
{
    struct harness *h = ud;

    if (h->rand_fail > 0) {
        h->rand_fail--;
        h->rand_failed = 1;
        return RLY_ERR_CRYPTO;
    }
    while (len > 0) {
        uint64_t v = fz_mix(&h->rng);
        size_t   n = len < sizeof(v) ? len : sizeof(v);

        memcpy(buf, &v, n);
        buf += n;
        len -= n;
    }
    return 0;
}

static void
fz_log(void *ud, enum rly_log_level level, const char *func,
    const char *msg)
{
    (void)ud;
    (void)level;
    /* Read the whole message: it must be a valid string. */
    FZ_CHECK(strlen(func) + strlen(msg) < 4096);
}

static void
policy_add(struct peer_policy *p, const char *cidr, int allow)
{
    struct cidr c;

    if (cidr_parse(cidr, &c) != 0)
        abort();
    if ((allow ? peer_policy_allow(p, &c) : peer_policy_deny(p, &c)) != 0)
        abort();
}

/* The policy as cfg_peer_policy() builds it, plus one of a few lists. */
static void
make_policy(struct harness *h, unsigned sel)
{
    struct addr a;

    peer_policy_init(&h->pol);
    if (h->fams & ATAB_FAM_V4) {
        peer_policy_listen(&h->pol, &local4);
        a = addr_of("0.0.0.0:3478");
        peer_policy_listen(&h->pol, &a);
    }
    if (h->fams & ATAB_FAM_V6) {
        peer_policy_listen(&h->pol, &local6);
        a = addr_of("[::]:3478");
        peer_policy_listen(&h->pol, &a);
    }
    switch (sel % 4) {
    case 1:
        policy_add(&h->pol, "127.0.0.0/8", 1);
        policy_add(&h->pol, "::1/128", 1);
        break;
    case 2:
        policy_add(&h->pol, "203.0.113.0/24", 0);
        break;
    case 3:
        policy_add(&h->pol, "0.0.0.0/0", 0);
        policy_add(&h->pol, "::/0", 0);
        break;
    }
}

static void
new_core(struct harness *h, int wi)
{
    struct worker *w = &h->w[wi];
    unsigned       saved = h->rand_fail;

    h->conf.worker = (uint16_t)wi;
    h->conf.stats = atab_worker_stats(h->tab, (uint32_t)wi);
    h->conf.policy = &h->pol;
    h->rand_fail = 0;
    w->core = turn_core_new(&h->conf, h->tab);
    h->rand_fail = saved;
    FZ_CHECK(w->core != NULL);
}

static void
setup(struct harness *h, const uint8_t *data, size_t size)
{
    static const uint8_t ukey[ATAB_USER_KEY_LEN] = { 1 };
    static const uint8_t hkey[ATAB_HASH_KEY_LEN] = { 2 };
    uint8_t              h0, h1;
    uint32_t             range;
    size_t               rsize;

    memset(h, 0, sizeof(*h));
    fz_init(&h->in, data, size);
    h0 = fz_u8(&h->in);
    h1 = fz_u8(&h->in);
    h->rng = fz_u16(&h->in);
    h->nworkers = h0 & FZC_TWO_WORKERS ? 2 : 1;
    h->fams = (h0 & 3) == FZC_RELAY_V4 ? ATAB_FAM_V4 :
        (h0 & 3) == FZC_RELAY_V6 ? ATAB_FAM_V6 : ATAB_FAM_V4 | ATAB_FAM_V6;
    range = 1 + h1 % MAX_RANGE;
    h->capacity = range < MAX_ALLOCS ? range : MAX_ALLOCS;
    h->now = 1000;

    /* One region for every input: atab_format() writes all of it, and a
     * fresh mapping per input would cost more than the input. */
    rsize = atab_region_size(MAX_ALLOCS, MAX_CHANS, (uint32_t)h->nworkers);
    if (region == NULL && (region = aligned_alloc(64,
            atab_region_size(MAX_ALLOCS, MAX_CHANS, MAX_WORKERS))) == NULL)
        abort();
    h->region = region;
    FZ_CHECK(atab_format(h->region, rsize, MAX_ALLOCS, MAX_CHANS,
        (uint32_t)h->nworkers, ukey, hkey) == 0);
    FZ_CHECK(atab_attach(h->region, rsize, &h->tab) == 0);
    if (!(h0 & FZC_GATED))
        atab_set_ready(h->tab);

    make_policy(h, 0);
    if (h->fams & ATAB_FAM_V4)
        h->conf.public4 = public4;
    if (h->fams & ATAB_FAM_V6)
        h->conf.public6 = public6;
    h->conf.listen_port = 3478;
    h->conf.port_min = FZC_PORT_MIN;
    h->conf.port_max = (uint16_t)(FZC_PORT_MIN + range - 1);
    h->conf.max_allocs = MAX_ALLOCS;
    h->conf.nonce_table_size = h0 & FZC_SMALL_NONCES ? 2 : 64;
    h->conf.error_rate = h0 & FZC_RATELIM ? 1 : 0;
    h->conf.error_burst = 3;
    h->conf.secret = SECRET;
    h->conf.software = "firezone-relay; rev=fuzz";
    h->conf.rand = fz_rand;
    h->conf.rand_ud = h;
    h->conf.log.fn = fz_log;
    h->conf.log.level = RLY_LOG_ERROR;
    h->conf.gated = 1;
    for (int wi = 0; wi < h->nworkers; wi++) {
        new_core(h, wi);
        if (turn_cmdq_init(&h->w[wi].q, QCMDS, QARENA) != 0)
            abort();
    }
    for (int i = 0; i < FZC_NCLIENTS; i++)
        memcpy(h->nonce[i], ZERO_NONCE, sizeof(ZERO_NONCE));
}

static void
drop_bufs(struct worker *w)
{
    for (size_t i = 0; i < w->nbufs; i++)
        free(w->bufs[i]);
    w->nbufs = 0;
}

static void
teardown(struct harness *h)
{
    for (int wi = 0; wi < h->nworkers; wi++) {
        turn_core_free(h->w[wi].core);
        turn_cmdq_fini(&h->w[wi].q);
        drop_bufs(&h->w[wi]);
    }
    atab_detach(h->tab);
}

/* --- Models ----------------------------------------------------------- */

static struct port_state *
port_at(struct harness *h, uint16_t port)
{
    FZ_CHECK(port >= h->conf.port_min && port <= h->conf.port_max);
    return &h->ports[port - h->conf.port_min];
}

static uint8_t
fam_bit(const struct addr *a)
{
    return a->family == ADDR_V4 ? ATAB_FAM_V4 : ATAB_FAM_V6;
}

static int
client_index(const struct addr *a)
{
    for (int i = 0; i < FZC_NCLIENTS; i++)
        if (addr_eq(&clients[i], a))
            return i;
    return -1;
}

static struct model_chan *
model_find(struct harness *h, int wi, const struct addr *client,
    uint16_t number)
{
    for (int i = 0; i < MODEL_CHANS; i++) {
        struct model_chan *c = &h->chans[i];

        if (c->used && c->worker == wi && c->number == number &&
            addr_eq(&c->client, client))
            return c;
    }
    return NULL;
}

static void
model_bind(struct harness *h, int wi, const struct addr *client,
    uint16_t number, const struct addr *peer, uint16_t port)
{
    struct model_chan *c = model_find(h, wi, client, number);

    for (int i = 0; c == NULL && i < MODEL_CHANS; i++)
        if (!h->chans[i].used)
            c = &h->chans[i];
    FZ_CHECK(c != NULL);    /* more channels announced than exist */
    c->used = 1;
    c->worker = wi;
    c->client = *client;
    c->number = number;
    c->peer = *peer;
    c->port = port;
}

/* Channels announced on a relay port of worker wi (client or peer side). */
static int
model_relays(struct harness *h, int wi, uint16_t port, uint16_t number,
    const struct addr *client, const struct addr *peer)
{
    for (int i = 0; i < MODEL_CHANS; i++) {
        struct model_chan *c = &h->chans[i];

        if (c->used && c->worker == wi && c->port == port &&
            c->number == number &&
            (client == NULL || addr_eq(&c->client, client)) &&
            (peer == NULL || addr_eq(&c->peer, peer)))
            return 1;
    }
    return 0;
}

static void
model_close(struct harness *h, int wi, uint16_t port)
{
    for (int i = 0; i < MODEL_CHANS; i++)
        if (h->chans[i].used && h->chans[i].worker == wi &&
            h->chans[i].port == port)
            h->chans[i].used = 0;
}

/* After a respawn: the channels that worker wi relays are those the table
 * holds bound for its live allocations. */
static void
model_rebuild(struct harness *h, int wi)
{
    for (int i = 0; i < MODEL_CHANS; i++)
        if (h->chans[i].worker == wi)
            h->chans[i].used = 0;
    for (uint32_t i = 0; i < MAX_CHANS; i++) {
        const struct atab_chan  *c = atab_chan_at(h->tab, i);
        const struct atab_alloc *a;

        if (c->state != ATAB_C_BOUND || !c->commit)
            continue;
        a = atab_alloc_at(h->tab, c->alloc);
        if (a->owner == wi && a->gen == c->alloc_gen &&
            atab_alloc_state(a) == ATAB_A_LIVE)
            model_bind(h, wi, &a->client, c->number, &c->peer, a->port);
    }
}

/* --- Checking commands when they are emitted -------------------------- */

static void
check_error(const struct stun_msg *m)
{
    const uint8_t *v;
    size_t         len, n;
    unsigned       code;

    v = stun_msg_attr(m, STUN_K_ERROR_CODE, &len);
    FZ_CHECK(v != NULL);
    code = (unsigned)(v[2] & 7) * 100 + v[3];
    /* SPEC §2.9; 500 is "not expected to occur": it would mean the core
     * failed on its own state. */
    FZ_CHECK(code == 400 || code == 401 || code == 403 || code == 437 ||
        code == 438 || code == 440 || code == 443 || code == 508);
    if (code == 401 || code == 438) {
        v = stun_msg_attr(m, STUN_K_NONCE, &n);
        FZ_CHECK(v != NULL && n == AUTH_NONCE_STRLEN);
        FZ_CHECK(stun_msg_attr(m, STUN_K_REALM, &n) != NULL);
    }
}

static void
check_success(struct harness *h, const struct stun_msg *m,
    const struct turn_cmd *cmd)
{
    const uint8_t *v;
    size_t         len;
    struct addr    a;
    uint32_t       l;

    if (m->method == STUN_BINDING || m->method == STUN_ALLOCATE) {
        v = stun_msg_attr(m, STUN_K_XOR_MAPPED_ADDRESS, &len);
        FZ_CHECK(v != NULL && stun_xor_addr_decode(v, len, m->txid,
            &a) == 0 && addr_eq(&a, &cmd->path.remote));
    }
    if (m->method == STUN_ALLOCATE) {
        v = stun_msg_attr(m, STUN_K_XOR_RELAYED_ADDRESS, &len);
        FZ_CHECK(v != NULL && stun_xor_addr_decode(v, len, m->txid,
            &a) == 0);
        FZ_CHECK(addr_ip_eq(&a, a.family == ADDR_V4 ? &public4 : &public6));
        FZ_CHECK(h->fams & fam_bit(&a));
        FZ_CHECK(a.port >= h->conf.port_min && a.port <= h->conf.port_max);
    }
    if (m->method == STUN_ALLOCATE || m->method == STUN_REFRESH) {
        v = stun_msg_attr(m, STUN_K_LIFETIME, &len);
        FZ_CHECK(v != NULL && stun_attr_u32(v, len, &l) == 0 &&
            l <= TURN_MAX_LIFETIME);
    }
}

/* When the harness built the request (same client and transaction id),
 * the response carries FINGERPRINT iff the request did, and a signed one
 * verifies with the request's key (SPEC §2.7, §2.8). */
static void
check_signature(struct harness *h, const struct stun_msg *m, int ci)
{
    size_t len;
    int    known = 0;
    int    mi = stun_msg_attr(m, STUN_K_MESSAGE_INTEGRITY, &len) != NULL;
    int    fp = stun_msg_attr(m, STUN_K_FINGERPRINT, &len) != NULL;

    /* Binding responses are never signed. */
    FZ_CHECK(!mi || m->method != STUN_BINDING);
    for (int i = 0; i < NREQS; i++) {
        const struct req_rec *r = &h->reqs[i];

        if (!r->used || r->client != ci ||
            memcmp(r->txid, m->txid, STUN_TXID_LEN) != 0)
            continue;
        known = 1;
        if (r->fp == fp && (!mi || (r->have_key &&
                stun_integrity_verify(m, r->key, 16) == 0)))
            return;
    }
    FZ_CHECK(!known);
}

static void
check_response(struct harness *h, const struct turn_cmd *cmd)
{
    struct stun_msg m;
    size_t          len;
    const uint8_t  *nonce;
    int             ci = client_index(&cmd->path.remote);

    FZ_CHECK(cmd->paylen == 0 && cmd->payload == NULL);
    FZ_CHECK(stun_msg_parse(&m, cmd->hdr, cmd->hdrlen) == 0);
    FZ_CHECK(m.cls == STUN_SUCCESS || m.cls == STUN_ERROR);
    FZ_CHECK(!m.bad_attr && !m.fp_not_last);
    FZ_CHECK(stun_fingerprint_verify(&m) == 0);
    /* SOFTWARE first (SPEC §2.7). */
    FZ_CHECK(m.attr[STUN_K_SOFTWARE].off == STUN_HDR_LEN);
    if (m.cls == STUN_ERROR)
        check_error(&m);
    else
        check_success(h, &m, cmd);
    FZ_CHECK(ci >= 0);
    check_signature(h, &m, ci);
    /* The client learns the nonce of a 401 or 438. */
    if ((nonce = stun_msg_attr(&m, STUN_K_NONCE, &len)) != NULL &&
        len < sizeof(h->nonce[ci])) {
        memcpy(h->nonce[ci], nonce, len);
        h->nonce[ci][len] = '\0';
    }
}

static const struct atab_alloc *
live_alloc(struct harness *h, int wi, struct atab_ref ref)
{
    const struct atab_alloc *a = atab_alloc_get(h->tab, ref);

    FZ_CHECK(a != NULL && atab_alloc_state(a) == ATAB_A_LIVE);
    FZ_CHECK(a->owner == wi);
    return a;
}

/* Relayed data: the table must hold a bound channel of that allocation
 * for the datagram's sender (SPEC §2.11.2, §2.11.3). */
static const struct atab_chan *
bound_chan(struct harness *h, uint32_t ch)
{
    const struct atab_chan *c;

    FZ_CHECK(ch != ATAB_NONE);
    c = atab_chan_at(h->tab, ch);
    FZ_CHECK(c != NULL && c->state == ATAB_C_BOUND && c->expiry > h->now);
    return c;
}

static void
check_chandata_out(struct harness *h, int wi, const struct turn_cmd *cmd,
    const struct addr *from)
{
    const struct atab_alloc *a = live_alloc(h, wi, cmd->ref);
    const struct atab_chan  *c;

    FZ_CHECK(chandata_number_ok((uint16_t)(cmd->hdr[0] << 8 | cmd->hdr[1])));
    FZ_CHECK((size_t)(cmd->hdr[2] << 8 | cmd->hdr[3]) == cmd->paylen);
    FZ_CHECK(addr_eq(&a->client, &cmd->path.remote));
    FZ_CHECK(a->port == cmd->port);
    /* From a peer bound to this allocation, under this number. */
    FZ_CHECK(from != NULL);
    c = bound_chan(h, atab_chan_find_peer(h->tab, cmd->ref.idx, from));
    FZ_CHECK(c->number == cmd->number);
}

static void
check_send_peer(struct harness *h, int wi, const struct turn_cmd *cmd,
    const struct addr *from)
{
    const struct atab_alloc *a = live_alloc(h, wi, cmd->ref);
    const struct atab_chan  *c;

    FZ_CHECK(cmd->hdr == NULL && cmd->payload != NULL);
    FZ_CHECK(a->port == cmd->port);
    FZ_CHECK(a->families & fam_bit(&cmd->path.remote));
    FZ_CHECK(cmd->path.remote.port != 0);
    /* Only the allocation's own client relays through it, on a channel
     * it bound to this peer. */
    FZ_CHECK(from != NULL && addr_eq(&a->client, from));
    c = bound_chan(h, atab_chan_find_num(h->tab, cmd->ref.idx, cmd->number));
    FZ_CHECK(addr_eq(&c->peer, &cmd->path.remote));
}

static void
remember_ref(struct harness *h, const struct turn_cmd *cmd)
{
    h->refs[h->next_ref] = cmd->ref;
    h->ref_port[h->next_ref] = cmd->port;
    h->next_ref = (h->next_ref + 1) % NREFS;
    if (h->nrefs < NREFS)
        h->nrefs++;
}

static void
trace_cmd(int wi, const struct turn_cmd *cmd)
{
    static const char *const kinds[] = { "SEND_CLIENT", "SEND_PEER",
        "RELAY_OPEN", "RELAY_CLOSE", "CHAN_BOUND", "CHAN_UNBOUND" };
    char r[ADDR_STRLEN], p[ADDR_STRLEN];
    unsigned code = 0;

    if (cmd->kind == TURN_CMD_SEND_CLIENT && cmd->hdrlen > 20 &&
        (cmd->hdr[0] & 0x01) && (cmd->hdr[1] & 0x10)) {
        struct stun_msg m;
        size_t          n;
        const uint8_t  *v;

        if (stun_msg_parse(&m, cmd->hdr, cmd->hdrlen) == 0 &&
            (v = stun_msg_attr(&m, STUN_K_ERROR_CODE, &n)) != NULL && n >= 4)
            code = (unsigned)(v[2] & 7) * 100 + v[3];
    }
    fprintf(stderr, "  worker %d: %s %s port %u number 0x%04x peer %s "
        "ref %u/%u type 0x%04x code %u paylen %zu\n", wi,
        (unsigned)cmd->kind < 6 ? kinds[cmd->kind] : "?",
        addr_format(&cmd->path.remote, r, sizeof(r)), cmd->port,
        cmd->number, addr_format(&cmd->peer, p, sizeof(p)), cmd->ref.idx,
        cmd->ref.gen, cmd->hdr != NULL && cmd->hdrlen > 20 ?
        (unsigned)(cmd->hdr[0] << 8 | cmd->hdr[1]) : 0, code, cmd->paylen);
}

static void
check_cmd(struct harness *h, int wi, const struct turn_cmd *cmd,
    const struct origin *o)
{
    const struct turn_cmdq  *q = &h->w[wi].q;
    const struct atab_alloc *a;

    if (trace)
        trace_cmd(wi, cmd);
    if (cmd->hdr != NULL)
        FZ_CHECK(cmd->hdrlen > 0 && cmd->hdr >= q->arena &&
            cmd->hdr + cmd->hdrlen <= q->arena + q->used);
    if (cmd->payload != NULL)
        FZ_CHECK(o->buf != NULL && cmd->payload >= o->buf &&
            cmd->payload + cmd->paylen <= o->buf + o->len);
    else
        FZ_CHECK(cmd->paylen == 0);
    if (cmd->nseg > 1) {        /* a run: all of it inside the input */
        FZ_CHECK(cmd->kind == TURN_CMD_SEND_PEER && cmd->hdrlen == 0);
        FZ_CHECK(cmd->nseg <= TURN_RUN_MAX && cmd->stride > 0);
        FZ_CHECK(cmd->lastlen > 0 && cmd->lastlen <= cmd->paylen);
        FZ_CHECK((cmd->nseg - 1u) * cmd->paylen + cmd->lastlen <=
            TURN_RUN_BYTES);
        FZ_CHECK(cmd->payload + (size_t)(cmd->nseg - 1) * cmd->stride +
            cmd->lastlen <= o->buf + o->len);
    }
    switch (cmd->kind) {
    case TURN_CMD_SEND_CLIENT:
        FZ_CHECK(cmd->hdr != NULL && cmd->path.remote.port != 0);
        FZ_CHECK(cmd->path.local.family == cmd->path.remote.family);
        if (cmd->hdrlen == CHANDATA_HDR_LEN)
            check_chandata_out(h, wi, cmd, o->from);
        else
            check_response(h, cmd);
        break;
    case TURN_CMD_SEND_PEER:
        check_send_peer(h, wi, cmd, o->from);
        break;
    case TURN_CMD_RELAY_OPEN:
        a = atab_alloc_get(h->tab, cmd->ref);
        FZ_CHECK(a != NULL && a->owner == wi && a->port == cmd->port);
        FZ_CHECK(cmd->families != 0 && (cmd->families & ~h->fams) == 0);
        (void)port_at(h, cmd->port);
        remember_ref(h, cmd);
        break;
    case TURN_CMD_RELAY_CLOSE:
        (void)port_at(h, cmd->port);
        break;
    case TURN_CMD_CHAN_BOUND:
    case TURN_CMD_CHAN_UNBOUND:
        FZ_CHECK(chandata_number_ok(cmd->number));
        FZ_CHECK(cmd->peer.family == ADDR_V4 || cmd->peer.family == ADDR_V6);
        (void)port_at(h, cmd->port);
        break;
    default:
        FZ_CHECK(!"unknown command kind");
    }
}

/* Where a queue stood before a core call. */
struct mark {
    size_t  n, used;
};

static struct mark
mark_of(const struct turn_cmdq *q)
{
    return (struct mark){ q->n, q->used };
}

/* Checks the commands appended since m; a call for one event appends at
 * most TURN_CMDS_PER_EVENT commands and TURN_ARENA_PER_EVENT bytes. */
static void
check_new(struct harness *h, int wi, struct mark m, const struct origin *o,
    int one_event)
{
    const struct turn_cmdq *q = &h->w[wi].q;

    FZ_CHECK(q->n <= q->cap && q->used <= q->arena_cap);
    FZ_CHECK(q->n >= m.n && q->used >= m.used);
    if (one_event)
        FZ_CHECK(q->n - m.n <= TURN_CMDS_PER_EVENT &&
            q->used - m.used <= TURN_ARENA_PER_EVENT);
    for (size_t i = m.n; i < q->n; i++)
        check_cmd(h, wi, &q->cmd[i], o);
}

/* A core call's return: consumed, dropped for a reason, or a failure of
 * the injected randomness. */
static void
check_rc(struct harness *h, int rc, enum turn_drop drop)
{
    if (trace && rc != 0)
        fprintf(stderr, "  rc %d (%s), drop %s\n", rc, rly_strerror(rc),
            rc == RLY_ERR_DROP ? turn_drop_name(drop) : "-");
    if (rc == RLY_ERR_DROP)
        FZ_CHECK(drop > TURN_DROP_NONE && drop < TURN_DROP_COUNT);
    else
        FZ_CHECK(rc == 0 || (rc == RLY_ERR_CRYPTO && h->rand_failed));
    h->rand_failed = 0;
}

/* --- Carrying commands out -------------------------------------------- */

static void
execute_one(struct harness *h, int wi, const struct turn_cmd *cmd)
{
    struct worker     *w = &h->w[wi];
    struct port_state *p;
    int                ok;

    switch (cmd->kind) {
    case TURN_CMD_SEND_CLIENT:
        if (cmd->hdrlen == CHANDATA_HDR_LEN)
            FZ_CHECK(model_relays(h, wi, cmd->port, cmd->number,
                &cmd->path.remote, NULL));
        break;
    case TURN_CMD_SEND_PEER:
        p = port_at(h, cmd->port);
        FZ_CHECK(p->owner == wi + 1 && (p->fams & fam_bit(&cmd->path.remote)));
        FZ_CHECK(model_relays(h, wi, cmd->port, cmd->number, NULL,
            &cmd->path.remote));
        break;
    case TURN_CMD_RELAY_OPEN:
        p = port_at(h, cmd->port);
        /* The port must not be bound already, by any worker. */
        FZ_CHECK(p->owner == 0);
        ok = 1;
        if (h->open_fail > 0) {
            h->open_fail--;
            ok = 0;
        }
        if (ok) {
            p->owner = (uint8_t)(wi + 1);
            p->fams = cmd->families;
            p->ref = cmd->ref;
        }
        FZ_CHECK(w->npend < QCMDS);
        w->pend[w->npend].ref = cmd->ref;
        w->pend[w->npend++].ok = ok;
        break;
    case TURN_CMD_RELAY_CLOSE:
        p = port_at(h, cmd->port);
        if (p->owner == wi + 1)
            memset(p, 0, sizeof(*p));
        model_close(h, wi, cmd->port);
        break;
    case TURN_CMD_CHAN_BOUND:
        model_bind(h, wi, &cmd->path.remote, cmd->number, &cmd->peer,
            cmd->port);
        break;
    case TURN_CMD_CHAN_UNBOUND: {
        struct model_chan *c = model_find(h, wi, &cmd->path.remote,
            cmd->number);

        if (c != NULL)
            c->used = 0;
        break;
    }
    }
}

/* As udp_io_flush(): carry out the queue, then report relay opens, until
 * nothing is left. */
static void
flush_worker(struct harness *h, int wi)
{
    struct worker *w = &h->w[wi];
    int            rounds = 0;

    do {
        size_t i = 0;

        FZ_CHECK(++rounds < 1000);
        for (size_t k = 0; k < w->q.n; k++)
            execute_one(h, wi, &w->q.cmd[k]);
        turn_cmdq_reset(&w->q);
        drop_bufs(w);
        while (i < w->npend && turn_cmdq_room(&w->q)) {
            struct mark before = mark_of(&w->q);
            int         rc;

            rc = turn_core_on_relay_opened(w->core, w->pend[i].ref,
                w->pend[i].ok, w->pend[i].ok ? NULL : "Address in use",
                h->now, &w->q);
            check_rc(h, rc, TURN_DROP_NONE);
            check_new(h, wi, before, &none, 1);
            i++;
        }
        memmove(w->pend, w->pend + i, (w->npend - i) * sizeof(w->pend[0]));
        w->npend -= i;
    } while (w->q.n > 0 || w->npend > 0);
}

static void
flush_all(struct harness *h)
{
    for (int wi = 0; wi < h->nworkers; wi++)
        flush_worker(h, wi);
}

/* Makes room for one more core call and its datagram. */
static void
room(struct harness *h, int wi)
{
    struct worker *w = &h->w[wi];

    if (!turn_cmdq_room(&w->q) || w->nbufs == MAX_BUFS)
        flush_worker(h, wi);
}

/* --- Events ----------------------------------------------------------- */

static uint64_t
wall(const struct harness *h)
{
    return FZC_WALL + h->now / 1000;
}

/* Hands a datagram (taking ownership of buf) to the client's worker. */
static void
client_datagram(struct harness *h, int ci, uint8_t *buf, size_t len)
{
    int              wi = ci % h->nworkers;
    struct worker   *w = &h->w[wi];
    struct addr_path path;
    enum turn_drop   drop = TURN_DROP_NONE;
    struct mark      before;
    struct origin    o;
    int              rc;

    room(h, wi);
    w->bufs[w->nbufs++] = buf;
    path.remote = clients[ci];
    path.local = path.remote.family == ADDR_V4 ? local4 : local6;
    o.buf = buf;
    o.len = len;
    o.from = &clients[ci];
    before = mark_of(&w->q);
    rc = turn_core_on_client(w->core, &path, buf, len, h->now, wall(h), &w->q,
        &drop);
    check_rc(h, rc, drop);
    check_new(h, wi, before, &o, 1);
}

/* Hands a GRO message (taking ownership of buf): datagrams of seg bytes,
 * the last possibly shorter, through turn_core_on_client_run(). */
static void
client_run(struct harness *h, int ci, uint8_t *buf, size_t seg, size_t len)
{
    int              wi = ci % h->nworkers;
    struct worker   *w = &h->w[wi];
    struct addr_path path;
    struct origin    o;
    size_t           off = 0;

    path.remote = clients[ci];
    path.local = path.remote.family == ADDR_V4 ? local4 : local6;
    o.buf = buf;
    o.len = len;
    o.from = &clients[ci];
    /* buf joins the worker's buffers only after the last call: a flush on
     * the way (room()) frees those, and the run is still being read. */
    while (off < len) {
        struct mark before;
        size_t      used = 0;
        int         rc;

        room(h, wi);
        before = mark_of(&w->q);
        rc = turn_core_on_client_run(w->core, &path, buf + off, seg,
            len - off, h->now, wall(h), &w->q, &used);
        FZ_CHECK(used > 0 && used <= len - off);
        check_rc(h, rc, TURN_DROP_NONE);
        check_new(h, wi, before, &o, 0);
        off += used;
    }
    room(h, wi);
    w->bufs[w->nbufs++] = buf;
}

static uint16_t
read_channel(struct fz *in)
{
    uint8_t sel = fz_u8(in);

    return sel < 0xC0 ? (uint16_t)(0x4000 + sel % 8) : fz_u16(in);
}

static struct addr
read_peer(struct fz *in)
{
    uint8_t     sel = fz_u8(in) % FZC_NPEERS, fam, ip[16];
    struct addr a;
    uint16_t    port;

    if (sel != FZC_NPEERS - 1)
        return peers[sel];
    fam = fz_u8(in);
    fz_copy(in, ip, sizeof(ip));
    port = fz_u16(in);
    if (fam & 1)
        addr_set6(&a, ip, port);
    else
        addr_set4(&a, ip, port);
    return a;
}

/* len bytes of the input (zero-filled) in an exact-size heap buffer. */
static uint8_t *
read_bytes(struct fz *in, size_t len)
{
    uint8_t *p = malloc(len);

    if (p == NULL && (p = malloc(1)) == NULL)
        abort();
    fz_copy(in, p, len);
    return p;
}

static void
ev_raw(struct harness *h, uint8_t e)
{
    int      ci = fz_u8(&h->in) % FZC_NCLIENTS;
    size_t   len = fz_u16(&h->in);
    uint8_t *buf;

    if (!(e & FZC_F1))
        len %= 1501;
    buf = read_bytes(&h->in, len);
    /* A raw request that reuses a txid of ours may carry another key:
     * its response cannot be checked against the ones we know. */
    for (int i = 0; len >= STUN_HDR_LEN && i < NREQS; i++)
        if (h->reqs[i].client == ci &&
            memcmp(h->reqs[i].txid, buf + 8, STUN_TXID_LEN) == 0)
            h->reqs[i].used = 0;
    client_datagram(h, ci, buf, len);
}

static void
ev_chandata(struct harness *h, uint8_t e)
{
    int       ci = fz_u8(&h->in) % FZC_NCLIENTS;
    uint16_t  number = read_channel(&h->in);
    size_t    paylen = e & FZC_F1 ? fz_u16(&h->in) : fz_u8(&h->in);
    size_t    pad = fz_u8(&h->in) % 4;
    uint8_t  *buf = malloc(CHANDATA_HDR_LEN + paylen + pad);

    if (buf == NULL)
        abort();
    chandata_hdr(buf, number, (uint16_t)paylen);
    fz_copy(&h->in, buf + CHANDATA_HDR_LEN, paylen + pad);
    if (e & FZC_F2) {
        /* A GRO message of k copies, one of them perhaps on another
         * channel, the last perhaps shorter. */
        size_t   seg = CHANDATA_HDR_LEN + paylen + pad;
        size_t   k = 2 + fz_u8(&h->in) % 80, odd = fz_u8(&h->in);
        size_t   cut = fz_u8(&h->in) % seg, len = k * seg - cut;
        uint8_t *run = malloc(len);

        if (run == NULL)
            abort();
        for (size_t i = 0; i < k; i++)
            memcpy(run + i * seg, buf, i + 1 < k ? seg : seg - cut);
        if (odd < k && (odd + 1 < k || seg - cut >= CHANDATA_HDR_LEN))
            chandata_hdr(run + odd * seg, read_channel(&h->in),
                (uint16_t)paylen);
        free(buf);
        client_run(h, ci, run, seg, len);
        return;
    }
    client_datagram(h, ci, buf, CHANDATA_HDR_LEN + paylen + pad);
}

/* Where a peer datagram arrives: a bound relay port (as the OS delivers
 * them), or any reference seen, possibly stale, on any port. */
static int
peer_target(struct harness *h, uint8_t e, uint8_t sel, uint16_t rawport,
    struct atab_ref *ref, uint16_t *port)
{
    if (!(e & FZC_F1)) {
        size_t n = 0;

        for (size_t i = 0; i < MAX_RANGE; i++)
            n += h->ports[i].owner != 0;
        if (n == 0)
            return -1;
        n = sel % n;
        for (size_t i = 0; i < MAX_RANGE; i++) {
            if (h->ports[i].owner != 0 && n-- == 0) {
                *ref = h->ports[i].ref;
                *port = (uint16_t)(h->conf.port_min + i);
                return h->ports[i].owner - 1;
            }
        }
        abort();
    }
    if (h->nrefs == 0)
        return -1;
    *ref = h->refs[sel % h->nrefs];
    *port = e & FZC_F3 ? rawport : h->ref_port[sel % h->nrefs];
    if (sel & 0x80)
        ref->gen++;
    return (int)(sel / 2 % (unsigned)h->nworkers);
}

static void
ev_peer(struct harness *h, uint8_t e)
{
    uint8_t          sel = fz_u8(&h->in);
    uint16_t         rawport = (e & FZC_F1) && (e & FZC_F3) ?
        fz_u16(&h->in) : 0, port = 0;
    struct addr      peer = read_peer(&h->in);
    size_t           len = e & FZC_F2 ? 65503 + fz_u8(&h->in) % 33 :
        fz_u16(&h->in) % 1501;
    uint8_t         *buf = read_bytes(&h->in, len);
    struct atab_ref  ref = { 0, 0 };
    enum turn_drop   drop = TURN_DROP_NONE;
    struct worker   *w;
    struct mark      before;
    struct origin    o;
    int              wi, rc;

    if ((wi = peer_target(h, e, sel, rawport, &ref, &port)) < 0) {
        free(buf);
        return;
    }
    w = &h->w[wi];
    room(h, wi);
    w->bufs[w->nbufs++] = buf;
    o.buf = buf;
    o.len = len;
    o.from = &peer;
    before = mark_of(&w->q);
    rc = turn_core_on_peer(w->core, ref, port, &peer, buf, len, h->now, &w->q,
        &drop);
    check_rc(h, rc, drop);
    check_new(h, wi, before, &o, 1);
}

static void
ev_time(struct harness *h)
{
    uint8_t   sel = fz_u8(&h->in) % 5, v = fz_u8(&h->in);
    turn_ms_t d;

    switch (sel) {
    case 0: h->now += v; break;
    case 1: h->now += (turn_ms_t)v * 1000; break;
    case 2: h->now += (turn_ms_t)v * 60000; break;
    default:
        d = turn_core_next_deadline(h->w[v % h->nworkers].core);
        if (d == TURN_NEVER)
            h->now += 1000;
        else if (sel == 3 && d > h->now)
            h->now = d;
        else if (sel == 4 && d > h->now + 1)
            h->now = d - 1;
        break;
    }
}

static void
ev_timer(struct harness *h)
{
    int            wi = fz_u8(&h->in) % h->nworkers;
    struct worker *w = &h->w[wi];
    int            rc, rounds = 0;

    do {
        struct mark before;

        FZ_CHECK(++rounds < 1000);
        room(h, wi);
        before = mark_of(&w->q);
        rc = turn_core_on_timer(w->core, h->now, &w->q);
        FZ_CHECK(rc == 0 || rc == 1);
        check_new(h, wi, before, &none, 0);
        if (rc == 1)
            flush_worker(h, wi);
    } while (rc == 1);
    /* Whatever was due at now is done. */
    FZ_CHECK(turn_core_next_deadline(w->core) > h->now);
}

static void
ev_reload(struct harness *h, uint8_t e)
{
    static const uint32_t rates[] = { 0, 1, 100, 1000000 };
    uint8_t               sel = fz_u8(&h->in);
    uint32_t              rate = rates[fz_u8(&h->in) % 4];
    uint32_t              burst = 1 + fz_u8(&h->in) % 4;
    enum rly_log_level    level = e & FZC_F1 ? RLY_LOG_DEBUG : RLY_LOG_ERROR;

    make_policy(h, sel);
    h->conf.error_rate = rate;
    h->conf.error_burst = burst;
    h->conf.log.level = level;
    for (int wi = 0; wi < h->nworkers; wi++)
        turn_core_reload(h->w[wi].core, &h->pol, rate, burst, level);
}

/* The worker dies: its queue and sockets are gone.  Its successor adopts
 * the slot's allocations (worker.c), then serves. */
static void
ev_respawn(struct harness *h)
{
    int            wi = fz_u8(&h->in) % h->nworkers;
    struct worker *w = &h->w[wi];
    int            rc, rounds = 0;

    turn_core_free(w->core);
    turn_cmdq_reset(&w->q);
    drop_bufs(w);
    w->npend = 0;
    for (size_t i = 0; i < MAX_RANGE; i++)
        if (h->ports[i].owner == wi + 1)
            memset(&h->ports[i], 0, sizeof(h->ports[i]));
    new_core(h, wi);
    do {
        struct mark before = mark_of(&w->q);

        FZ_CHECK(++rounds < 1000);
        rc = turn_core_adopt(w->core, h->now, &w->q);
        FZ_CHECK(rc == 0 || rc == 1);
        check_new(h, wi, before, &none, 0);
        if (rc == 1) {
            model_rebuild(h, wi);
            flush_worker(h, wi);
        }
    } while (rc == 1);
    model_rebuild(h, wi);
    flush_worker(h, wi);
}

/* --- STUN requests built by the harness ------------------------------- */

struct req {
    uint8_t             buf[2048];
    struct stun_builder b;
    uint8_t             txid[STUN_TXID_LEN];
    char                user[700];
    size_t              ulen;
    int                 have_key;       /* key: of USERNAME */
    uint8_t             key[16];
};

static void
read_user(struct harness *h, struct req *r)
{
    unsigned long long ok = FZC_WALL + 86400, old = FZC_WALL - 1;
    uint8_t            sel = fz_u8(&h->in) % FZC_NUSERS;
    size_t             n;

    switch (sel) {
    case FZC_USER_A:
    case FZC_USER_B:
    case FZC_USER_C:
        n = (size_t)snprintf(r->user, sizeof(r->user), "%llu:salt%c", ok,
            'A' + sel);
        break;
    case FZC_USER_EXPIRED:
        n = (size_t)snprintf(r->user, sizeof(r->user), "%llu:saltA", old);
        break;
    case FZC_USER_LEADING_ZERO:
        n = (size_t)snprintf(r->user, sizeof(r->user), "0%llu:saltA", ok);
        break;
    case FZC_USER_UNPARSABLE:
        n = (size_t)snprintf(r->user, sizeof(r->user), "abc");
        break;
    case FZC_USER_EMPTY_SALT:
        n = (size_t)snprintf(r->user, sizeof(r->user), "%llu:", ok);
        break;
    default:
        n = (size_t)snprintf(r->user, sizeof(r->user), "%llu:", ok);
        {
            size_t salt = fz_u16(&h->in) % 601;

            fz_copy(&h->in, r->user + n, salt);
            n += salt;
        }
        break;
    }
    r->ulen = n;
}

/* The nonce the request carries, by auth mode. */
static void
nonce_text(struct harness *h, int ci, int auth, char *out, size_t size)
{
    uint8_t n[AUTH_NONCE_LEN];
    char    hy[AUTH_NONCE_STRLEN + 1];
    uint8_t form;

    if (auth == FZC_AUTH_FUZZ_NONCE) {
        fz_copy(&h->in, n, sizeof(n));
        auth_nonce_format(n, out);
        return;
    }
    snprintf(out, size, "%s", h->nonce[ci]);
    if (auth != FZC_AUTH_NONCE_FORM)
        return;
    form = fz_u8(&h->in) % 4;
    if (auth_nonce_parse((const uint8_t *)h->nonce[ci],
            strlen(h->nonce[ci]), n) != 0)
        return;
    auth_nonce_format(n, hy);
    switch (form) {
    case 0:
        for (char *p = hy; *p != '\0'; p++)
            if (*p >= 'a' && *p <= 'f')
                *p = (char)(*p - 'a' + 'A');
        snprintf(out, size, "%s", hy);
        break;
    case 1:
        snprintf(out, size, "{%s}", hy);
        break;
    case 2:
        snprintf(out, size, "URN:uuid:%s", hy);
        break;
    default: {
        size_t k = 0;

        for (char *p = hy; *p != '\0' && k + 1 < size; p++)
            if (*p != '-')
                out[k++] = *p;
        out[k] = '\0';
        break;
    }
    }
}

static void
remember_req(struct harness *h, int ci, const struct req *r, int fp)
{
    struct req_rec *rec = &h->reqs[h->next_req];

    h->next_req = (h->next_req + 1) % NREQS;
    rec->used = 1;
    rec->client = ci;
    rec->have_key = r->have_key;
    rec->fp = fp;
    memcpy(rec->txid, r->txid, STUN_TXID_LEN);
    memcpy(rec->key, r->key, sizeof(rec->key));
}

/* USERNAME, REALM, NONCE and MESSAGE-INTEGRITY by auth mode. */
static void
add_auth(struct harness *h, struct req *r, int ci, int auth)
{
    char     nonce[80];
    uint8_t  zero[16] = { 0 };
    uint64_t expiry;

    read_user(h, r);
    if (auth != FZC_AUTH_NO_NONCE)
        nonce_text(h, ci, auth, nonce, sizeof(nonce));
    r->have_key = auth_key(SECRET, (const uint8_t *)r->user, r->ulen,
        &expiry, r->key) == 0;
    stun_build_attr(&r->b, STUN_ATTR_USERNAME, r->user, r->ulen);
    stun_build_attr(&r->b, STUN_ATTR_REALM, AUTH_REALM, strlen(AUTH_REALM));
    if (auth != FZC_AUTH_NO_NONCE)
        stun_build_attr(&r->b, STUN_ATTR_NONCE, nonce, strlen(nonce));
    if (auth == FZC_AUTH_NO_MI)
        return;
    stun_build_integrity(&r->b, r->have_key && auth != FZC_AUTH_BAD_KEY ?
        r->key : zero);
}

static void
add_family(struct harness *h, struct req *r, uint16_t type)
{
    uint8_t sel = fz_u8(&h->in), v[4] = { 0 };

    v[0] = sel % 3 == 0 ? 0x01 : sel % 3 == 1 ? 0x02 : fz_u8(&h->in);
    stun_build_attr(&r->b, type, v, sizeof(v));
}

/* The attributes before the authentication ones, in fuzz_core.h order. */
static void
add_attrs(struct harness *h, struct req *r, uint16_t at)
{
    uint8_t v[4] = { 0 };

    if (at & FZC_A_TRANSPORT) {
        v[0] = at & FZC_A_ANY_PROTO ? fz_u8(&h->in) : 17;
        stun_build_attr(&r->b, STUN_ATTR_REQUESTED_TRANSPORT, v, 4);
    }
    if (at & FZC_A_LIFETIME)
        stun_build_u32(&r->b, STUN_ATTR_LIFETIME, fz_u32(&h->in));
    if (at & FZC_A_RAF)
        add_family(h, r, STUN_ATTR_REQUESTED_ADDRESS_FAMILY);
    if (at & FZC_A_AAF)
        add_family(h, r, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY);
    if (at & FZC_A_CHANNEL) {
        uint16_t n = read_channel(&h->in);

        v[0] = (uint8_t)(n >> 8);
        v[1] = (uint8_t)n;
        stun_build_attr(&r->b, STUN_ATTR_CHANNEL_NUMBER, v, 4);
    }
    if (at & FZC_A_PEER) {
        struct addr p = read_peer(&h->in);

        stun_build_xor_addr(&r->b, STUN_ATTR_XOR_PEER_ADDRESS, &p);
    }
    if (at & FZC_A_EXTRA) {
        uint16_t type = fz_u16(&h->in);
        size_t   len = fz_u8(&h->in);
        uint8_t  val[255];

        fz_copy(&h->in, val, len);
        stun_build_attr(&r->b, type, val, len);
    }
}

static void
next_txid(struct harness *h, struct req *r, int ci, uint16_t at)
{
    uint8_t b = fz_u8(&h->in);

    if ((at & FZC_A_SAME_TXID) && h->have_txid[ci]) {
        memcpy(r->txid, h->txid[ci], STUN_TXID_LEN);
        return;
    }
    h->txn++;
    memset(r->txid, 0, sizeof(r->txid));
    r->txid[0] = 0xF0;
    r->txid[1] = (uint8_t)ci;
    r->txid[2] = (uint8_t)(h->txn >> 16);
    r->txid[3] = (uint8_t)(h->txn >> 8);
    r->txid[4] = (uint8_t)h->txn;
    r->txid[11] = b;
    memcpy(h->txid[ci], r->txid, STUN_TXID_LEN);
    h->have_txid[ci] = 1;
}

static void
ev_request(struct harness *h)
{
    static const uint16_t methods[] = { STUN_BINDING, STUN_ALLOCATE,
        STUN_REFRESH, STUN_CHANNEL_BIND, STUN_CREATE_PERMISSION, STUN_SEND };
    static struct req     r;
    int                   ci = fz_u8(&h->in) % FZC_NCLIENTS;
    uint8_t               msel = fz_u8(&h->in) % 7;
    uint16_t              method = msel < 6 ? methods[msel] :
        fz_u16(&h->in) & 0x0FFF;
    uint16_t              at = fz_u16(&h->in);
    int                   auth = at >> FZC_A_AUTH_SHIFT & 7, n;
    uint8_t               bad[1] = { 0x40 };

    memset(&r, 0, sizeof(r));
    next_txid(h, &r, ci, at);
    stun_build_init(&r.b, r.buf, sizeof(r.buf),
        stun_type(method, STUN_REQUEST), r.txid, 0);
    add_attrs(h, &r, at);
    if (auth != FZC_AUTH_NONE)
        add_auth(h, &r, ci, auth);
    if (at & FZC_A_AFTER_MI)
        stun_build_attr(&r.b, STUN_ATTR_CHANNEL_NUMBER, bad, sizeof(bad));
    if (at & FZC_A_FINGERPRINT)
        stun_build_fingerprint(&r.b);
    n = stun_build_finish(&r.b);
    FZ_CHECK(n > 0);
    remember_req(h, ci, &r, (at & FZC_A_FINGERPRINT) != 0);
    client_datagram(h, ci, fz_dup(r.buf, (size_t)n), (size_t)n);
}

/* --- Driver ----------------------------------------------------------- */

static void
check_counts(struct harness *h)
{
    uint32_t active, live, bound;

    atab_count(h->tab, &active, &live, &bound);
    FZ_CHECK(active == atab_active(h->tab));
    FZ_CHECK(active <= h->capacity && live <= active);
    FZ_CHECK(bound <= MAX_CHANS);
    FZ_CHECK(atab_free_allocs(h->tab) <= MAX_ALLOCS);
    FZ_CHECK(atab_free_chans(h->tab) <= MAX_CHANS);
    for (int wi = 0; wi < h->nworkers; wi++)
        FZ_CHECK(turn_core_owned(h->w[wi].core) <= MAX_ALLOCS);
}

static const char *const event_names[FZC_EV_COUNT] = {
    "request", "raw", "chandata", "peer", "time", "timer", "flush",
    "open_fail", "reload", "ready", "respawn", "rand_fail"
};

static void
run_event(struct harness *h, uint8_t e)
{
    if (trace)
        fprintf(stderr, "event %u: %s%s (0x%02x) at %llu ms\n", h->events,
            event_names[(e & 0x0F) % FZC_EV_COUNT],
            e & FZC_BATCH ? ", batched" : "", e, (unsigned long long)h->now);
    switch ((e & 0x0F) % FZC_EV_COUNT) {
    case FZC_EV_REQUEST:    ev_request(h); break;
    case FZC_EV_RAW:        ev_raw(h, e); break;
    case FZC_EV_CHANDATA:   ev_chandata(h, e); break;
    case FZC_EV_PEER:       ev_peer(h, e); break;
    case FZC_EV_TIME:       ev_time(h); break;
    case FZC_EV_TIMER:      ev_timer(h); break;
    case FZC_EV_FLUSH:      flush_all(h); break;
    case FZC_EV_OPEN_FAIL:  h->open_fail = fz_u8(&h->in) % 10; break;
    case FZC_EV_RELOAD:     ev_reload(h, e); break;
    case FZC_EV_READY:      atab_set_ready(h->tab); break;
    case FZC_EV_RESPAWN:    ev_respawn(h); break;
    case FZC_EV_RAND_FAIL:  h->rand_fail = fz_u8(&h->in) % 4; break;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct harness *h = &H;
    static int      inited;

    if (!inited) {
        init_addrs();
        trace = getenv("FUZZ_TRACE") != NULL;
        inited = 1;
    }
    setup(h, data, size);
    while (h->in.n > 0 && h->events < MAX_EVENTS) {
        uint8_t e = fz_u8(&h->in);

        h->events++;
        run_event(h, e);
        if (!(e & FZC_BATCH))
            flush_all(h);
        check_counts(h);
        if (h->events % CHECK_EVERY == 0)
            FZ_CHECK(atab_check(h->tab) == 0);
    }
    flush_all(h);
    check_counts(h);
    FZ_CHECK(atab_check(h->tab) == 0);
    teardown(h);
    return 0;
}
