/* turn_core.c - the TURN/STUN core's entry points: client demultiplexing
 * (SPEC §2.2), STUN pre-checks and dispatch (§2.3, §2.5), authentication
 * (§3.6, §3.7), response construction and signing (§2.7-§2.9), the
 * rate limit on unauthenticated errors (§2.12), and the timer run (§6).
 * Allocations are in turn_alloc.c, channels and ChannelData in
 * turn_chan.c.  No I/O: every effect is a command in the caller's queue. */
#include <stdlib.h>
#include <string.h>

#include "chandata.h"
#include "rly_err.h"
#include "stun_integrity.h"
#include "turn_core_int.h"

static const char *const reasons[] = {
    [400 - 400] = "Bad Request",
    [401 - 400] = "Unauthorized",
    [403 - 400] = "Forbidden",
    [437 - 400] = "Allocation Mismatch",
    [438 - 400] = "Stale Nonce",
    [440 - 400] = "Address Family not Supported",
    [443 - 400] = "Peer Address Family Mismatch",
};

static const char *
reason_phrase(unsigned code)
{
    if (code == 500)
        return "Server Error";
    if (code == 508)
        return "Insufficient Capacity";
    if (code >= 400 && code - 400 < sizeof(reasons) / sizeof(reasons[0]) &&
        reasons[code - 400] != NULL)
        return reasons[code - 400];
    return "Error";
}

static enum turn_msgtype
msgtype_of(uint16_t method)
{
    switch (method) {
    case STUN_BINDING:           return TURN_MT_BINDING;
    case STUN_ALLOCATE:          return TURN_MT_ALLOCATE;
    case STUN_REFRESH:           return TURN_MT_REFRESH;
    case STUN_CHANNEL_BIND:      return TURN_MT_CHANNELBIND;
    case STUN_CREATE_PERMISSION: return TURN_MT_CREATEPERMISSION;
    default:                     return TURN_MT_OTHER;
    }
}

/* --- Life cycle ------------------------------------------------------ */

struct turn_core *
turn_core_new(const struct turn_conf *conf, struct atab *tab)
{
    struct turn_core *core;
    uint8_t           keys[32];
    uint32_t          range;

    if (conf->secret == NULL || strlen(conf->secret) > TURN_SECRET_MAX ||
        conf->port_min > conf->port_max || conf->rand == NULL ||
        conf->stats == NULL || conf->worker >= atab_nworkers(tab) ||
        (conf->public4.family != ADDR_V4 && conf->public6.family != ADDR_V6))
        return NULL;
    if (conf->rand(conf->rand_ud, keys, sizeof(keys)) != 0)
        return NULL;
    if ((core = calloc(1, sizeof(*core))) == NULL)
        return NULL;
    core->tab = tab;
    core->ci = chan_idx_new(atab_max_chans(tab), keys);
    core->nonces = auth_nonces_new(conf->nonce_table_size ?
        conf->nonce_table_size : 1, keys + 16);
    core->rl = auth_ratelim_new(conf->nonce_table_size ?
        conf->nonce_table_size : 1, keys + 16);
    core->pend = calloc(atab_max_allocs(tab), sizeof(*core->pend));
    if (core->ci == NULL || core->nonces == NULL || core->rl == NULL ||
        core->pend == NULL ||
        turn_timer_init(&core->alloc_timer, atab_max_allocs(tab)) != 0 ||
        turn_timer_init(&core->chan_timer, atab_max_chans(tab)) != 0) {
        turn_core_free(core);
        return NULL;
    }
    core->stats = conf->stats;
    if (conf->policy != NULL)
        core->policy = *conf->policy;
    else
        peer_policy_init(&core->policy);
    core->log = conf->log;
    core->rand = conf->rand;
    core->rand_ud = conf->rand_ud;
    core->public4 = conf->public4;
    core->public6 = conf->public6;
    core->listen_port = conf->listen_port;
    core->port_min = conf->port_min;
    core->port_max = conf->port_max;
    core->worker = conf->worker;
    range = (uint32_t)conf->port_max - conf->port_min + 1;
    core->capacity = conf->max_allocs < range ? conf->max_allocs : range;
    if (core->capacity > atab_max_allocs(tab))
        core->capacity = atab_max_allocs(tab);
    core->error_rate = conf->error_rate;
    core->error_burst = conf->error_burst;
    core->gated = conf->gated;
    core->kicks_seen = atab_worker_kicks(tab, conf->worker);
    memcpy(core->secret, conf->secret, strlen(conf->secret) + 1);
    if (conf->software != NULL) {
        core->software_len = strlen(conf->software);
        if (core->software_len > TURN_SOFTWARE_MAX)
            core->software_len = TURN_SOFTWARE_MAX;
        memcpy(core->software, conf->software, core->software_len);
    }
    return core;
}

