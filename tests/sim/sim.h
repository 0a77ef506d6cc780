/* sim.h - deterministic simulation of the relay core (issue 6).
 *
 * A simulated world around the real sans-IO core: a millisecond clock, a
 * network of datagrams between simulated hosts (loss, duplication, delay
 * and reordering drawn from the seed), the relay (one or two real cores
 * over one shared table, plus a small executor of their commands), and
 * TURN clients and gateways written for the simulation with their own
 * STUN codec and credentials code, so that a bug shared with src/common
 * cannot cancel out.  A reference model (sim_model.c) predicts what the
 * relay must answer and relay for every datagram it receives.
 *
 * A run is a list of transitions generated from a seed; a failing run is
 * shrunk by deleting chunks of the list and re-running from scratch (see
 * sim_main.c).  Nothing here reads a clock or a socket: a run depends on
 * its transition list alone. */
#ifndef SIM_H
#define SIM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "addr.h"
#include "atab.h"
#include "peer_policy.h"
#include "turn_cmd.h"
#include "turn_core.h"

/* --- Fixture ----------------------------------------------------------- */

#define SIM_SECRET      "sim-0f4c2a9e7b1d3c5a8e6f0b2d4a6c8e0f1a3b5c7d9e"
#define SIM_SOFTWARE    "firezone-relay; rev=sim"
#define SIM_WALL0       1700000000ULL   /* wall clock at now = 0 */
#define SIM_LISTEN_PORT 3478
#define SIM_PORT_MIN    49152
#define SIM_PORT_MAX    49215           /* 64 ports: the range can fill */
#define SIM_MAX_ALLOCS  32
#define SIM_MAX_CHANS   128
#define SIM_MAX_WORKERS 2
#define SIM_MAX_AGENTS  48              /* alive at once */
#define SIM_DGRAM_MAX   768
#define SIM_USER_MAX    64
#define SIM_AG_CHANS    16
#define SIM_AG_REQS     8
#define SIM_MSG_ATTRS   24
#define SIM_QDEPTH      12              /* RELAY_OPEN retries nest */

/* Protocol constants, written out here rather than taken from
 * src/common (the simulation has its own codec). */
#define SIM_COOKIE      0x2112A442u
#define SM_BINDING      0x001
#define SM_ALLOCATE     0x003
#define SM_REFRESH      0x004
#define SM_PERMISSION   0x008
#define SM_CHANBIND     0x009
#define SC_REQUEST      0
#define SC_INDICATION   1
#define SC_SUCCESS      2
#define SC_ERROR        3
#define SA_USERNAME     0x0006
#define SA_MI           0x0008
#define SA_ERROR_CODE   0x0009
#define SA_CHANNEL      0x000C
#define SA_LIFETIME     0x000D
#define SA_PEER         0x0012
#define SA_REALM        0x0014
#define SA_NONCE        0x0015
#define SA_RELAYED      0x0016
#define SA_RAF          0x0017
#define SA_TRANSPORT    0x0019
#define SA_MAPPED       0x0020
#define SA_AAF          0x8000
#define SA_SOFTWARE     0x8022
#define SA_FINGERPRINT  0x8028
#define SIM_REALM       "firezone"
#define SIM_CHAN_LIFE_MS    600000u
#define SIM_CHAN_COOL_MS    300000u
#define SIM_NONCE_USES      10000u

/* --- Random numbers ----------------------------------------------------- */

struct sim_rng {
    uint64_t s[4];
};

void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
uint32_t sim_rng_below(struct sim_rng *r, uint32_t n);     /* [0, n) */
uint32_t sim_rng_range(struct sim_rng *r, uint32_t lo, uint32_t hi);
int sim_rng_pm(struct sim_rng *r, uint32_t permille);      /* 1 w.p. pm/1000 */
uint64_t sim_mix(uint64_t a, uint64_t b);

/* --- Addresses (own helpers) ------------------------------------------- */

int sim_addr_eq(const struct addr *a, const struct addr *b);
void sim_addr4(struct addr *a, uint32_t ip, uint16_t port);
void sim_addr6(struct addr *a, const uint8_t ip[16], uint16_t port);
char *sim_addr_str(const struct addr *a, char *buf, size_t size);
#define SIM_ADDRSTR 64

/* --- Crypto (sim_crypto.c) --------------------------------------------- */

