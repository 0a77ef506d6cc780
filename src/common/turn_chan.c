/* turn_chan.c - channel bindings, unique per client (SPEC §5.1): a
 * binding lives 600 s, then cools down 300 s before its number or peer may
 * be reused (§5.2, §5.3); ChannelBind (§2.6.4) with the peer policy (§5.4);
 * and the ChannelData path in both directions (§2.11).
 *
 * The data path takes no lock, allocates nothing and logs nothing: it uses
 * the worker-local index (chan_idx) and one atomic load of the
 * allocation's state, the only field another process may change. */
#include <string.h>

#include "chandata.h"
#include "rly_err.h"
#include "turn_core_int.h"

#define CHAN_LIFETIME_MS    (TURN_CHANNEL_LIFETIME * 1000u)
#define CHAN_COOLDOWN_MS    (TURN_CHANNEL_COOLDOWN * 1000u)
#define UDP_MAX_PAYLOAD4    65507u
#define UDP_MAX_PAYLOAD6    65527u

uint64_t
turn_chan_deadline(const struct atab_chan *c)
{
    return c->state == ATAB_C_BOUND ? c->expiry : c->expiry + CHAN_COOLDOWN_MS;
}

static void
emit_chan(struct turn_cmdq *out, enum turn_cmd_kind kind,
    const struct atab_alloc *a, uint32_t aidx, const struct atab_chan *c)
{
    struct turn_cmd *cmd = turn_cmdq_push(out, kind);

    RLY_BUG_ON(cmd == NULL);
    cmd->ref.idx = aidx;
    cmd->ref.gen = a->gen;
    cmd->port = a->port;
    cmd->number = c->number;
    cmd->path.local = a->local;
    cmd->path.remote = a->client;
    cmd->peer = c->peer;
}

void
turn_chan_forget(struct turn_core *core, uint32_t chan)
{
    struct atab_chan  *c = atab_chan_at(core->tab, chan);
    struct atab_alloc *a = atab_alloc_at(core->tab, c->alloc);

    chan_idx_del(core->ci, &a->client, c->number, a->port, &c->peer);
    turn_timer_del(&core->chan_timer, chan);
}

void
turn_chan_adopt(struct turn_core *core, uint32_t chan)
{
    struct atab_chan  *c = atab_chan_at(core->tab, chan);
    struct atab_alloc *a = atab_alloc_at(core->tab, c->alloc);

    /* The caller reserved room (chan_idx_reserve), so this cannot fail
     * for want of memory. */
    (void)chan_idx_add(core->ci, chan, &a->client, c->number, a->port,
        &c->peer);
    turn_timer_set(&core->chan_timer, chan, turn_chan_deadline(c));
}

/* Applies the due transitions of one channel at now (bound -> cooling ->
 * deleted).  Returns 1 when the channel is gone.  Under lock when the
 * caller may delete. */
static int
chan_settle(struct turn_core *core, uint32_t chan, turn_ms_t now,
    struct turn_cmdq *out)
{
    struct atab_chan *c = atab_chan_at(core->tab, chan);

    if (c->state == ATAB_C_BOUND && c->expiry <= now) {
        emit_chan(out, TURN_CMD_CHAN_UNBOUND,
            atab_alloc_at(core->tab, c->alloc), c->alloc, c);
        c->state = ATAB_C_COOLING;
        turn_timer_set(&core->chan_timer, chan, turn_chan_deadline(c));
    }
    if (c->state == ATAB_C_COOLING && turn_chan_deadline(c) <= now) {
        turn_chan_forget(core, chan);
        atab_chan_release(core->tab, chan);
        return 1;
    }
    return 0;
}

/* SPEC §2.6.4 steps 3-10, under lock.  Returns the error code, or 0 after
 * creating or refreshing the channel. */