void
turn_core_free(struct turn_core *core)
{
    if (core == NULL)
        return;
    chan_idx_free(core->ci);
    auth_nonces_free(core->nonces);
    auth_ratelim_free(core->rl);
    free(core->pend);
    turn_timer_fini(&core->alloc_timer);
    turn_timer_fini(&core->chan_timer);
    free(core);
}

void
turn_core_reload(struct turn_core *core, const struct peer_policy *policy,
    uint32_t error_rate, uint32_t error_burst, enum rly_log_level level)
{
    core->policy = *policy;
    core->error_rate = error_rate;
    core->error_burst = error_burst;
    core->log.level = level;
}

uint32_t
turn_core_owned(const struct turn_core *core)
{
    return core->owned;
}

/* --- Drops and responses --------------------------------------------- */

int
turn_core_drop(struct turn_core *core, enum turn_drop reason,
    enum turn_drop *drop)
{
    TURN_STAT_INC(core->stats->dropped[reason]);
    if (drop != NULL)
        *drop = reason;
    return RLY_ERR_DROP;
}

void
turn_core_count(struct turn_core *core, enum turn_msgtype mt, unsigned code)
{
    int slot = code == 0 ? TURN_RESP_SUCCESS : turn_resp_slot(code);

    if (slot >= 0)
        TURN_STAT_INC(core->stats->responses[mt][slot]);
}

/* Starts a response in the queue's arena: header and SOFTWARE. */
static uint8_t *
resp_begin(struct turn_core *core, struct turn_cmdq *out,
    struct stun_builder *b, uint16_t method, enum stun_class cls,
    const uint8_t *txid)
{
    uint8_t *p = turn_cmdq_arena(out, TURN_ARENA_PER_EVENT);

    if (p == NULL)
        return NULL;
    stun_build_init(b, p, TURN_ARENA_PER_EVENT, stun_type(method, cls), txid,
        0);
    stun_build_attr(b, STUN_ATTR_SOFTWARE, core->software, core->software_len);
    return p;
}

/* Finishes a response (MESSAGE-INTEGRITY when key, FINGERPRINT when fp) and
 * queues it to the client. */
static int
resp_send(struct turn_cmdq *out, const struct addr_path *path,
    struct stun_builder *b, uint8_t *p, const uint8_t *key, int fp)
{
    struct turn_cmd *cmd;
    int              n;

    if (key != NULL)
        stun_build_integrity(b, key);
    if (fp)
        stun_build_fingerprint(b);
    n = stun_build_finish(b);
    if (n < 0 || (cmd = turn_cmdq_push(out, TURN_CMD_SEND_CLIENT)) == NULL) {
        turn_cmdq_arena_trim(out, p, TURN_ARENA_PER_EVENT, 0);
        return RLY_ERR_NOSPACE;
    }
    turn_cmdq_arena_trim(out, p, TURN_ARENA_PER_EVENT, (size_t)n);
    cmd->path = *path;
    cmd->hdr = p;
    cmd->hdrlen = (size_t)n;
    return 0;
}

/* Derives req->key from the request's USERNAME (for a signed error).
 * Returns 0, or RLY_ERR_INVAL when the username is unparsable. */
static int
derive_key(struct turn_core *core, struct turn_req *req)
{
    const uint8_t *user;
    size_t         ulen;
    uint64_t       expiry;

    if (req->have_key)
        return 0;
    if ((user = stun_msg_attr(&req->m, STUN_K_USERNAME, &ulen)) == NULL)
        return RLY_ERR_INVAL;
    if (auth_key(core->secret, user, ulen, &expiry, req->key) != 0)
        return RLY_ERR_INVAL;
    req->have_key = 1;
    return 0;
}