struct sim_crypto {
    EVP_MD     *sha1, *sha256, *md5;
    EVP_MD_CTX *tmp;
};

/* A long-term key with its HMAC-SHA1 pads precomputed. */
struct sim_key {
    uint8_t     key[16];
    EVP_MD_CTX *inner, *outer;
};

int sim_crypto_init(struct sim_crypto *c);
void sim_crypto_fini(struct sim_crypto *c);
/* SPEC §3.2-§3.5 from scratch: 0 with key set, -1 when the username does
 * not parse. */
int sim_cred_key(struct sim_crypto *c, const char *secret,
    const uint8_t *user, size_t ulen, uint8_t key[16]);
int sim_cred_password(struct sim_crypto *c, const char *secret,
    uint64_t expiry, const char *salt, size_t saltlen, char out[44]);
int sim_key_init(struct sim_crypto *c, struct sim_key *k,
    const uint8_t key[16]);
void sim_key_fini(struct sim_key *k);
void sim_hmac(struct sim_crypto *c, const struct sim_key *k,
    const uint8_t *msg, size_t len, uint8_t out[20]);
uint32_t sim_crc32(const uint8_t *p, size_t len);
size_t sim_b64(const uint8_t *in, size_t len, char *out);
/* Known-answer tests of the above (SPEC §3.3, §3.5, §2.10): 0 or -1. */
int sim_crypto_selftest(struct sim_crypto *c, char *why, size_t size);

/* --- STUN codec (sim_stun.c) ------------------------------------------- */

struct sim_attr {
    uint16_t    type, len, off;     /* off: of the attribute header */
};

struct sim_msg {
    const uint8_t  *buf;
    size_t          size;
    uint16_t        type, method;
    uint8_t         cls;
    uint8_t         txid[12];
    int             nattr;
    struct sim_attr at[SIM_MSG_ATTRS];
};

int sim_msg_parse(struct sim_msg *m, const uint8_t *buf, size_t len);
/* Index of the first attribute of this type, or -1. */
int sim_msg_find(const struct sim_msg *m, uint16_t type);
const uint8_t *sim_msg_get(const struct sim_msg *m, uint16_t type,
    uint16_t *len);
int sim_msg_mi_ok(struct sim_crypto *c, const struct sim_msg *m,
    const struct sim_key *k);
int sim_msg_fp_ok(const struct sim_msg *m);
int sim_xaddr_decode(const uint8_t *v, uint16_t len, const uint8_t txid[12],
    struct addr *a);
uint16_t sim_stun_type(uint16_t method, uint8_t cls);

struct sim_enc {
    uint8_t    *buf;
    size_t      cap, len;
    uint8_t     txid[12];
    int         err;
};

void sim_enc_init(struct sim_enc *e, uint8_t *buf, size_t cap,
    uint16_t type, const uint8_t txid[12]);
void sim_enc_attr(struct sim_enc *e, uint16_t type, const void *v,
    size_t len);
void sim_enc_u32(struct sim_enc *e, uint16_t type, uint32_t v);
void sim_enc_xaddr(struct sim_enc *e, uint16_t type, const struct addr *a);
void sim_enc_mi(struct sim_crypto *c, struct sim_enc *e,
    const struct sim_key *k);
void sim_enc_fp(struct sim_enc *e);
size_t sim_enc_done(struct sim_enc *e);     /* 0 on overflow */

/* --- Network (sim_net.c) ------------------------------------------------ */

struct sim_dgram {
    uint64_t    at, seq;
    struct addr src, dst;
    uint32_t    len;
    uint8_t     data[SIM_DGRAM_MAX];
};

struct sim_net {
    struct sim_dgram  **heap;
    uint32_t            n, cap;
    struct sim_dgram  **spare;
    uint32_t            nspare, spare_cap;
    uint64_t            seq;
    uint32_t            dmin, dmax;         /* one-way delay, ms */
    uint32_t            loss_pm, dup_pm;
    uint64_t            sent, lost, duped;
};

void sim_net_init(struct sim_net *n);
void sim_net_fini(struct sim_net *n);
struct sim_world;
/* Queues a datagram (subject to the network profile). */
void sim_net_send(struct sim_world *w, const struct addr *src,
    const struct addr *dst, const uint8_t *a, size_t alen,
    const uint8_t *b, size_t blen);