static unsigned
bind_locked(struct turn_core *core, struct turn_req *req, uint16_t number,
    const struct addr *peer)
{
    struct atab_alloc *a;
    struct atab_chan  *c;
    uint32_t           aidx, byp, byn, chan;
    int                rc;
    uint8_t            fam = peer->family == ADDR_V4 ? ATAB_FAM_V4 :
        ATAB_FAM_V6;
    turn_ms_t          now = req->now;

    if ((aidx = turn_alloc_find(core, &req->path->remote, now, req->out)) ==
        ATAB_NONE)
        return 437;
    a = atab_alloc_at(core->tab, aidx);
    /* Channels only on a live allocation: while its sockets are opening
     * its port may still move (SPEC §4.3), and the channel's keys with
     * it. */
    if (atab_alloc_state(a) != ATAB_A_LIVE)
        return 437;
    if (!(a->families & fam))
        return 443;
    if (!peer_policy_allowed(&core->policy, peer))
        return 403;
    byp = atab_chan_find_peer(core->tab, aidx, peer);
    if (byp != ATAB_NONE && chan_settle(core, byp, now, req->out))
        byp = ATAB_NONE;
    byn = atab_chan_find_num(core->tab, aidx, number);
    if (byn != ATAB_NONE && chan_settle(core, byn, now, req->out))
        byn = ATAB_NONE;
    if (byp != ATAB_NONE && atab_chan_at(core->tab, byp)->number != number)
        return 400;
    if (byn != ATAB_NONE && !addr_eq(&atab_chan_at(core->tab, byn)->peer,
            peer))
        return 400;
    if (byn != ATAB_NONE) {                     /* same number and peer */
        c = atab_chan_at(core->tab, byn);
        c->expiry = now + CHAN_LIFETIME_MS;
        c->state = ATAB_C_BOUND;
        turn_timer_set(&core->chan_timer, byn, c->expiry);
        emit_chan(req->out, TURN_CMD_CHAN_BOUND, a, aidx, c);
        return 0;
    }
    if (a->nchans >= TURN_MAX_CHANS_PER_CLIENT)
        return 508;
    /* A previous allocation of this client socket that another worker
     * deleted (same username from elsewhere) may still have its channels
     * in our index until our next timer run reaps it: they are dead, drop
     * them now so the number can be bound again. */
    chan = chan_idx_by_client(core->ci, &a->client, number);
    if (chan != CHAN_IDX_NONE && atab_chan_at(core->tab, chan)->alloc != aidx)
        turn_chan_forget(core, chan);
    if (atab_chan_create(core->tab, aidx, number, peer,
            now + CHAN_LIFETIME_MS, &chan) != 0)
        return 508;
    c = atab_chan_at(core->tab, chan);
    if ((rc = chan_idx_add(core->ci, chan, &a->client, number, a->port,
            peer)) != 0) {
        atab_chan_release(core->tab, chan);
        /* No memory to grow the index: like a full table, the bindings
         * held stay as they are. */
        if (rc == RLY_ERR_FULL)
            return 508;
        /* Never abort on what a client can provoke: refuse the bind. */
        log_warn(&core->log, "channel index out of step with the table");
        return 500;
    }
    turn_timer_set(&core->chan_timer, chan, c->expiry);
    emit_chan(req->out, TURN_CMD_CHAN_BOUND, a, aidx, c);
    return 0;
}

int
turn_chan_bind(struct turn_core *core, struct turn_req *req)
{
    const uint8_t *num, *xpeer;
    size_t         nlen, plen;
    struct addr    peer;
    unsigned       code;
    int            rc;

    num = stun_msg_attr(&req->m, STUN_K_CHANNEL_NUMBER, &nlen);
    xpeer = stun_msg_attr(&req->m, STUN_K_XOR_PEER_ADDRESS, &plen);
    if (num == NULL || xpeer == NULL ||
        stun_xor_addr_decode(xpeer, plen, req->m.txid, &peer) != 0)
        return turn_core_unauth_400(core, req);
    if (!turn_core_auth(core, req, &rc))
        return rc;
    if ((rc = atab_lock(core->tab)) != 0)
        return rc;
    code = bind_locked(core, req, (uint16_t)(num[0] << 8 | num[1]), &peer);
    atab_unlock(core->tab);
    if (code != 0)
        return turn_core_error(core, req, code);
    return turn_core_success(core, req, -1);
}

int
turn_chan_expire(struct turn_core *core, turn_ms_t now,
    struct turn_cmdq *out)
{
    uint32_t chan;

    while (turn_timer_peek(&core->chan_timer, &chan) <= now) {
        struct atab_chan *c = atab_chan_at(core->tab, chan);

        if (!turn_cmdq_room(out))
            return 1;
        if (c->state == ATAB_C_FREE) {
            turn_timer_del(&core->chan_timer, chan);
            continue;
        }
        if (turn_chan_deadline(c) > now) {     /* refreshed since */
            turn_timer_set(&core->chan_timer, chan, turn_chan_deadline(c));
            continue;
        }
        if (atab_lock(core->tab) != 0)
            return RLY_ERR_CORRUPT;
        (void)chan_settle(core, chan, now, out);
        atab_unlock(core->tab);
    }
    return 0;
}