int
turn_core_unauth_400(struct turn_core *core, struct turn_req *req)
{
    struct stun_builder b;
    uint8_t            *p;
    int                 rc;

    if (!auth_ratelim_take(core->rl, &req->path->remote, req->now,
            core->error_rate, core->error_burst))
        return turn_core_drop(core, TURN_DROP_RATE_LIMITED, req->drop);
    if ((p = resp_begin(core, req->out, &b, req->m.method, STUN_ERROR,
            req->m.txid)) == NULL)
        return RLY_ERR_NOSPACE;
    stun_build_error(&b, 400, reason_phrase(400));
    if ((rc = resp_send(req->out, req->path, &b, p, NULL,
            req->fingerprint)) == 0)
        turn_core_count(core, req->mt, 400);
    return rc;
}

/* 401 or 438 (SPEC §2.7): REALM and the socket's current nonce.  A 401 is
 * signed iff the request has USERNAME and rate-limited; a 438 is always
 * signed.  An unsignable one is dropped (bad_username, SPEC §2.8). */
static int
send_challenge(struct turn_core *core, struct turn_req *req, unsigned code)
{
    struct stun_builder b;
    uint8_t             nonce[AUTH_NONCE_LEN];
    char                text[AUTH_NONCE_STRLEN + 1];
    const uint8_t      *key = NULL;
    uint8_t            *p;
    size_t              ulen;
    int                 rc;

    if (code == 438 || stun_msg_attr(&req->m, STUN_K_USERNAME, &ulen)) {
        if (derive_key(core, req) != 0)
            return turn_core_drop(core, TURN_DROP_BAD_USERNAME, req->drop);
        key = req->key;
    }
    if (code == 401 && !auth_ratelim_take(core->rl, &req->path->remote,
            req->now, core->error_rate, core->error_burst))
        return turn_core_drop(core, TURN_DROP_RATE_LIMITED, req->drop);
    if ((rc = auth_nonce_current(core->nonces, &req->path->remote, core->rand,
            core->rand_ud, nonce)) != 0)
        return rc;
    auth_nonce_format(nonce, text);
    if ((p = resp_begin(core, req->out, &b, req->m.method, STUN_ERROR,
            req->m.txid)) == NULL)
        return RLY_ERR_NOSPACE;
    stun_build_error(&b, code, reason_phrase(code));
    stun_build_attr(&b, STUN_ATTR_REALM, AUTH_REALM, strlen(AUTH_REALM));
    stun_build_attr(&b, STUN_ATTR_NONCE, text, AUTH_NONCE_STRLEN);
    if ((rc = resp_send(req->out, req->path, &b, p, key,
            req->fingerprint)) == 0)
        turn_core_count(core, req->mt, code);
    return rc;
}

int
turn_core_error(struct turn_core *core, struct turn_req *req, unsigned code)
{
    struct stun_builder b;
    uint8_t            *p;
    int                 rc;

    if (code == 401 || code == 438)
        return send_challenge(core, req, code);
    /* Every other error here follows authentication: signed (SPEC §2.8). */
    if (derive_key(core, req) != 0)
        return turn_core_drop(core, TURN_DROP_BAD_USERNAME, req->drop);
    if ((p = resp_begin(core, req->out, &b, req->m.method, STUN_ERROR,
            req->m.txid)) == NULL)
        return RLY_ERR_NOSPACE;
    stun_build_error(&b, code, reason_phrase(code));
    if ((rc = resp_send(req->out, req->path, &b, p, req->key,
            req->fingerprint)) == 0)
        turn_core_count(core, req->mt, code);
    return rc;
}

int
turn_core_success(struct turn_core *core, struct turn_req *req,
    long lifetime)
{
    struct stun_builder b;
    uint8_t            *p;
    int                 rc;

    if ((p = resp_begin(core, req->out, &b, req->m.method, STUN_SUCCESS,
            req->m.txid)) == NULL)
        return RLY_ERR_NOSPACE;
    if (lifetime >= 0)
        stun_build_u32(&b, STUN_ATTR_LIFETIME, (uint32_t)lifetime);
    if ((rc = resp_send(req->out, req->path, &b, p, req->key,
            req->fingerprint)) == 0)
        turn_core_count(core, req->mt, 0);
    return rc;
}

int
turn_core_allocate_success(struct turn_core *core,
    const struct addr_path *path, const uint8_t txid[STUN_TXID_LEN],
    const uint8_t key[16], int fingerprint, const struct atab_alloc *a,
    struct turn_cmdq *out)
{
    struct stun_builder b;
    struct addr         relayed;
    uint8_t            *p;
    int                 rc;