/* Earliest delivery time, or UINT64_MAX. */
uint64_t sim_net_next(const struct sim_net *n);
/* Removes and returns the earliest datagram (give it back with
 * sim_net_put). */
struct sim_dgram *sim_net_pop(struct sim_net *n);
void sim_net_put(struct sim_net *n, struct sim_dgram *d);

/* --- Reference model (sim_model.c) ------------------------------------- */

enum m_state {
    M_FREE = 0,
    M_LIVE,         /* alive while expiry > now */
    M_KICKED        /* deleted by another worker; owner closes within 1 s */
};

struct m_alloc {
    uint8_t         state;
    uint8_t         fams;           /* 1 = v4, 2 = v6 */
    uint8_t         worker;
    uint16_t        port;
    uint16_t        ulen;
    struct addr     client;
    char            user[SIM_USER_MAX];
    uint8_t         txid[12];
    uint32_t        lifetime;
    uint64_t        expiry, kicked_at;
    struct atab_ref ref;
};

struct m_chan {
    uint8_t     used;
    uint16_t    number;
    uint32_t    alloc;              /* m_alloc index */
    struct addr peer;
    uint64_t    until;              /* bound until; deleted at +300 s */
};

struct m_nonce {
    struct addr client;
    uint8_t     text[36];
    uint32_t    uses;
    uint64_t    lru;                /* last created, handed out or checked */
};

struct m_bucket {                   /* SPEC §2.12, per worker and IP */
    struct addr ip;                 /* port 0 */
    uint8_t     worker;
    uint64_t    milli, last, lru;
};

#define M_ALLOCS    (SIM_MAX_ALLOCS * 2)
#define M_CHANS     (SIM_MAX_CHANS * 2)

struct sim_model {
    struct m_alloc  a[M_ALLOCS];
    struct m_chan   c[M_CHANS];
    struct m_nonce *nonces;
    uint32_t        nnonces, nonce_cap;
    struct m_bucket *buckets;
    uint32_t        nbuckets, bucket_cap;
    uint64_t        lru_clock;
};

/* Response codes as a bit set. */
enum {
    XB_OK = 0, XB_400, XB_401, XB_403, XB_437, XB_438, XB_440, XB_443,
    XB_508, XB_500, XB_N
};

enum ex_kind {
    EX_NONE = 0,    /* not predicted (bug in the harness) */
    EX_DROP,        /* RLY_ERR_DROP with ex.drop, nothing sent */
    EX_RESP,        /* exactly one STUN response to the client */
    EX_TO_PEER,     /* exactly one SEND_PEER */
    EX_TO_CLIENT,   /* exactly one ChannelData to the allocation's client */
    EX_ADOPT        /* a respawned worker takes its allocations over */
};

struct sim_expect {
    enum ex_kind        kind;
    enum turn_drop      drop;
    int                 worker;
    /* STUN */
    struct sim_msg      req;
    uint32_t            codes;          /* allowed, bits XB_* */
    int                 signed_;        /* MESSAGE-INTEGRITY required */
    const struct sim_key *key;
    char                user[SIM_USER_MAX];
    uint16_t            ulen;
    int                 fp;
    int                 nonce_use;      /* consumed one nonce use */
    int                 nonce_drop;     /* exhausted: entry removed */
    uint8_t             old_nonce[36];
    int                 own_del;        /* own expired allocation deleted */
    int                 del;            /* m_alloc deleted here (-1) */
    int                 del_same;       /* ... by this worker (closed now) */
    int                 replay;         /* m_alloc replayed (-1) */
    uint32_t            lifetime;
    uint8_t             fams;
    int                 maybe_bindfail; /* program-held ports exist */
    int                 chan;           /* m_chan refreshed (-1) */
    uint32_t            why508;         /* WHY_* reasons a 508 may have */
    int                 lazy508;        /* only an unreaped record fills */
    int                 closed_del;     /* del was closed in this call */
    uint16_t            number;
    struct addr         peer;
    /* data */
    int                 alloc;          /* m_alloc the data belongs to */
    uint16_t            port;
    struct addr         to;
    const uint8_t      *payload;
    size_t              paylen;
};

