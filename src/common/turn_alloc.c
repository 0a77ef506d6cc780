/* turn_alloc.c - allocation lifecycle (SPEC §2.6.2, §2.6.3, §4): Allocate
 * with replay, one allocation per username, capacity and relay families;
 * Refresh with lifetime clamping; deletion; relay-port opening with up to
 * TURN_BIND_ATTEMPTS ports; expiry; re-adoption after a respawn.
 *
 * Shared indexes are read and changed only under the table lock; the
 * allocation's expiry and channels are ours alone (we own what we
 * allocate), so they are written without it. */
#include <openssl/evp.h>
#include <string.h>

#include "rly_err.h"
#include "turn_core_int.h"

#define MS_PER_S 1000u

/* SPEC §4.2 */
static uint32_t
granted_lifetime(const struct stun_msg *m)
{
    const uint8_t *v;
    size_t         len;
    uint32_t       l;

    if ((v = stun_msg_attr(m, STUN_K_LIFETIME, &len)) == NULL ||
        stun_attr_u32(v, len, &l) != 0)
        return TURN_DEFAULT_LIFETIME;
    return l > TURN_MAX_LIFETIME ? TURN_MAX_LIFETIME : l;
}

/* SPEC §4.1: the first 16 bytes of SHA-256(K || USERNAME). */
static int
username_hash(const struct atab *tab, const uint8_t *user, size_t ulen,
    uint8_t out[ATAB_UHASH_LEN])
{
    EVP_MD_CTX  *ctx = EVP_MD_CTX_new();
    uint8_t      md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int          ok;

    ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, atab_user_key(tab), ATAB_USER_KEY_LEN) == 1 &&
        EVP_DigestUpdate(ctx, user, ulen) == 1 &&
        EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= ATAB_UHASH_LEN;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return RLY_ERR_CRYPTO;
    memcpy(out, md, ATAB_UHASH_LEN);
    return 0;
}

/* SPEC §4.4, first matching row.  Returns the ATAB_FAM_* set, or the error
 * code (400 or 440) in *code. */
static uint8_t
relay_families(const struct turn_core *core, const struct stun_msg *m,
    unsigned *code)
{
    const uint8_t *raf, *aaf;
    size_t         len;
    int            have4 = core->public4.family == ADDR_V4;
    int            have6 = core->public6.family == ADDR_V6;

    raf = stun_msg_attr(m, STUN_K_REQUESTED_ADDRESS_FAMILY, &len);
    aaf = stun_msg_attr(m, STUN_K_ADDITIONAL_ADDRESS_FAMILY, &len);
    *code = 0;
    if ((raf != NULL && aaf != NULL) || (aaf != NULL && aaf[0] == 0x01)) {
        *code = 400;
        return 0;
    }
    if (aaf != NULL) {                  /* AAF IPv6, no RAF */
        return (uint8_t)((have4 ? ATAB_FAM_V4 : 0) |
            (have6 ? ATAB_FAM_V6 : 0));
    }
    if (raf != NULL && raf[0] == 0x02) {
        if (have6)
            return ATAB_FAM_V6;
    } else if (have4) {
        return ATAB_FAM_V4;
    }
    *code = 440;
    return 0;
}

/* SPEC §4.3: the first port from port_min + (start mod range), probing
 * upward with wrap-around, that no allocation holds.  0 when none.
 * Under lock. */
static uint16_t
free_port(const struct turn_core *core, uint32_t start)
{
    uint32_t range = (uint32_t)core->port_max - core->port_min + 1;

    for (uint32_t i = 0; i < range; i++) {
        uint16_t port = (uint16_t)(core->port_min + (start + i) % range);

        if (atab_port_holder(core->tab, port) == ATAB_NONE)
            return port;
    }
    return 0;
}

static void
emit_relay(struct turn_cmdq *out, enum turn_cmd_kind kind,
    const struct atab_alloc *a, uint32_t idx)
{
    struct turn_cmd *cmd = turn_cmdq_push(out, kind);

    RLY_BUG_ON(cmd == NULL);
    cmd->ref.idx = idx;
    cmd->ref.gen = a->gen;
    cmd->port = a->port;
    cmd->families = a->families;
    cmd->path.local = a->local;
    cmd->path.remote = a->client;
}

void
turn_alloc_delete_own(struct turn_core *core, uint32_t idx,
    struct turn_cmdq *out, int locked)
{
    struct atab_alloc *a = atab_alloc_at(core->tab, idx);