    if ((p = resp_begin(core, out, &b, STUN_ALLOCATE, STUN_SUCCESS,
            txid)) == NULL)
        return RLY_ERR_NOSPACE;
    if (a->families & ATAB_FAM_V4) {
        relayed = core->public4;
        relayed.port = a->port;
        stun_build_xor_addr(&b, STUN_ATTR_XOR_RELAYED_ADDRESS, &relayed);
    }
    if (a->families & ATAB_FAM_V6) {
        relayed = core->public6;
        relayed.port = a->port;
        stun_build_xor_addr(&b, STUN_ATTR_XOR_RELAYED_ADDRESS, &relayed);
    }
    stun_build_xor_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, &a->client);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, a->lifetime);
    if ((rc = resp_send(out, path, &b, p, key, fingerprint)) == 0)
        turn_core_count(core, TURN_MT_ALLOCATE, 0);
    return rc;
}

/* --- Authentication (SPEC §3.6) -------------------------------------- */

int
turn_core_auth(struct turn_core *core, struct turn_req *req, int *rc)
{
    const struct stun_msg *m = &req->m;
    const uint8_t         *user, *nonce;
    size_t                 ulen, nlen;
    uint8_t                n[AUTH_NONCE_LEN];
    uint64_t               expiry;

    if (stun_msg_attr(m, STUN_K_MESSAGE_INTEGRITY, &nlen) == NULL ||
        (user = stun_msg_attr(m, STUN_K_USERNAME, &ulen)) == NULL ||
        (nonce = stun_msg_attr(m, STUN_K_NONCE, &nlen)) == NULL ||
        auth_nonce_parse(nonce, nlen, n) != 0) {
        *rc = send_challenge(core, req, 401);
        return 0;
    }
    if (auth_nonce_check(core->nonces, &req->path->remote, n) != 0) {
        *rc = send_challenge(core, req, 438);
        return 0;
    }
    if (auth_key(core->secret, user, ulen, &expiry, req->key) != 0) {
        *rc = turn_core_drop(core, TURN_DROP_BAD_USERNAME, req->drop);
        return 0;
    }
    req->have_key = 1;
    if (expiry < req->wall_s || stun_integrity_verify(m, req->key, 16) != 0) {
        *rc = send_challenge(core, req, 401);
        return 0;
    }
    return 1;
}

static int
on_create_permission(struct turn_core *core, struct turn_req *req)
{
    int rc;

    if (!turn_core_auth(core, req, &rc))
        return rc;
    return turn_core_success(core, req, -1);
}

static int
on_binding(struct turn_core *core, struct turn_req *req)
{
    struct stun_builder b;
    uint8_t            *p;
    int                 rc;

    if ((p = resp_begin(core, req->out, &b, STUN_BINDING, STUN_SUCCESS,
            req->m.txid)) == NULL)
        return RLY_ERR_NOSPACE;
    stun_build_xor_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, &req->path->remote);
    if ((rc = resp_send(req->out, req->path, &b, p, NULL,
            req->fingerprint)) == 0)
        turn_core_count(core, TURN_MT_BINDING, 0);
    return rc;
}

/* SPEC §2.3 then §2.5. */
static int
on_stun(struct turn_core *core, const struct addr_path *path,
    const uint8_t *buf, size_t len, turn_ms_t now, uint64_t wall_s,
    struct turn_cmdq *out, enum turn_drop *drop)
{
    struct turn_req req;
    size_t          fplen;

    memset(&req, 0, sizeof(req));
    if (stun_msg_parse(&req.m, buf, len) != 0)
        return turn_core_drop(core, TURN_DROP_MALFORMED, drop);
    if (stun_fingerprint_verify(&req.m) != 0)
        return turn_core_drop(core, TURN_DROP_FINGERPRINT, drop);
    if (req.m.cls != STUN_REQUEST)
        return turn_core_drop(core, TURN_DROP_NOT_REQUEST, drop);
    req.path = path;
    req.mt = msgtype_of(req.m.method);
    req.now = now;
    req.wall_s = wall_s;
    req.out = out;
    req.drop = drop;
    req.fingerprint = stun_msg_attr(&req.m, STUN_K_FINGERPRINT, &fplen) !=
        NULL;
    if (req.m.bad_attr)
        return turn_core_unauth_400(core, &req);
    switch (req.m.method) {
    case STUN_BINDING:           return on_binding(core, &req);
    case STUN_ALLOCATE:          return turn_alloc_allocate(core, &req);
    case STUN_REFRESH:           return turn_alloc_refresh(core, &req);
    case STUN_CHANNEL_BIND:      return turn_chan_bind(core, &req);
    case STUN_CREATE_PERMISSION: return on_create_permission(core, &req);
    default:                     return turn_core_unauth_400(core, &req);
    }
}