/* What the executor saw during one core call. */
#define OBS_MAX 16
struct sim_obs {
    int         nsend;
    struct {
        int         peer;               /* SEND_PEER (else SEND_CLIENT) */
        uint16_t    port, number;
        struct addr src, dst;
        uint32_t    len;
        uint8_t     data[SIM_DGRAM_MAX];
    } send[4];
    int         nopen;
    struct {
        uint16_t        port;
        uint8_t         fams, ok;
        struct atab_ref ref;
    } open[SIM_MAX_ALLOCS * 2];
    int         nbound, nunbound, nclose;
    struct {
        struct addr client, peer;
        uint16_t    number, port;
    } bound[OBS_MAX];
};

void sim_model_init(struct sim_model *m);
void sim_model_fini(struct sim_model *m);

/* Before a core call for a datagram to a listen socket / a relay socket:
 * fills ex with what must happen. */
void sim_model_predict_client(struct sim_world *w, int wk,
    const struct sim_dgram *d, struct sim_expect *ex);
void sim_model_predict_peer(struct sim_world *w, int wk, uint16_t port,
    const struct sim_dgram *d, struct sim_expect *ex);
/* After the call and its commands: compares and updates the model. */
void sim_model_settle(struct sim_world *w, struct sim_expect *ex, int rc,
    enum turn_drop drop, const struct sim_obs *o, const struct addr *src);
/* Executor hooks, called as commands are carried out. */
void sim_model_on_close(struct sim_world *w, int wk, uint16_t port,
    struct atab_ref ref, struct sim_expect *ex);
void sim_model_on_open(struct sim_world *w, int wk, uint16_t port,
    int attempt, uint16_t prev, const struct sim_expect *ex);
void sim_model_on_unbound(struct sim_world *w, const struct turn_cmd *c);
/* A worker died: its nonces are gone, its deleted allocations released. */
void sim_model_respawn(struct sim_world *w, int worker);
/* Full comparison of relay state and model (after each transition). */
void sim_model_check(struct sim_world *w, int final);
/* Index of the allocation of client socket a that is alive at now, or
 * -1; of the allocation holding a port (any state), or -1. */
int sim_model_alive(const struct sim_world *w, const struct addr *a);
int sim_model_by_port(const struct sim_world *w, uint16_t port);
int sim_model_chan(const struct sim_world *w, int alloc, uint16_t number);
int sim_model_chan_peer(const struct sim_world *w, int alloc,
    const struct addr *peer);
/* Past its cool-down at now (SPEC §5.2). */
int sim_chan_gone(const struct sim_world *w, const struct m_chan *c);
/* An address as text, in one of a few thread-local buffers. */
char *sim_fmt_addr(const struct addr *a);

/* --- Relay executor (sim_relay.c) -------------------------------------- */

enum { PORT_FREE = 0, PORT_RELAY, PORT_PROGRAM };

struct sim_port {
    uint8_t         owner;      /* PORT_* */
    uint8_t         fams;
    uint8_t         worker;
    struct atab_ref ref;
};

struct sim_track {                  /* CHAN_BOUND not yet unbound */
    uint8_t     used, worker;
    uint16_t    number, port;
    struct addr client, peer;
};

struct sim_worker {
    struct turn_conf    conf;
    struct turn_core   *core;
    struct turn_cmdq    q[SIM_QDEPTH];
    uint64_t            phase;      /* timer ticks at phase + k * 1000 */
    uint64_t            kicks_seen;
    uint64_t            kick_due;   /* tick that reaps a kick, 0 none */
    uint64_t            last_tick;
};

struct sim_relay {
    void               *region;
    size_t              size;
    struct atab        *tab;
    struct peer_policy  pol;
    int                 nworkers;
    int                 has4, has6;
    struct addr         pub4, pub6, listen4, listen6;
    uint16_t            port_min, port_max;
    uint32_t            max_allocs, max_chans, capacity;
    struct sim_worker   wk[SIM_MAX_WORKERS];
    struct sim_port     ports[SIM_PORT_MAX - SIM_PORT_MIN + 1];
    struct sim_track    track[SIM_MAX_CHANS * 2];
    int                 aborted;    /* region leaked after a core abort */
    int                 policy;     /* variant, see sim_policy() */
    struct {
        int             worker, depth;
        struct atab_ref ref;
        uint8_t         ok;
    }                   late[SIM_QDEPTH * 4];
    int                 nlate;
};

int sim_relay_init(struct sim_world *w);
/* The worker process dies (its sockets close; another program may grab
 * some of its ports) and a new one adopts its allocations (SPEC §8). */
