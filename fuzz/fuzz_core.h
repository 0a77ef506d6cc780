/* fuzz_core.h - the input encoding of the fuzz_core target, shared with
 * the seed generator (gen_seeds.c).
 *
 * An input is a 4-byte header, then events until the input ends.
 *
 * Header:
 *   h0  bits 0-1: relayed families (FZC_RELAY_*, 3 counts as dual);
 *       0x04 gated (client datagrams dropped until FZC_EV_READY);
 *       0x08 two workers share the table (else one);
 *       0x10 error rate limit 1/s, burst 3 (else off);
 *       0x20 nonce table of 2 sockets (else 64)
 *   h1  relay port range: 1 + h1 % 12 ports from 49152
 *   h2, h3  seed of the randomness the core draws (nonces, ports, keys)
 *
 * Event: one byte e; kind = (e & 0x0F) % FZC_EV_COUNT; e & 0x80 keeps
 * the commands queued (a batch, as a worker builds one) instead of
 * carrying them out after the event; bits 4-6 are flags for some kinds.
 * Values read past the end of the input are zero. */
#ifndef RLY_FUZZ_CORE_H
#define RLY_FUZZ_CORE_H

#define FZC_RELAY_V4        0
#define FZC_RELAY_V6        1
#define FZC_RELAY_DUAL      2
#define FZC_GATED           0x04
#define FZC_TWO_WORKERS     0x08
#define FZC_RATELIM         0x10
#define FZC_SMALL_NONCES    0x20

#define FZC_BATCH           0x80
#define FZC_F1              0x10    /* per-kind flags */
#define FZC_F2              0x20
#define FZC_F3              0x40

#define FZC_PORT_MIN        49152
#define FZC_WALL            1700000000ULL   /* Unix s at time 0 */

/* Clients (index: worker = index % workers):
 *   0 198.51.100.7:40000   1 198.51.100.7:40001   2 198.51.100.8:40000
 *   3 [2001:db8:1::7]:40000  4 [2001:db8:1::7]:40001  5 10.1.2.3:3478
 *   6 [::ffff:198.51.100.7]:40000  7 198.51.100.9:0 (port zero) */
#define FZC_NCLIENTS        8
/* Peers: 0 203.0.113.9:5000  1 203.0.113.10:5000  2 [2001:db8:2::9]:5000
 *   3 127.0.0.1:5000  4 192.0.2.1:3478 (a listen socket)  5 10.0.0.1:6000
 *   6 192.0.2.1:49152 (hair-pin)  7 read from the input: family byte
 *   (even: IPv4, odd: IPv6), 16 address bytes, port (u16) */
#define FZC_NPEERS          8