    if (!locked && atab_lock(core->tab) != 0)
        return;
    /* Close before anything later, so the port is free again at once
     * (SPEC §4.6 step 3). */
    emit_relay(out, TURN_CMD_RELAY_CLOSE, a, idx);
    for (uint32_t c = a->chan_head; c != ATAB_NONE;
         c = atab_chan_at(core->tab, c)->next_alloc)
        turn_chan_forget(core, c);
    turn_timer_del(&core->alloc_timer, idx);
    core->pend[idx].kind = TURN_PEND_NONE;
    if (core->owned > 0)
        core->owned--;
    atab_alloc_delete(core->tab, idx);
    atab_alloc_release(core->tab, idx);
    if (!locked)
        atab_unlock(core->tab);
}

uint32_t
turn_alloc_find(struct turn_core *core, const struct addr *client,
    turn_ms_t now, struct turn_cmdq *out)
{
    uint32_t           idx = atab_find_client(core->tab, client);
    struct atab_alloc *a;

    if (idx == ATAB_NONE)
        return ATAB_NONE;
    a = atab_alloc_at(core->tab, idx);
    if (a->expiry > now)
        return idx;
    /* Due but not yet reaped: gone for whatever is handled at now. */
    if (a->owner == core->worker)
        turn_alloc_delete_own(core, idx, out, 1);
    else
        atab_alloc_delete(core->tab, idx);
    return ATAB_NONE;
}

/* Steps 3-8 of SPEC §2.6.2, under lock.  Returns the response code to send
 * (0: the allocation is opening, or an early replay was discarded). */
static unsigned
allocate_locked(struct turn_core *core, struct turn_req *req,
    const uint8_t uhash[ATAB_UHASH_LEN], uint16_t ulen, int *replay)
{
    const struct stun_msg *m = &req->m;
    struct atab_alloc      init;
    struct atab_ref        ref;
    const uint8_t         *rt;
    size_t                 len;
    uint32_t               idx, start;
    unsigned               code;
    uint16_t               port;
    uint8_t                fams;

    idx = turn_alloc_find(core, &req->path->remote, req->now, req->out);
    if (idx != ATAB_NONE) {
        struct atab_alloc *a = atab_alloc_at(core->tab, idx);

        if (memcmp(a->txid, m->txid, STUN_TXID_LEN) != 0)
            return 437;
        /* SPEC §4.5: replay; an early one is answered by the pending
         * response. */
        *replay = atab_alloc_state(a) == ATAB_A_LIVE ? (int)idx + 1 : 0;
        return 0;
    }
    if (atab_active(core->tab) >= core->capacity)
        return 508;
    rt = stun_msg_attr(m, STUN_K_REQUESTED_TRANSPORT, &len);
    if (rt[0] != 17)
        return 400;
    if ((fams = relay_families(core, m, &code)) == 0)
        return code;
    if ((idx = atab_find_user(core->tab, uhash, ulen)) != ATAB_NONE) {
        char was[ADDR_STRLEN], now[ADDR_STRLEN];

        log_debug(&core->log, "allocation of %s replaced by %s (same "
            "username)", addr_format(&atab_alloc_at(core->tab, idx)->client,
            was, sizeof(was)), addr_format(&req->path->remote, now,
            sizeof(now)));
        if (atab_alloc_at(core->tab, idx)->owner == core->worker)
            turn_alloc_delete_own(core, idx, req->out, 1);
        else
            atab_alloc_delete(core->tab, idx);
    }
    if (core->rand(core->rand_ud, (uint8_t *)&start, sizeof(start)) != 0 ||
        (port = free_port(core, start)) == 0)
        return 508;
    memset(&init, 0, sizeof(init));
    init.state = ATAB_A_OPENING;
    init.families = fams;
    init.port = port;
    init.owner = core->worker;
    init.ulen = ulen;
    init.client = req->path->remote;
    init.local = req->path->local;
    memcpy(init.uhash, uhash, ATAB_UHASH_LEN);
    memcpy(init.txid, m->txid, STUN_TXID_LEN);
    init.lifetime = granted_lifetime(m);
    init.expiry = req->now + (uint64_t)init.lifetime * MS_PER_S;
    if (atab_alloc_create(core->tab, &init, &ref) != 0)
        return 508;
    core->owned++;
    core->pend[ref.idx] = (struct turn_pend){
        .kind = TURN_PEND_ALLOCATE, .attempts = 1,
        .fingerprint = (uint8_t)req->fingerprint };
    memcpy(core->pend[ref.idx].key, req->key, 16);
    memcpy(core->pend[ref.idx].txid, m->txid, STUN_TXID_LEN);
    turn_timer_set(&core->alloc_timer, ref.idx, init.expiry);
    emit_relay(req->out, TURN_CMD_RELAY_OPEN, atab_alloc_at(core->tab,
        ref.idx), ref.idx);
    return 0;
}

