/* tb.h - shared declarations of the benchmark tools (issue 7).
 *
 * The tools are independent of the relay's code: a minimal TURN client
 * (Allocate with the 401/nonce dance, ChannelBind, Refresh), long-term
 * credentials, a latency histogram, process CPU and memory sampling from
 * /proc, and the payload every benchmark datagram carries.  Every address
 * the tools send to is one the caller gave: 127.0.0.1 from bench/run,
 * addresses in network namespaces from bench/xdp_bench.py. */
#ifndef TB_H
#define TB_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* --- Payload ------------------------------------------------------------ */

/* Start of every benchmark payload (host byte order: sender and receiver
 * are the same machine).  flow has TB_FLOW_P2C set when the peer sent the
 * datagram; an echo keeps the original flow word.  seq TB_SEQ_HELLO marks
 * a set-up datagram that is not counted. */
struct tb_payload {
    uint32_t    magic;
    uint32_t    flow;
    uint64_t    seq;
    uint64_t    ts_ns;      /* CLOCK_MONOTONIC at send */
};

#define TB_MAGIC        0x54426e63u
#define TB_FLOW_P2C     0x80000000u
#define TB_FLOW_MASK    0x00ffffffu
#define TB_SEQ_HELLO    UINT64_MAX
#define TB_MIN_PAYLOAD  ((int)sizeof(struct tb_payload))
#define TB_MAX_PAYLOAD  1400

/* UDP options by number, for headers that predate them. */
#ifndef SOL_UDP
#define SOL_UDP         17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT     103     /* Linux 4.18 */
#endif
#ifndef UDP_GRO
#define UDP_GRO         104     /* Linux 5.0 */
#endif

struct msghdr;

/* The segment size of a UDP GRO message received with a control buffer (a
 * run of one sender's datagrams of one size, the last possibly shorter),
 * 0 for one datagram. */
uint32_t tb_gro_size(struct msghdr *h);

/* --- Time --------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t tb_now(void);

/* --- Latency histogram (µs, log-linear: 1 µs steps below 1024 µs, then
 * 64 steps per power of two, so the error stays under 1.6 %) ----------- */

#define TB_HIST_LINEAR  1024
#define TB_HIST_SUB     64
#define TB_HIST_SLOTS   (TB_HIST_LINEAR + 40 * TB_HIST_SUB)

struct tb_hist {
    uint64_t    count;
    uint64_t    max_us;
    uint64_t    slot[TB_HIST_SLOTS];
};

void tb_hist_add(struct tb_hist *h, uint64_t ns);

/* The value (µs, lower bound of its slot) below which a fraction q of the
 * samples lie; 0 for an empty histogram. */
uint64_t tb_hist_quantile(const struct tb_hist *h, double q);

/* --- STUN/TURN client codec (RFC 8489, RFC 8656) ------------------------ */

#define STUN_HDR            20
#define STUN_COOKIE         0x2112a442u

#define STUN_ALLOCATE       0x003
#define STUN_REFRESH        0x004
#define STUN_CHANNEL_BIND   0x009
#define STUN_CLASS_SUCCESS  0x100
#define STUN_CLASS_ERROR    0x110

#define STUN_A_USERNAME     0x0006
#define STUN_A_INTEGRITY    0x0008
#define STUN_A_ERROR_CODE   0x0009
#define STUN_A_CHANNEL      0x000c
#define STUN_A_LIFETIME     0x000d
#define STUN_A_XOR_PEER     0x0012
#define STUN_A_REALM        0x0014
#define STUN_A_NONCE        0x0015
#define STUN_A_XOR_RELAYED  0x0016
#define STUN_A_TRANSPORT    0x0019

#define STUN_MAX_TEXT       256

/* A request being built in a caller's buffer. */
struct stun_build {
    uint8_t    *buf;
    size_t      cap;
    size_t      len;
    int         overflow;
};

/* A parsed response: the parts a TURN client needs. */
struct stun_resp {
    uint16_t            method;
    uint16_t            cls;        /* STUN_CLASS_* or 0 for a request */
    uint8_t             txid[12];
    int                 error;      /* ERROR-CODE number, 0 if absent */
    size_t              nonce_len, realm_len;
    char                nonce[STUN_MAX_TEXT];
    char                realm[STUN_MAX_TEXT];
    int                 has_relayed;
    struct sockaddr_in  relayed;
};

void stun_build_init(struct stun_build *b, uint8_t *buf, size_t cap,
    uint16_t method, const uint8_t txid[12]);
void stun_build_attr(struct stun_build *b, uint16_t type, const void *val,
    size_t len);
void stun_build_u32(struct stun_build *b, uint16_t type, uint32_t v);
void stun_build_xaddr(struct stun_build *b, uint16_t type,
    const struct sockaddr_in *sin);

/* Appends MESSAGE-INTEGRITY (HMAC-SHA1 keyed with the 16-byte long-term
 * key); mac is a reusable HMAC context (tb_hmac_new()).  Returns the
 * message length, or -1 when the buffer overflowed or the MAC failed. */
int stun_build_finish(struct stun_build *b, const uint8_t key[16],
    EVP_MAC_CTX *mac);

/* Parses a datagram from a TURN server.  Returns 0, or -1 when it is not a
 * well-formed STUN message. */
int stun_parse(const uint8_t *buf, size_t len, struct stun_resp *r);

/* --- Credentials --------------------------------------------------------- */

/* A reusable HMAC-SHA1 context; NULL on failure. */
EVP_MAC_CTX *tb_hmac_new(void);

/* Firezone's password (SPEC §3.3): Base64-no-pad(SHA-256("<expiry>:
 * <secret>:<salt>")), 43 characters plus NUL into out[44].  0 or -1. */
int tb_fz_password(uint64_t expiry, const char *secret, const char *salt,
    char out[44]);

/* Long-term key: MD5("<user>:<realm>:<password>").  0 or -1. */
int tb_lt_key(const char *user, const char *realm, const char *password,
    uint8_t key[16]);

/* --- /proc sampling ----------------------------------------------------- */

/* utime+stime ticks of pid and all its descendants (threads included), or
 * 0 when pid is 0 or gone. */
uint64_t tb_proc_tree_ticks(int pid);

/* utime+stime ticks of the single process or thread pid (no descendants),
 * or 0 when it is gone. */
uint64_t tb_pid_ticks(int pid);

/* Busy and total ticks over all CPUs from /proc/stat (busy = total - idle
 * - iowait); cpus is a bit mask of the CPUs to count, 0 for the "cpu"
 * line (all). */
int tb_stat_ticks(uint64_t cpus, uint64_t *busy, uint64_t *total);

/* Memory of pid and its descendants, in bytes: the sums of VmRSS, RssAnon,
 * RssShmem and Pss (smaps_rollup). */
struct tb_mem {
    uint64_t    rss, anon, shmem, pss;
    int         nproc;
};

int tb_proc_tree_mem(int pid, struct tb_mem *m);

/* /proc/net/sockstat: UDP sockets in use and their buffer memory (pages),
 * and the Slab line of /proc/meminfo (bytes). */
struct tb_sockstat {
    uint64_t    udp_inuse, udp_mem_pages, sockets_used, slab_bytes;
};

int tb_sockstat(struct tb_sockstat *s);

/* Parses "a.b.c.d:port" into sin; 0 or -1. */
int tb_parse_addr(const char *s, struct sockaddr_in *sin);

#endif /* TB_H */