enum fzc_event {
    /* A STUN request built and signed by the harness:
     *   client u8, method u8 (% 7: Binding, Allocate, Refresh,
     *   ChannelBind, CreatePermission, Send, any: then u16 method),
     *   attrs u16 (FZC_A_*), the last txid byte u8, then per present
     *   attribute in this order: transport u8 (if FZC_A_ANY_PROTO),
     *   lifetime u32, RAF u8 (+ u8 when raw), AAF (same), channel u8
     *   (< 0xC0: 0x4000 + u8 % 8, else a u16 follows), peer u8 (index,
     *   as above), extra attr (type u16, len u8, bytes), then, when the
     *   auth mode is not NONE, user u8 (FZC_USER_*; FZC_USER_FUZZ: len
     *   u16 % 601 and bytes), and for FZC_AUTH_FUZZ_NONCE 16 bytes, for
     *   FZC_AUTH_NONCE_FORM a form u8. */
    FZC_EV_REQUEST = 0,
    /* Raw client datagram: client u8, len u16 (% 1501 unless FZC_F1),
     * bytes. */
    FZC_EV_RAW,
    /* ChannelData from a client: client u8, channel u8 (as above), paylen
     * u8 (u16 with FZC_F1), padding u8 % 4, payload bytes. */
    FZC_EV_CHANDATA,
    /* Peer datagram: sel u8, [port u16 with FZC_F1 and FZC_F3], peer u8,
     * len u16 % 1501 (FZC_F2: 65503 + u8 % 33, the too_large edge),
     * bytes.  Default: the sel-th relay port bound (owner worker, its
     * allocation).  FZC_F1: the sel-th allocation reference seen in a
     * RELAY_OPEN, with its port (or the u16 port), a stale generation
     * when sel & 0x80, to worker sel / 2. */
    FZC_EV_PEER,
    /* Time: sel u8 (% 5): +u8 ms, +u8 s, +u8 min, the next deadline of
     * worker u8, that deadline - 1 ms. */
    FZC_EV_TIME,
    /* Timer run of worker u8 (to completion), then deadline > now. */
    FZC_EV_TIMER,
    /* Carry out every worker's queued commands. */
    FZC_EV_FLUSH,
    /* The next u8 % 10 relay opens fail (bind refused). */
    FZC_EV_OPEN_FAIL,
    /* Reload: policy u8 % 4 (listen sockets only; + allow loopback;
     * + deny 203.0.113.0/24; + deny everything), rate u8 % 4 (0, 1, 100,
     * 1000000), burst 1 + u8 % 4; log level debug with FZC_F1. */
    FZC_EV_RELOAD,
    /* Open the relaying gate (SPEC §7.5). */
    FZC_EV_READY,
    /* Worker u8 dies (its queued commands and sockets are lost) and is
     * replaced: a new core that adopts the slot's allocations. */
    FZC_EV_RESPAWN,
    /* The next u8 % 4 draws of randomness fail. */
    FZC_EV_RAND_FAIL,
    FZC_EV_COUNT
};

/* Attributes of FZC_EV_REQUEST. */
#define FZC_A_TRANSPORT     0x0001  /* REQUESTED-TRANSPORT 17 ... */
#define FZC_A_ANY_PROTO     0x0002  /* ... or a fuzz protocol */
#define FZC_A_LIFETIME      0x0004
#define FZC_A_RAF           0x0008  /* u8: % 3: IPv4, IPv6, raw u8 */
#define FZC_A_AAF           0x0010
#define FZC_A_CHANNEL       0x0020
#define FZC_A_PEER          0x0040
#define FZC_A_FINGERPRINT   0x0080
#define FZC_A_EXTRA         0x0100  /* before the auth attributes */
#define FZC_A_SAME_TXID     0x0200  /* the client's previous txid */
#define FZC_A_AFTER_MI      0x0400  /* an attribute after MI */
#define FZC_A_AUTH_SHIFT    11      /* 3 bits: FZC_AUTH_* */

enum fzc_auth {
    FZC_AUTH_NONE = 0,          /* no USERNAME, no MESSAGE-INTEGRITY */
    FZC_AUTH_NO_NONCE,          /* USERNAME, REALM, MI (first request) */
    FZC_AUTH_OK,                /* + NONCE from the last 401/438 */
    FZC_AUTH_OK2,               /* the same (more weight) */
    FZC_AUTH_FUZZ_NONCE,        /* a fuzz-chosen NONCE */
    FZC_AUTH_NONCE_FORM,        /* the nonce in another UUID form */
    FZC_AUTH_BAD_KEY,           /* MI with the wrong key */
    FZC_AUTH_NO_MI              /* USERNAME, NONCE, no MI */
};

enum fzc_user {
    FZC_USER_A = 0,             /* "<wall + 1 day>:saltA" */
    FZC_USER_B,
    FZC_USER_C,
    FZC_USER_EXPIRED,           /* "<wall - 1>:saltA" */
    FZC_USER_LEADING_ZERO,      /* "0<wall + 1 day>:saltA" */
    FZC_USER_UNPARSABLE,        /* "abc" */
    FZC_USER_EMPTY_SALT,        /* "<wall + 1 day>:" */
    FZC_USER_FUZZ,              /* "<wall + 1 day>:" + fuzz bytes */
    FZC_NUSERS
};

#endif