int
turn_alloc_allocate(struct turn_core *core, struct turn_req *req)
{
    const uint8_t *user;
    uint8_t        uhash[ATAB_UHASH_LEN];
    size_t         ulen;
    unsigned       code;
    int            rc, replay = 0;

    if (stun_msg_attr(&req->m, STUN_K_REQUESTED_TRANSPORT, &ulen) == NULL)
        return turn_core_unauth_400(core, req);
    if (!turn_core_auth(core, req, &rc))
        return rc;
    user = stun_msg_attr(&req->m, STUN_K_USERNAME, &ulen);
    if ((rc = username_hash(core->tab, user, ulen, uhash)) != 0)
        return turn_core_error(core, req, 500);
    if ((rc = atab_lock(core->tab)) != 0)
        return rc;
    code = allocate_locked(core, req, uhash, (uint16_t)ulen, &replay);
    atab_unlock(core->tab);
    if (replay)
        return turn_core_allocate_success(core, req->path, req->m.txid,
            req->key, req->fingerprint,
            atab_alloc_at(core->tab, (uint32_t)replay - 1), req->out);
    if (code != 0)
        return turn_core_error(core, req, code);
    return 0;
}

int
turn_alloc_refresh(struct turn_core *core, struct turn_req *req)
{
    struct atab_alloc *a;
    uint32_t           idx, granted;
    int                rc;

    if (!turn_core_auth(core, req, &rc))
        return rc;
    if ((rc = atab_lock(core->tab)) != 0)
        return rc;
    idx = turn_alloc_find(core, &req->path->remote, req->now, req->out);
    if (idx == ATAB_NONE) {
        atab_unlock(core->tab);
        log_debug(&core->log, "refresh without allocation (437)");
        return turn_core_error(core, req, 437);
    }
    a = atab_alloc_at(core->tab, idx);
    granted = granted_lifetime(&req->m);
    if (granted == 0) {
        if (a->owner == core->worker)
            turn_alloc_delete_own(core, idx, req->out, 1);
        else
            atab_alloc_delete(core->tab, idx);
    } else {
        a->expiry = req->now + (uint64_t)granted * MS_PER_S;
        if (a->owner == core->worker)
            turn_timer_set(&core->alloc_timer, idx, a->expiry);
    }
    atab_unlock(core->tab);
    return turn_core_success(core, req, granted);
}

/* A failed RELAY_OPEN of a client's Allocate: the next port in probe order,
 * or 508 after TURN_BIND_ATTEMPTS ports (SPEC §4.3). */
static int
open_failed(struct turn_core *core, uint32_t idx, struct turn_cmdq *out)
{
    struct atab_alloc *a = atab_alloc_at(core->tab, idx);
    struct turn_pend  *p = &core->pend[idx];
    struct turn_req    req;
    uint16_t           port = 0;
    int                rc;

    if ((rc = atab_lock(core->tab)) != 0)
        return rc;
    if (p->attempts < TURN_BIND_ATTEMPTS) {
        port = free_port(core, (uint32_t)(a->port - core->port_min) + 1);
        if (port != 0 && atab_alloc_move_port(core->tab, idx, port) != 0)
            port = 0;
    }
    if (port != 0) {
        p->attempts++;
        atab_unlock(core->tab);
        emit_relay(out, TURN_CMD_RELAY_OPEN, a, idx);
        return 0;
    }
    memset(&req, 0, sizeof(req));
    req.path = &(struct addr_path){ a->local, a->client };
    req.m.method = STUN_ALLOCATE;
    req.m.txid = p->txid;
    req.mt = TURN_MT_ALLOCATE;
    req.out = out;
    req.fingerprint = p->fingerprint;
    req.have_key = 1;
    memcpy(req.key, p->key, sizeof(req.key));
    turn_timer_del(&core->alloc_timer, idx);
    p->kind = TURN_PEND_NONE;
    core->owned--;
    atab_alloc_release(core->tab, idx);
    atab_unlock(core->tab);
    return turn_core_error(core, &req, 508);
}