/* --- Entry points ---------------------------------------------------- */

int
turn_core_on_client(struct turn_core *core, const struct addr_path *path,
    const uint8_t *buf, size_t len, turn_ms_t now, uint64_t wall_s,
    struct turn_cmdq *out, enum turn_drop *drop)
{
    if (path->remote.port == 0)
        return turn_core_drop(core, TURN_DROP_PORT_ZERO, drop);
    if (core->gated && !core->ready) {
        if (!atab_ready(core->tab))
            return turn_core_drop(core, TURN_DROP_NOT_READY, drop);
        core->ready = 1;
    }
    if (len == 0)
        return turn_core_drop(core, TURN_DROP_MALFORMED, drop);
    if (buf[0] <= 0x03)
        return on_stun(core, path, buf, len, now, wall_s, out, drop);
    if (buf[0] >= 0x40 && buf[0] <= 0x7F)
        return turn_chan_from_client(core, path, buf, len, now, out, drop);
    return turn_core_drop(core, TURN_DROP_MALFORMED, drop);
}

/* Extends c, the run command last queued, by the datagram at d when it is
 * ChannelData on the same channel with a payload no longer than the run's
 * and in its place (c->stride after the one before), and the run is open
 * (no shorter one yet) and has room.  Returns 1 when extended. */
static int
run_extend(struct turn_core *core, struct turn_cmd *c, const uint8_t *d,
    size_t len)
{
    const uint8_t   *payload;
    size_t           paylen;
    uint16_t         number;
    unsigned         n = c->nseg > 1 ? c->nseg : 1;

    if (c->lastlen < c->paylen || n >= TURN_RUN_MAX ||
        (size_t)(n + 1) * c->paylen > TURN_RUN_BYTES)
        return 0;
    if (len == 0 || d[0] < 0x40 || d[0] > 0x7F ||
        chandata_parse(d, len, &number, &payload, &paylen) != 0)
        return 0;
    if (number != c->number || paylen == 0 || paylen > c->paylen ||
        payload != c->payload + (size_t)n * c->stride)
        return 0;
    c->nseg = (uint16_t)(n + 1);
    c->lastlen = paylen;
    turn_stats_relayed(core->stats, TURN_DIR_C2P, paylen);
    return 1;
}

int
turn_core_on_client_run(struct turn_core *core,
    const struct addr_path *path, const uint8_t *buf, size_t seg,
    size_t total, turn_ms_t now, uint64_t wall_s, struct turn_cmdq *out,
    size_t *used)
{
    struct turn_cmd *run = NULL;
    size_t           off = 0;
    enum turn_drop   drop;

    if (seg == 0 || seg > UINT16_MAX)
        seg = total;            /* not a run: one datagram */
    while (off < total && (off == 0 || turn_cmdq_room(out))) {
        const uint8_t *d = buf + off;
        size_t         len = total - off < seg ? total - off : seg;
        size_t         n0 = out->n;
        int            rc;

        off += len;
        if (run != NULL && run_extend(core, run, d, len))
            continue;
        run = NULL;
        rc = turn_core_on_client(core, path, d, len, now, wall_s, out, &drop);
        if (rc != 0 && rc != RLY_ERR_DROP) {
            *used = off;
            return rc;
        }
        if (rc == 0 && out->n == n0 + 1 &&
            out->cmd[n0].kind == TURN_CMD_SEND_PEER &&
            out->cmd[n0].hdrlen == 0 && out->cmd[n0].paylen > 0 &&
            total > seg) {
            run = &out->cmd[n0];
            run->stride = (uint16_t)seg;
            run->lastlen = run->paylen;
        }
    }
    *used = off;
    return 0;
}

int
turn_core_on_timer(struct turn_core *core, turn_ms_t now,
    struct turn_cmdq *out)
{
    if (turn_alloc_reap_kicked(core, out) != 0)
        return 1;
    if (turn_alloc_expire(core, now, out) != 0)
        return 1;
    return turn_chan_expire(core, now, out);
}

turn_ms_t
turn_core_next_deadline(const struct turn_core *core)
{
    uint64_t a = turn_timer_peek(&core->alloc_timer, NULL);
    uint64_t c = turn_timer_peek(&core->chan_timer, NULL);

    return a < c ? a : c;
}
