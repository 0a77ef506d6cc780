/* suites.h - the list of suites, one per src/common module. */
#ifndef RLY_TEST_SUITES_H
#define RLY_TEST_SUITES_H

#include <check.h>

#define RLY_SUITES \
    SUITE(addr) \
    SUITE(siphash) \
    SUITE(stun_msg) \
    SUITE(stun_integrity) \
    SUITE(chandata) \
    SUITE(auth) \
    SUITE(peer_policy) \
    SUITE(atab) \
    SUITE(chan_idx) \
    SUITE(chan_ring) \
    SUITE(turn_cmd) \
    SUITE(turn_core) \
    SUITE(cfg) \
    SUITE(portal_msg) \
    SUITE(backoff) \
    SUITE(fmt)

#define SUITE(name) Suite *name##_suite(void);
RLY_SUITES
#undef SUITE

#endif