int
turn_core_on_relay_opened(struct turn_core *core, struct atab_ref ref,
    int ok, const char *err_text, turn_ms_t now, struct turn_cmdq *out)
{
    struct atab_alloc *a = atab_alloc_get(core->tab, ref);
    struct turn_pend  *p;
    char               buf[ADDR_STRLEN];

    (void)now;
    if (a == NULL || a->owner != core->worker)
        return 0;
    p = &core->pend[ref.idx];
    if (atab_alloc_state(a) == ATAB_A_DELETED) {
        turn_alloc_delete_own(core, ref.idx, out, 0);
        return 0;
    }
    if (p->kind == TURN_PEND_ADOPT) {
        p->kind = TURN_PEND_NONE;
        if (ok)
            return 0;
        log_warn(&core->log, "allocation of %s lost after restart: relay "
            "port %u: %s", addr_format(&a->client, buf, sizeof(buf)),
            (unsigned)a->port, err_text ? err_text : "bind failed");
        TURN_STAT_INC(core->stats->allocations_lost);
        turn_alloc_delete_own(core, ref.idx, out, 0);
        return 0;
    }
    if (p->kind != TURN_PEND_ALLOCATE)
        return 0;
    if (!ok) {
        log_debug(&core->log, "relay port %u refused: %s",
            (unsigned)a->port, err_text ? err_text : "bind failed");
        return open_failed(core, ref.idx, out);
    }
    p->kind = TURN_PEND_NONE;
    atab_alloc_set_state(a, ATAB_A_LIVE);
    return turn_core_allocate_success(core,
        &(struct addr_path){ a->local, a->client }, p->txid, p->key,
        p->fingerprint, a, out);
}

int
turn_alloc_expire(struct turn_core *core, turn_ms_t now,
    struct turn_cmdq *out)
{
    uint32_t idx;

    while (turn_timer_peek(&core->alloc_timer, &idx) <= now) {
        struct atab_alloc *a = atab_alloc_at(core->tab, idx);

        if (!turn_cmdq_room(out))
            return 1;
        if (a->owner != core->worker ||
            atab_alloc_state(a) == ATAB_A_FREE) {
            turn_timer_del(&core->alloc_timer, idx);
            continue;
        }
        if (a->expiry > now) {          /* moved on since it was set */
            turn_timer_set(&core->alloc_timer, idx, a->expiry);
            continue;
        }
        turn_alloc_delete_own(core, idx, out, 0);
    }
    return 0;
}

int
turn_alloc_reap_kicked(struct turn_core *core, struct turn_cmdq *out)
{
    uint64_t kicks = atab_worker_kicks(core->tab, core->worker);
    uint32_t n = atab_max_allocs(core->tab);

    if (kicks == core->kicks_seen)
        return 0;
    for (uint32_t idx = 0; idx < n; idx++) {
        struct atab_alloc *a = atab_alloc_at(core->tab, idx);

        if (a->owner != core->worker || !a->commit ||
            atab_alloc_state(a) != ATAB_A_DELETED)
            continue;
        if (!turn_cmdq_room(out))
            return 1;
        turn_alloc_delete_own(core, idx, out, 0);
    }
    core->kicks_seen = kicks;
    return 0;
}

int
turn_core_adopt(struct turn_core *core, turn_ms_t now, struct turn_cmdq *out)
{
    uint32_t n = atab_max_allocs(core->tab);

    (void)now;
    for (; core->adopt_cursor < n; core->adopt_cursor++) {
        uint32_t           idx = core->adopt_cursor;
        struct atab_alloc *a = atab_alloc_at(core->tab, idx);
        uint32_t           st = atab_alloc_state(a);

        if (st == ATAB_A_FREE || a->owner != core->worker)
            continue;
        if (!turn_cmdq_room(out))
            return 1;
        if (st != ATAB_A_LIVE || !a->commit) {
            /* Sockets that were opening or closing died with the old
             * worker: nothing to close, only the slot to free. */
            if (atab_lock(core->tab) != 0)
                return RLY_ERR_CORRUPT;
            if (atab_alloc_state(a) != ATAB_A_FREE) {
                atab_alloc_delete(core->tab, idx);
                atab_alloc_release(core->tab, idx);
            }
            atab_unlock(core->tab);
            continue;
        }
        /* Room in the channel index first, so that the allocation is
         * adopted whole or not at all: without memory the worker exits
         * and its successor tries again. */
        if (chan_idx_reserve(core->ci,
                chan_idx_count(core->ci) + a->nchans) != 0)
            return RLY_ERR_NOMEM;
        core->owned++;
        core->pend[idx] = (struct turn_pend){ .kind = TURN_PEND_ADOPT };
        turn_timer_set(&core->alloc_timer, idx, a->expiry);
        for (uint32_t c = a->chan_head; c != ATAB_NONE;
             c = atab_chan_at(core->tab, c)->next_alloc)
            turn_chan_adopt(core, c);
        emit_relay(out, TURN_CMD_RELAY_OPEN, a, idx);
    }
    return 0;
}