void sim_relay_respawn(struct sim_world *w, int worker, uint32_t grab);
/* Publishes peer policy variant v to every worker (SPEC §10.5). */
void sim_relay_reload(struct sim_world *w, int v);
void sim_policy(int v, const struct sim_relay *r, struct peer_policy *p);
void sim_relay_fini(struct sim_world *w);
/* 1 when a datagram to dst is for the relay. */
int sim_relay_owns(const struct sim_world *w, const struct addr *dst);
void sim_relay_input(struct sim_world *w, const struct sim_dgram *d);
/* Runs due timers (all workers); force: every worker now. */
void sim_relay_timers(struct sim_world *w, int force);
uint64_t sim_relay_next(const struct sim_world *w);
/* The earliest turn_core_next_deadline() of the workers. */
uint64_t sim_relay_deadline(const struct sim_world *w);
int sim_worker_of(const struct sim_world *w, const struct addr *client);
const struct addr *sim_relay_public(const struct sim_world *w, int fam);

/* --- Agents (sim_agent.c) ----------------------------------------------- */

enum ag_state {
    AG_IDLE = 0,
    AG_ALLOCATING,
    AG_ALLOCATED,
    AG_BADCREDS
};

enum ag_cred {
    CRED_OK = 0,
    CRED_WRONG_PASSWORD,
    CRED_UNPARSABLE
};

/* Allocate variants (families). */
enum ag_fam {
    AF_AAF6 = 0,        /* Firezone: REQUESTED-TRANSPORT 17 + AAF IPv6 */
    AF_NONE,
    AF_RAF4,
    AF_RAF6,
    AF_RAF_AAF,         /* 400 */
    AF_AAF4,            /* 400 */
    AF_N
};

#define LIFE_ABSENT UINT32_MAX

struct ag_chan {
    uint8_t     used, keep;
    uint16_t    number;
    struct addr peer;
    uint64_t    bound_at, refresh_at;
};

enum ag_req_flags {
    RQ_FP = 1,          /* add FINGERPRINT */
    RQ_ANON = 2,        /* no USERNAME, no MESSAGE-INTEGRITY */
    RQ_NO_TRANSPORT = 4,
    RQ_TCP = 8,         /* REQUESTED-TRANSPORT 6 */
    RQ_BAD_NUMBER = 16, /* CHANNEL-NUMBER outside 0x4000-0x7FFF */
    RQ_NO_PEER = 32,    /* ChannelBind without XOR-PEER-ADDRESS */
    RQ_AFTER = 64,      /* Refresh 0 then Allocate (recovery) */
    RQ_ONEOFF = 128     /* a probe of the relay: changes no agent state */
};

struct ag_req {
    uint8_t     used;
    uint16_t    method;
    uint32_t    flags;
    uint8_t     txid[12];
    uint32_t    lifetime;
    uint8_t     fam;            /* enum ag_fam */
    uint16_t    number;
    struct addr peer;
    uint8_t     keep;
    uint8_t     had_nonce;      /* this attempt carried NONCE */
    uint8_t     chal;           /* 401/438 retries so far */
    int         tries;
    uint64_t    rto_at;
    uint32_t    len;
    uint8_t     buf[512];
};

struct sim_agent {
    int             id;
    int             gateway;
    int             stack;          /* 1 v4, 2 v6, 3 dual */
    int             sfam;           /* 4 or 6: the session socket */
    struct addr     host4, host6;
    int             has4, has6;
    enum ag_cred    cred;
    char            user[SIM_USER_MAX];
    struct sim_key  key;            /* what the agent believes */
    int             have_key;
    uint64_t        salt;
    char            nonce[40];
    int             have_nonce;
    enum ag_state   state;
    int             keep_alloc;     /* refreshes its allocation */
    uint8_t         fam;            /* last Allocate variant */
    uint32_t        want_life;
    struct addr     relayed[2];
    int             nrelayed;
    uint32_t        lifetime;
    uint64_t        alloc_at, refresh_at;
    struct ag_chan  ch[SIM_AG_CHANS];
    struct ag_chan  old[8];         /* channels it stopped using */
    uint32_t        nold;
    struct ag_chan  rebind[SIM_AG_CHANS];   /* after the next Allocate */
    struct ag_req   rq[SIM_AG_REQS];
    uint64_t        wake;
    int             recover;        /* automatic re-allocations */
    int             stopped;
};

