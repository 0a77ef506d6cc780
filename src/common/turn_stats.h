/* turn_stats.h - drop reasons (SPEC §10.3) and the per-worker counters that
 * feed /metrics (SPEC §10.2).
 *
 * One struct turn_stats per worker slot lives in the shared region; only
 * that worker writes it (plain relaxed stores, no lock, no shared cache
 * line), and the master sums the slots.  TURN_STAT_INC keeps each store a
 * single aligned 64-bit write so a reader never sees a torn value. */
#ifndef RLY_TURN_STATS_H
#define RLY_TURN_STATS_H

#include <stddef.h>
#include <stdint.h>

enum turn_drop {
    TURN_DROP_NONE = 0,
    TURN_DROP_PORT_ZERO,
    TURN_DROP_NOT_READY,
    TURN_DROP_MALFORMED,
    TURN_DROP_FINGERPRINT,
    TURN_DROP_NOT_REQUEST,
    TURN_DROP_RATE_LIMITED,
    TURN_DROP_BAD_USERNAME,
    TURN_DROP_NO_CHANNEL,
    TURN_DROP_NO_PEER_BINDING,
    TURN_DROP_TOO_LARGE,
    TURN_DROP_SEND_ERROR,
    TURN_DROP_COUNT
};

/* "port_zero", "not_ready", ... as in SPEC §10.3 (NULL for NONE). */
const char *turn_drop_name(enum turn_drop d);

/* relay_responses_total{message_type} */
enum turn_msgtype {
    TURN_MT_BINDING = 0,
    TURN_MT_ALLOCATE,
    TURN_MT_REFRESH,
    TURN_MT_CHANNELBIND,
    TURN_MT_CREATEPERMISSION,
    TURN_MT_OTHER,
    TURN_MT_COUNT
};
const char *turn_msgtype_name(enum turn_msgtype t);

/* Response slots: 0 = success, then one per error code that may be sent. */
enum turn_resp {
    TURN_RESP_SUCCESS = 0,
    TURN_RESP_400, TURN_RESP_401, TURN_RESP_403, TURN_RESP_437,
    TURN_RESP_438, TURN_RESP_440, TURN_RESP_443, TURN_RESP_500,
    TURN_RESP_508,
    TURN_RESP_COUNT
};
/* Error code of a slot (0 for SUCCESS); slot of a code (-1 if unknown). */
unsigned turn_resp_code(enum turn_resp r);
int turn_resp_slot(unsigned code);

enum turn_dir {
    TURN_DIR_C2P = 0,   /* client_to_peer */
    TURN_DIR_P2C = 1,   /* peer_to_client */
    TURN_DIR_COUNT
};
const char *turn_dir_name(enum turn_dir d);

/* relay_packet_size_bytes buckets: le = 100, 200, ..., 1500, +Inf */
#define TURN_HIST_BUCKETS 16

struct turn_stats {
    uint64_t responses[TURN_MT_COUNT][TURN_RESP_COUNT];
    uint64_t relayed_bytes[TURN_DIR_COUNT];
    uint64_t relayed_packets[TURN_DIR_COUNT];
    uint64_t dropped[TURN_DROP_COUNT];
    uint64_t size_hist[TURN_HIST_BUCKETS];  /* non-cumulative */
    uint64_t size_sum;
    uint64_t allocations_lost;
    uint64_t xdp_packets[TURN_DIR_COUNT];
    uint64_t xdp_bytes[TURN_DIR_COUNT];
};

#define TURN_STAT_ADD(field, n) \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + \
        (uint64_t)(n), __ATOMIC_RELAXED)
#define TURN_STAT_INC(field) TURN_STAT_ADD(field, 1)

/* Counts one relayed datagram of paylen payload bytes in direction d
 * (inline: once per relayed datagram). */
static inline void
turn_stats_relayed(struct turn_stats *s, enum turn_dir d, size_t paylen)
{
    size_t bucket = paylen == 0 ? 0 : (paylen - 1) / 100;

    if (bucket >= TURN_HIST_BUCKETS - 1)
        bucket = TURN_HIST_BUCKETS - 1;
    TURN_STAT_INC(s->relayed_packets[d]);
    TURN_STAT_ADD(s->relayed_bytes[d], paylen);
    TURN_STAT_INC(s->size_hist[bucket]);
    TURN_STAT_ADD(s->size_sum, paylen);
}

/* Adds src into dst (the master's sum over workers).  Reads src with
 * relaxed atomic loads. */
void turn_stats_sum(struct turn_stats *dst, const struct turn_stats *src);

#endif
