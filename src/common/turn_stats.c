/* turn_stats.c - names and helpers for the metric counters. */
#include <stddef.h>

#include "turn_stats.h"

static const char *const drop_names[TURN_DROP_COUNT] = {
    [TURN_DROP_NONE]            = NULL,
    [TURN_DROP_PORT_ZERO]       = "port_zero",
    [TURN_DROP_NOT_READY]       = "not_ready",
    [TURN_DROP_MALFORMED]       = "malformed",
    [TURN_DROP_FINGERPRINT]     = "fingerprint",
    [TURN_DROP_NOT_REQUEST]     = "not_request",
    [TURN_DROP_RATE_LIMITED]    = "rate_limited",
    [TURN_DROP_BAD_USERNAME]    = "bad_username",
    [TURN_DROP_NO_CHANNEL]      = "no_channel",
    [TURN_DROP_NO_PEER_BINDING] = "no_peer_binding",
    [TURN_DROP_TOO_LARGE]       = "too_large",
    [TURN_DROP_SEND_ERROR]      = "send_error",
};

static const char *const mt_names[TURN_MT_COUNT] = {
    "binding", "allocate", "refresh", "channelbind", "createpermission",
    "other",
};

static const unsigned resp_codes[TURN_RESP_COUNT] = {
    0, 400, 401, 403, 437, 438, 440, 443, 500, 508,
};

const char *
turn_drop_name(enum turn_drop d)
{
    if ((unsigned)d >= TURN_DROP_COUNT)
        return NULL;
    return drop_names[d];
}

const char *
turn_msgtype_name(enum turn_msgtype t)
{
    if ((unsigned)t >= TURN_MT_COUNT)
        return "other";
    return mt_names[t];
}

unsigned
turn_resp_code(enum turn_resp r)
{
    if ((unsigned)r >= TURN_RESP_COUNT)
        return 0;
    return resp_codes[r];
}

int
turn_resp_slot(unsigned code)
{
    for (int i = 1; i < TURN_RESP_COUNT; i++)
        if (resp_codes[i] == code)
            return i;
    return -1;
}

const char *
turn_dir_name(enum turn_dir d)
{
    return d == TURN_DIR_C2P ? "client_to_peer" : "peer_to_client";
}


#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void
turn_stats_sum(struct turn_stats *dst, const struct turn_stats *src)
{
    for (int t = 0; t < TURN_MT_COUNT; t++)
        for (int r = 0; r < TURN_RESP_COUNT; r++)
            dst->responses[t][r] += LOAD(src->responses[t][r]);
    for (int d = 0; d < TURN_DIR_COUNT; d++) {
        dst->relayed_bytes[d] += LOAD(src->relayed_bytes[d]);
        dst->relayed_packets[d] += LOAD(src->relayed_packets[d]);
        dst->xdp_packets[d] += LOAD(src->xdp_packets[d]);
        dst->xdp_bytes[d] += LOAD(src->xdp_bytes[d]);
    }
    for (int i = 0; i < TURN_DROP_COUNT; i++)
        dst->dropped[i] += LOAD(src->dropped[i]);
    for (int i = 0; i < TURN_HIST_BUCKETS; i++)
        dst->size_hist[i] += LOAD(src->size_hist[i]);
    dst->size_sum += LOAD(src->size_sum);
    dst->allocations_lost += LOAD(src->allocations_lost);
}