struct sim_agent *sim_agent_new(struct sim_world *w, int id, int gateway,
    int stack, int sfam, uint32_t ttl, enum ag_cred cred, int keep);
void sim_agent_free(struct sim_world *w, struct sim_agent *ag);
const struct addr *sim_agent_sock(const struct sim_agent *ag);
void sim_agent_creds(struct sim_world *w, struct sim_agent *ag,
    uint32_t ttl, enum ag_cred cred);
/* ag takes over the USERNAME (and key) of from. */
void sim_agent_twin(struct sim_world *w, struct sim_agent *ag,
    const struct sim_agent *from);
void sim_agent_allocate(struct sim_world *w, struct sim_agent *ag,
    uint8_t fam, uint32_t lifetime, uint32_t flags);
void sim_agent_refresh(struct sim_world *w, struct sim_agent *ag,
    uint32_t lifetime, uint32_t flags);
void sim_agent_bind(struct sim_world *w, struct sim_agent *ag,
    uint16_t number, const struct addr *peer, int keep, uint32_t flags);
void sim_agent_simple(struct sim_world *w, struct sim_agent *ag,
    uint16_t method, uint32_t flags);
void sim_agent_rebind_nat(struct sim_world *w, struct sim_agent *ag);
/* Back to the session socket it had before (a path that flaps). */
void sim_agent_flap_back(struct sim_world *w, struct sim_agent *ag,
    const struct addr *old);
void sim_agent_probe(struct sim_world *w, struct sim_agent *ag,
    uint16_t number, uint32_t size, int expect);
void sim_agent_stray(struct sim_world *w, struct sim_agent *ag,
    const struct addr *to, uint32_t size);
/* n fire-and-forget requests at once: kind 0 Allocate without
 * credentials (401), 1 ChannelBind with a bad number (400), 2 Binding. */
void sim_agent_flood(struct sim_world *w, struct sim_agent *ag, uint32_t n,
    uint32_t kind);
void sim_agent_recv(struct sim_world *w, struct sim_agent *ag,
    const struct sim_dgram *d);
void sim_agent_wake(struct sim_world *w, struct sim_agent *ag);
int sim_agent_chan_ok(const struct sim_world *w, const struct sim_agent *ag,
    const struct ag_chan *c);

/* --- Probes --------------------------------------------------------------- */

#define PROBE_MAGIC 0x53494D50u     /* "SIMP" */
#define PROBE_HDR   16

struct sim_probe {
    int         from, to;           /* agent ids; to -1 unknown, -2 nobody */
    struct addr from_sock;
    struct addr target;             /* where the sender sent it */
    struct addr reply_to;           /* where the reply was sent */
    uint16_t    via;                /* channel number used, 0 raw */
    uint8_t     expect_rt, replied;
    uint32_t    arrivals, replies;
};

/* --- Transitions (sim_gen.c) -------------------------------------------- */

enum tr_kind {
    TR_ADD = 0, TR_REMOVE, TR_ALLOC, TR_REFRESH, TR_BIND, TR_CONNECT,
    TR_PROBE, TR_STRAY, TR_ADVANCE, TR_NAT, TR_CREDS, TR_HOLD, TR_SIMPLE,
    TR_BAD, TR_RESPAWN, TR_RELOAD, TR_FLOOD, TR_TWIN, TR_FLAP, TR_N
};

struct sim_tr {
    uint32_t    kind;
    uint32_t    a, b, c, d;
    uint64_t    rs;                 /* the transition's own randomness */
};

const char *sim_tr_name(uint32_t kind);
/* Chooses the next transition from the world's state. */
void sim_gen_next(struct sim_world *w, struct sim_rng *g, struct sim_tr *t);
void sim_tr_exec(struct sim_world *w, const struct sim_tr *t);
void sim_tr_describe(const struct sim_tr *t, char *buf, size_t size);

/* --- World (sim_world.c) ------------------------------------------------ */

struct sim_cfg {
    uint64_t    seed;
    int         nworkers;
    int         has4, has6;         /* relay public families */
    int         lazy;               /* timers only at 1 s ticks */
    int         open_late;          /* open results after the batch */
    uint32_t    table_size;         /* limits.nonce_table_size */
    uint32_t    err_rate, err_burst;    /* limits.error_rate, _burst */
    int         small_q;            /* queues with room for one event */
    uint32_t    dmin, dmax, loss_pm, dup_pm;
    uint16_t    port_max;
    uint32_t    max_agents;
};