/* --- The ChannelData path -------------------------------------------- */

int
turn_chan_from_client(struct turn_core *core, const struct addr_path *path,
    const uint8_t *buf, size_t len, turn_ms_t now, struct turn_cmdq *out,
    enum turn_drop *drop)
{
    const struct atab_chan  *c;
    const struct atab_alloc *a;
    const uint8_t           *payload;
    struct turn_cmd         *cmd;
    uint16_t                 number;
    size_t                   paylen;
    uint32_t                 chan;

    if (chandata_parse(buf, len, &number, &payload, &paylen) != 0)
        return turn_core_drop(core, TURN_DROP_MALFORMED, drop);
    chan = chan_idx_by_client(core->ci, &path->remote, number);
    if (chan == CHAN_IDX_NONE)
        return turn_core_drop(core, TURN_DROP_NO_CHANNEL, drop);
    c = atab_chan_at(core->tab, chan);
    a = atab_alloc_at(core->tab, c->alloc);
    if (c->state != ATAB_C_BOUND || c->expiry <= now ||
        atab_alloc_state(a) != ATAB_A_LIVE || a->gen != c->alloc_gen ||
        a->expiry <= now || !addr_eq(&a->client, &path->remote))
        return turn_core_drop(core, TURN_DROP_NO_CHANNEL, drop);
    if ((cmd = turn_cmdq_push(out, TURN_CMD_SEND_PEER)) == NULL)
        return RLY_ERR_NOSPACE;
    cmd->ref.idx = c->alloc;
    cmd->ref.gen = c->alloc_gen;
    cmd->port = a->port;
    cmd->number = number;
    cmd->path.remote = c->peer;
    cmd->payload = payload;
    cmd->paylen = paylen;
    turn_stats_relayed(core->stats, TURN_DIR_C2P, paylen);
    return 0;
}

int
turn_core_on_peer(struct turn_core *core, struct atab_ref ref,
    uint16_t port, const struct addr *peer, const uint8_t *buf, size_t len,
    turn_ms_t now, struct turn_cmdq *out, enum turn_drop *drop)
{
    const struct atab_alloc *a = atab_alloc_get(core->tab, ref);
    const struct atab_chan  *c;
    struct turn_cmd         *cmd;
    uint8_t                 *hdr;
    uint32_t                 chan;

    if (a == NULL || atab_alloc_state(a) != ATAB_A_LIVE || a->expiry <= now)
        return turn_core_drop(core, TURN_DROP_NO_PEER_BINDING, drop);
    chan = chan_idx_by_peer(core->ci, port, peer);
    if (chan == CHAN_IDX_NONE)
        return turn_core_drop(core, TURN_DROP_NO_PEER_BINDING, drop);
    c = atab_chan_at(core->tab, chan);
    if (c->state != ATAB_C_BOUND || c->expiry <= now || c->alloc != ref.idx)
        return turn_core_drop(core, TURN_DROP_NO_PEER_BINDING, drop);
    if (len + CHANDATA_HDR_LEN > (a->client.family == ADDR_V4 ?
            UDP_MAX_PAYLOAD4 : UDP_MAX_PAYLOAD6))
        return turn_core_drop(core, TURN_DROP_TOO_LARGE, drop);
    if ((hdr = turn_cmdq_arena(out, CHANDATA_HDR_LEN)) == NULL ||
        (cmd = turn_cmdq_push(out, TURN_CMD_SEND_CLIENT)) == NULL)
        return RLY_ERR_NOSPACE;
    chandata_hdr(hdr, c->number, (uint16_t)len);
    cmd->ref = ref;
    cmd->port = port;
    cmd->number = c->number;
    cmd->path.local = a->local;
    cmd->path.remote = a->client;
    cmd->hdr = hdr;
    cmd->hdrlen = CHANDATA_HDR_LEN;
    cmd->payload = buf;
    cmd->paylen = len;
    turn_stats_relayed(core->stats, TURN_DIR_P2C, len);
    return 0;
}
