/* runtime.h - what the master hands to its workers: the startup settings
 * the runtime needs (a plain copy taken from the loaded config, so that the
 * master and worker code do not depend on the config's layout), the shared
 * table, the listen sockets and the secret.
 *
 * Filled by main.c before the first fork and read-only afterwards; workers
 * see it through fork's copy of the master's memory.  Reloadable settings
 * (SPEC §10.5) travel through the shared table's reload block instead. */
#ifndef RLY_RUNTIME_H
#define RLY_RUNTIME_H

#include <stdint.h>
#include <sys/types.h>

#include "addr.h"
#include "atab.h"
#include "auth.h"

#define RT_SECRET_MAX   256             /* 255 characters + NUL (SPEC §3.1) */
#define RT_SOFTWARE     "firezone-relay; rev=" PACKAGE_VERSION

/* Index into the per-slot listen socket pair. */
#define RT_FAM_V4       0
#define RT_FAM_V6       1

struct runtime;

/* Re-reads the configuration from its original sources (SIGHUP).  On
 * success fills *out with the reloadable block and returns 0; keys that
 * changed but need a restart are logged at warn by the callee.  On error
 * logs it (with its location) and returns -1: the old block stays. */
typedef int (*rt_reload_fn)(struct runtime *rt, struct atab_reload *out);

struct runtime {
    /* --- settings (SPEC §9.2), copied from the config --- */
    struct addr     public4, public6;   /* family ADDR_NONE when unset */
    struct addr     bind4, bind6;       /* port = listen_port */
    uint16_t        listen_port;
    uint16_t        port_min, port_max;
    uint32_t        max_allocs, max_chans, nonce_table_size;
    uint32_t        nworkers;           /* resolved: never 0 */
    int             portal_mode;        /* portal.token set */
    int             log_json;
    int             seeded;             /* rng_seed set */
    uint64_t        seed;
    char            user[256];          /* "" = no privilege drop */
    char            group[256];         /* "" = the user's primary group */
    struct atab_reload reload;          /* initial reloadable block */
    char            secret[RT_SECRET_MAX];  /* never logged */

    /* --- portal and HTTP (SPEC §7, §10.1), for the master only: strings
     * borrowed from the config in force (not reloadable, so they stay);
     * NULL when unset --- */
    const char     *portal_url, *portal_token;  /* the token: never logged */
    const char     *portal_name, *portal_ca_file;
    struct addr     health;             /* health.listen */
    int             metrics;            /* metrics.enabled */

    rt_reload_fn    reload_fn;
    void           *reload_ud;

    /* --- XDP offload (SPEC §1, §9.2; docs/xdp.md) --- */
    const char     *xdp_ifname;         /* xdp.interface; NULL: none */
    int             xdp_generic;        /* xdp.mode: generic */
    struct addr     xdp_int4, xdp_int6; /* ADDR_NONE when unset */
    /* Filled by the master once attached, else NULL / 0 / -1: the
     * workers' channel rings (chan_ring.h) and the eventfd that wakes
     * the master. */
    void           *xdp_rings;
    uint32_t        xdp_ring_cap;
    int             xdp_efd;

    /* --- filled by the master --- */
    pid_t           master_pid;
    struct atab    *tab;
    int           (*lfd)[2];            /* [slot][RT_FAM_*], -1 when unset */
    /* Called in a freshly forked worker before anything else: undoes what
     * the master's event loop installed (signal handlers). */
    void          (*child_cleanup)(void *ud);
    void           *child_ud;
};

#endif