/* Coverage counters: what a run actually exercised. */
enum {
    ST_RESP = 0,                    /* + XB_* : responses by code */
    ST_DROP = XB_N,                 /* + turn_drop */
    ST_TO_PEER = ST_DROP + TURN_DROP_COUNT,
    ST_TO_CLIENT, ST_ALLOC, ST_REPLACE_SAME, ST_REPLACE_KICK, ST_BINDFAIL,
    ST_508_BIND, ST_CHAN_NEW, ST_CHAN_REFRESH, ST_PROBE, ST_RT_EXPECT,
    ST_RT_OK, ST_RT_46, ST_ARRIVALS, ST_MAX_ALLOCS, ST_MAX_CHANS,
    ST_CLOSE_TIMER, ST_UNBOUND, ST_REPLAY, ST_BYTES_PEER, ST_BYTES_CLIENT,
    ST_RESPAWN, ST_ADOPTED, ST_LOST, ST_RELOAD, ST_DELIV_CHECKED,
    ST_DELIV_UNKNOWN, ST_LAZY508, ST_N
};

struct sim_kent {
    char            user[SIM_USER_MAX];
    uint16_t        ulen;
    int             ok;
    struct sim_key  k;
};

#define SIM_KCACHE 1024

struct sim_world {
    struct sim_cfg      cfg;
    uint64_t            now;
    struct sim_rng      rng_net, rng_ag, rng_core;
    struct sim_crypto   cr;
    struct sim_net      net;
    struct sim_relay    relay;
    struct sim_model    model;
    struct sim_agent  **agents;         /* by id */
    uint32_t            nagent_ids, agent_cap, nalive;
    struct sim_agent   *live[SIM_MAX_AGENTS];
    struct sim_probe   *probes;
    uint32_t            nprobes, probe_cap;
    struct sim_kent    *kc;
    uint32_t            nkc;
    uint64_t            txn;
    uint64_t            sock_counter;
    uint32_t            grace;          /* 0 precise timers, 1000 lazy */
    int                 verbose;
    int                 failed;
    char                tag[48];
    char                msg[1024];
    struct sim_expect  *cur;            /* during a core call */
    struct sim_obs      obs;
    int                 cur_worker;
    uint64_t            n_requests, n_data, n_tr;
    uint64_t            st[ST_N];
    uint64_t            st_mt[6][XB_N];     /* responses by method, code */
    int                 tab_dirty;      /* a core call may have changed it */
};

/* --black-box: compare only what leaves the core (datagrams, commands,
 * counters) and atab_check(), not the table's contents with the model.
 * Set before any thread starts. */
extern int sim_blackbox;

struct sim_world *sim_world_new(const struct sim_cfg *cfg, int verbose);
void sim_world_free(struct sim_world *w);
void sim_cfg_from_seed(uint64_t seed, struct sim_cfg *cfg);
/* Records the first failure (tag: a short stable name for shrinking). */
void sim_fail(struct sim_world *w, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sim_log(struct sim_world *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define SIM_CHECK(w, cond, tag, ...) \
    do { if (!(cond)) sim_fail((w), (tag), __VA_ARGS__); } while (0)

/* Runs the world until `until` (ms); idle: stop as soon as no datagram is
 * in flight. */
void sim_run(struct sim_world *w, uint64_t until, int idle);
uint64_t sim_wall(const struct sim_world *w);
struct sim_agent *sim_agent_get(const struct sim_world *w, uint32_t id);
/* The agent with a socket at a, or NULL. */
struct sim_agent *sim_agent_at(const struct sim_world *w,
    const struct addr *a);
void sim_deliver(struct sim_world *w, struct sim_dgram *d);
/* The long-term key for a USERNAME (cached); NULL when unparsable. */
const struct sim_key *sim_key_for(struct sim_world *w, const uint8_t *user,
    size_t ulen);
struct sim_probe *sim_probe_new(struct sim_world *w, uint32_t *id);
struct sim_probe *sim_probe_get(struct sim_world *w, uint32_t id);
/* Stops every agent, lets everything expire, checks the table is empty. */
void sim_final(struct sim_world *w);
void sim_tx_id(struct sim_world *w, uint8_t txid[12]);

#endif
