/* turnbench.c - TURN load generator and peer (issue 7).
 *
 *   turnbench --server 127.0.0.1:P --secret S [--mode load] --flows K
 *             --dir c2p|p2c|both --size N [--rate PPS] ...
 *
 * Modes:
 *   load   open K allocations (401/nonce dance, long-term credentials),
 *          bind one channel each to the peer, send ChannelData open-loop,
 *          measure, then delete them with Refresh 0;
 *   churn  K concurrent clients loop new socket -> Allocate (401, then
 *          authenticated) -> ChannelBind -> Refresh 0: allocations/s;
 *   hold   open allocations up to each count of --holds and report the
 *          memory of the relay process tree and the kernel's sockets.
 * With --raw ADDR the server is the bundled forwarder (udpfwd), ADDR its
 * peer side, and no TURN is spoken.  One JSON line goes to stdout.
 * --peer-bind and --client-net place the peer and the clients on
 * addresses other than loopback (bench/xdp_bench.py: network
 * namespaces). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "turnbench.h"

#define SETUP_S     30.0

static void
usage(FILE *out)
{
    fprintf(out,
"usage: turnbench --server IP:PORT (--secret S | --user U --password P |\n"
"                 --creds FILE | --raw IP:PORT) [options]\n"
"  --mode load|churn|hold  (load)\n"
"  --flows K               allocations; churn: concurrent clients (16)\n"
"  --holds N,N...          hold: allocation counts to measure at\n"
"  --dir c2p|p2c|both      direction; both = the peer echoes (c2p)\n"
"  --size N                payload bytes, %d-%d (100)\n"
"  --rate PPS              datagrams/s of the sending side, 0 = flat out\n"
"  --duration S            measurement window (2)\n"
"  --warmup S              traffic before the window (0.5)\n"
"  --burst N               datagrams per GSO send, 1-64 (16)\n"
"  --budget N              flat out: datagrams per loop turn (256)\n"
"  --window N              flat out: at most N datagrams in flight (0: no\n"
"                          limit, the server's socket overflows)\n"
"  --no-gso                never use UDP_SEGMENT\n"
"  --no-gro                receive one datagram per message (no UDP_GRO):\n"
"                          on loopback the relay then pays for splitting\n"
"                          its GSO sends for the tool's sockets\n"
"  --cpu-pid PID           relay process whose tree CPU is measured\n"
"  --cpus MASK             CPUs (hex mask) whose /proc/stat time is shown\n"
"  --cpu-extra PID,...     processes or threads (at most %d, each alone, no\n"
"                          descendants) whose CPU is reported one by one\n"
"  --realm R               realm of the long-term key (firezone)\n"
"  --inflight N            concurrent set-up transactions (64)\n"
"  --label TEXT            copied into the JSON output\n"
"  --peer-bind IP          the peer socket's address (127.0.0.1)\n"
"  --client-net NET/LEN    bind each client socket to its own address of\n"
"                          NET (default: 127.x.y.z if the server is\n"
"                          127.0.0.1, else the kernel's choice)\n",
        TB_MIN_PAYLOAD, TB_MAX_PAYLOAD, TB_EXTRA_PIDS);
}

static int
load_creds(struct tb_bench *b, const char *path)
{
    FILE *f = fopen(path, "r");
    char  line[512];
    int   cap = 0;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "username=", 9) == 0) {
            if (b->ncreds == cap) {
                struct tb_cred *n;

                cap = cap ? cap * 2 : 16;
                n = realloc(b->creds, (size_t)cap * sizeof(*n));
                if (n == NULL)
                    break;
                b->creds = n;
            }
            memset(&b->creds[b->ncreds], 0, sizeof(b->creds[0]));
            snprintf(b->creds[b->ncreds].user,
                sizeof(b->creds[0].user), "%.*s",
                (int)sizeof(b->creds[0].user) - 1, line + 9);
            b->ncreds++;
        } else if (strncmp(line, "password=", 9) == 0 && b->ncreds > 0) {
            snprintf(b->creds[b->ncreds - 1].password,
                sizeof(b->creds[0].password), "%.*s",
                (int)sizeof(b->creds[0].password) - 1, line + 9);
        }
    }
    fclose(f);
    return b->ncreds > 0 ? 0 : -1;
}

static int
add_cred(struct tb_bench *b, const char *user, const char *password)
{
    if ((b->creds = calloc(1, sizeof(*b->creds))) == NULL)
        return -1;
    snprintf(b->creds[0].user, sizeof(b->creds[0].user), "%s", user);
    snprintf(b->creds[0].password, sizeof(b->creds[0].password), "%s",
        password);
    b->ncreds = 1;
    return 0;
}

/* "a.b.c.d/len" (len 8-30) into b->client_net and b->client_hosts (the
 * addresses between the network and broadcast addresses).  0 or -1. */
static int
parse_net(struct tb_bench *b, const char *s)
{
    char            host[32];
    const char     *slash = strchr(s, '/');
    char           *end;
    long            len;
    struct in_addr  a;
    uint32_t        mask;

    if (slash == NULL || (size_t)(slash - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(slash - s));
    host[slash - s] = '\0';
    len = strtol(slash + 1, &end, 10);
    if (*end != '\0' || len < 8 || len > 30 ||
        inet_pton(AF_INET, host, &a) != 1)
        return -1;
    mask = ~0u << (32 - len);
    b->client_net = ntohl(a.s_addr) & mask;
    b->client_hosts = ~mask - 1;
    return 0;
}

static int
parse_args(struct tb_bench *b, int argc, char **argv)
{
    static const struct option opts[] = {
        { "server", 1, NULL, 's' }, { "raw", 1, NULL, 'R' },
        { "secret", 1, NULL, 'S' }, { "user", 1, NULL, 'u' },
        { "password", 1, NULL, 'p' }, { "creds", 1, NULL, 'C' },
        { "realm", 1, NULL, 'r' }, { "mode", 1, NULL, 'm' },
        { "flows", 1, NULL, 'k' }, { "holds", 1, NULL, 'H' },
        { "dir", 1, NULL, 'd' }, { "size", 1, NULL, 'z' },
        { "rate", 1, NULL, 'q' }, { "duration", 1, NULL, 't' },
        { "warmup", 1, NULL, 'w' }, { "burst", 1, NULL, 'b' },
        { "budget", 1, NULL, 'B' }, { "no-gso", 0, NULL, 'G' },
        { "no-gro", 0, NULL, 'O' },
        { "cpu-pid", 1, NULL, 'P' }, { "cpus", 1, NULL, 'c' },
        { "inflight", 1, NULL, 'i' }, { "label", 1, NULL, 'l' },
        { "lifetime", 1, NULL, 'L' }, { "window", 1, NULL, 'W' },
        { "peer-bind", 1, NULL, 'A' }, { "client-net", 1, NULL, 'N' },
        { "cpu-extra", 1, NULL, 'X' },
        { "help", 0, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *user = NULL, *password = NULL, *server = NULL;
    int         c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': server = optarg; break;
        case 'R':
            if (tb_parse_addr(optarg, &b->raw_peer) != 0)
                return -1;
            b->raw = 1;
            break;
        case 'S': b->secret = optarg; break;
        case 'u': user = optarg; break;
        case 'p': password = optarg; break;
        case 'C':
            if (load_creds(b, optarg) != 0) {
                fprintf(stderr, "turnbench: no credentials in %s\n", optarg);
                return -1;
            }
            break;
        case 'r': b->realm = optarg; break;
        case 'm': b->mode = optarg; break;
        case 'k': b->nflows = atoi(optarg); break;
        case 'H': b->holds = optarg; break;
        case 'd':
            b->dir = strcmp(optarg, "c2p") == 0 ? TB_C2P :
                strcmp(optarg, "p2c") == 0 ? TB_P2C :
                strcmp(optarg, "both") == 0 ? TB_BOTH : 0;
            break;
        case 'z': b->size = atoi(optarg); break;
        case 'q': b->rate = atof(optarg); break;
        case 't': b->duration = atof(optarg); break;
        case 'w': b->warmup = atof(optarg); break;
        case 'b': b->burst = atoi(optarg); break;
        case 'B': b->budget = atoi(optarg); break;
        case 'G': b->gso = 0; break;
        case 'O': b->gro = 0; break;
        case 'P': b->cpu_pid = atoi(optarg); break;
        case 'c': b->cpu_mask = strtoull(optarg, NULL, 16); break;
        case 'i': b->inflight = atoi(optarg); break;
        case 'l': b->label = optarg; break;
        case 'L': b->lifetime = atoi(optarg); break;
        case 'W': b->window = atoi(optarg); break;
        case 'A':
            if (inet_pton(AF_INET, optarg, &b->peer_bind) != 1)
                return -1;
            break;
        case 'N':
            if (parse_net(b, optarg) != 0)
                return -1;
            break;
        case 'X':
            for (const char *p = optarg; *p != '\0'; p += *p == ',') {
                char *end;
                long  pid = strtol(p, &end, 10);

                if (end == p || pid <= 0 || b->nextra == TB_EXTRA_PIDS)
                    return -1;
                b->extra_pid[b->nextra++] = (int)pid;
                p = end;
                if (*p != ',' && *p != '\0')
                    return -1;
            }
            break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (user != NULL && password != NULL && add_cred(b, user, password))
        return -1;
    if (server == NULL || tb_parse_addr(server, &b->server) != 0 ||
        b->dir == 0 || b->nflows < 1 || b->nflows > (int)TB_FLOW_MASK ||
        b->size < TB_MIN_PAYLOAD || b->size > TB_MAX_PAYLOAD ||
        b->burst < 1 || b->burst > 64 || b->budget < 1 ||
        b->budget > 1024 || b->duration <= 0 || b->inflight < 1 ||
        (!b->raw && b->secret == NULL && b->ncreds == 0) ||
        (strcmp(b->mode, "load") != 0 && strcmp(b->mode, "churn") != 0 &&
        strcmp(b->mode, "hold") != 0) ||
        (b->raw && strcmp(b->mode, "load") != 0)) {
        usage(stderr);
        return -1;
    }
    /* A GSO send must fit one 64 KiB UDP datagram. */
    while (b->burst > 1 && b->burst * (b->size + 4) > 65000)
        b->burst--;
    return 0;
}

static int
open_peer(struct tb_bench *b)
{
    struct epoll_event ev;
    socklen_t          len = sizeof(b->peer_addr);
    int                size = 4 << 20, seg = 0, one = 1;

    b->peer_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
        0);
    if (b->peer_fd < 0)
        return -1;
    if (setsockopt(b->peer_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size,
        sizeof(size)) != 0)
        setsockopt(b->peer_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (setsockopt(b->peer_fd, SOL_SOCKET, SO_SNDBUFFORCE, &size,
        sizeof(size)) != 0)
        setsockopt(b->peer_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    memset(&b->peer_addr, 0, sizeof(b->peer_addr));
    b->peer_addr.sin_family = AF_INET;
    b->peer_addr.sin_addr = b->peer_bind;
    if (bind(b->peer_fd, (struct sockaddr *)&b->peer_addr,
        sizeof(b->peer_addr)) != 0 ||
        getsockname(b->peer_fd, (struct sockaddr *)&b->peer_addr, &len) != 0)
        return -1;
    /* GSO is there if the kernel takes the option (Linux 4.18+). */
    if (b->gso && setsockopt(b->peer_fd, SOL_UDP, UDP_SEGMENT, &seg,
        sizeof(seg)) != 0)
        b->gso = 0;
    /* GRO likewise (Linux 5.0+); the flows' sockets follow. */
    if (b->gro && setsockopt(b->peer_fd, SOL_UDP, UDP_GRO, &one,
        sizeof(one)) != 0)
        b->gro = 0;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = TB_EV_PEER;
    return epoll_ctl(b->ep, EPOLL_CTL_ADD, b->peer_fd, &ev);
}

static int
init(struct tb_bench *b)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Salts, transaction ids and client addresses must differ between
     * runs, so the seed comes from the kernel. */
    if (getrandom(&b->rng, sizeof(b->rng), 0) != sizeof(b->rng))
        b->rng = tb_now() ^ ((uint64_t)getpid() << 32);
    b->rng |= 1;
    b->tag = (uint32_t)b->rng;
    b->ip_seq = (uint32_t)(b->rng >> 32);
    if ((b->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || open_peer(b) != 0 ||
        (b->mac = tb_hmac_new()) == NULL) {
        fprintf(stderr, "turnbench: init: %s\n", strerror(errno));
        return -1;
    }
    b->flows = calloc((size_t)b->nflows, sizeof(*b->flows));
    if (b->flows == NULL)
        return -1;
    for (int i = 0; i < b->nflows; i++) {
        b->flows[i].fd = -1;
        b->flows[i].idx = (uint32_t)i;
        b->flows[i].chan = (uint16_t)(0x4000 + i % 0x1000);
    }
    return 0;
}

static double
ticks_s(uint64_t t)
{
    static long hz;

    if (hz == 0)
        hz = sysconf(_SC_CLK_TCK);
    return (double)t / (double)hz;
}

static void
print_dir(const char *name, const struct tb_dirstat *d, uint64_t sent)
{
    uint64_t lost = sent > d->recv_w ? sent - d->recv_w : 0;

    printf(",\"%s\":{\"sent\":%llu,\"recv\":%llu,\"lost\":%llu,"
        "\"loss\":%.6f,\"reordered\":%llu,\"p50_us\":%llu,\"p99_us\":%llu,"
        "\"p999_us\":%llu,\"max_us\":%llu}", name,
        (unsigned long long)sent, (unsigned long long)d->recv_w,
        (unsigned long long)lost, sent ? (double)lost / (double)sent : 0.0,
        (unsigned long long)d->reord_w,
        (unsigned long long)tb_hist_quantile(&d->hist, 0.50),
        (unsigned long long)tb_hist_quantile(&d->hist, 0.99),
        (unsigned long long)tb_hist_quantile(&d->hist, 0.999),
        (unsigned long long)d->hist.max_us);
}

static void
print_cpu(const struct tb_bench *b, const struct tb_cpu *s,
    const struct tb_cpu *e, double win)
{
    double relay = ticks_s(e->relay_ticks - s->relay_ticks);
    double all = ticks_s(e->all_busy - s->all_busy);
    double set = ticks_s(e->set_busy - s->set_busy);

    printf(",\"window_s\":%.4f,\"relay_cpu_s\":%.3f,\"sys_cpu_s\":%.3f,"
        "\"set_cpu_s\":%.3f,\"tool_cpu_s\":%.3f", win, relay, all, set,
        e->self_s - s->self_s);
    if (b->nextra > 0) {
        printf(",\"extra_cpu_s\":[");
        for (int i = 0; i < b->nextra; i++)
            printf("%s%.3f", i ? "," : "",
                ticks_s(e->extra_ticks[i] - s->extra_ticks[i]));
        printf("]");
    }
}

static void
print_head(const struct tb_bench *b)
{
    printf("{\"tool\":\"turnbench\",\"label\":\"%s\",\"mode\":\"%s\","
        "\"raw\":%d,\"flows\":%d,\"gso\":%d,\"gro\":%d,\"setup_failed\":%llu,"
        "\"last_error\":%d", b->label ? b->label : "", b->mode, b->raw,
        b->nflows, b->gso, b->gro, (unsigned long long)b->setup_failed,
        b->last_error);
}

static int
run_load(struct tb_bench *b)
{
    static const char *dirs[] = { "", "c2p", "p2c", "both" };
    struct tb_cpu      s, e;
    uint64_t           t = tb_now(), pkts, bytes;
    double             win, setup_s, relay;
    int                rc, cleanup_failed = 0;

    if (b->raw)
        rc = tb_raw_hello(b);
    else
        rc = tb_setup_run(b, 0, b->nflows, FS_READY,
            t + (uint64_t)(SETUP_S * 1e9)) == 0 ? 0 : -1;
    setup_s = (double)(tb_now() - t) / 1e9;
    if (rc != 0) {
        print_head(b);
        printf(",\"error\":\"set-up failed\"}\n");
        return 1;
    }
    if (tb_load_run(b, &s, &e) != 0)
        return 1;
    if (!b->raw)
        cleanup_failed = tb_setup_run(b, 0, b->nflows, FS_DONE,
            tb_now() + 5000000000ull);
    win = (double)(b->we - b->ws) / 1e9;
    pkts = b->c2p.arr_pkts + b->p2c.arr_pkts + b->rtt.arr_pkts;
    bytes = b->c2p.arr_bytes + b->p2c.arr_bytes + b->rtt.arr_bytes;
    relay = ticks_s(e.relay_ticks - s.relay_ticks);
    print_head(b);
    printf(",\"dir\":\"%s\",\"size\":%d,\"rate\":%.0f,\"window\":%d,"
        "\"setup_s\":%.3f,\"cleanup_failed\":%d", dirs[b->dir], b->size,
        b->rate, b->window, setup_s, cleanup_failed);
    print_cpu(b, &s, &e, win);
    printf(",\"tool_drops\":%llu", (unsigned long long)b->tool_drops);
    printf(",\"pkts\":%llu,\"pps\":%.0f,\"mbps\":%.2f,"
        "\"pps_per_cpu\":%.0f,\"mbps_per_cpu\":%.2f",
        (unsigned long long)pkts, pkts / win, bytes * 8 / win / 1e6,
        relay > 0 ? pkts / relay : 0.0,
        relay > 0 ? bytes * 8 / relay / 1e6 : 0.0);
    if (b->dir & TB_C2P)
        print_dir("c2p", &b->c2p, b->c2p.sent_w);
    if (b->dir == TB_P2C)
        print_dir("p2c", &b->p2c, b->p2c.sent_w);
    if (b->dir == TB_BOTH)
        print_dir("rtt", &b->rtt, b->c2p.sent_w);
    printf("}\n");
    return 0;
}

static int
run_churn(struct tb_bench *b)
{
    struct tb_cpu s, e;
    uint64_t      t0, n;
    double        win, relay;

    tb_cpu_sample(b, &s);
    t0 = tb_now();
    n = tb_churn(b, b->duration);
    win = (double)(tb_now() - t0) / 1e9;
    tb_cpu_sample(b, &e);
    relay = ticks_s(e.relay_ticks - s.relay_ticks);
    print_head(b);
    print_cpu(b, &s, &e, win);
    printf(",\"allocs\":%llu,\"allocs_per_s\":%.1f,"
        "\"relay_cpu_ms_per_alloc\":%.4f}\n", (unsigned long long)n,
        n / win, n > 0 ? relay * 1000 / (double)n : 0.0);
    return b->setup_failed > 0 && n == 0;
}

static void
print_mem(int count, const struct tb_mem *m, const struct tb_sockstat *k)
{
    printf("{\"allocs\":%d,\"rss\":%llu,\"anon\":%llu,\"shmem\":%llu,"
        "\"pss\":%llu,\"nproc\":%d,\"udp_inuse\":%llu,\"udp_mem_pages\":%llu,"
        "\"sockets\":%llu,\"slab\":%llu}", count,
        (unsigned long long)m->rss, (unsigned long long)m->anon,
        (unsigned long long)m->shmem, (unsigned long long)m->pss, m->nproc,
        (unsigned long long)k->udp_inuse,
        (unsigned long long)k->udp_mem_pages,
        (unsigned long long)k->sockets_used,
        (unsigned long long)k->slab_bytes);
}

static int
run_hold(struct tb_bench *b)
{
    const char        *p = b->holds ? b->holds : "";
    struct tb_mem      m;
    struct tb_sockstat k;
    int                done = 0, failed = 0;
    uint64_t           t0;

    usleep(200000);
    tb_proc_tree_mem(b->cpu_pid, &m);
    tb_sockstat(&k);
    print_head(b);
    printf(",\"levels\":[");
    print_mem(0, &m, &k);
    while (*p != '\0' && failed == 0) {
        int level = atoi(p);

        p += strcspn(p, ",");
        p += *p == ',';
        if (level <= done || level > b->nflows)
            continue;
        t0 = tb_now();
        failed = tb_setup_run(b, done, level - done, FS_READY,
            t0 + (uint64_t)(SETUP_S * 1e9));
        done = level;
        usleep(300000);
        tb_proc_tree_mem(b->cpu_pid, &m);
        tb_sockstat(&k);
        printf(",");
        print_mem(level, &m, &k);
    }
    tb_setup_run(b, 0, done, FS_DONE, tb_now() + 10000000000ull);
    printf("],\"failed\":%d}\n", failed);
    return failed != 0;
}

int
main(int argc, char **argv)
{
    struct tb_bench b;

    memset(&b, 0, sizeof(b));
    b.realm = "firezone";
    b.mode = "load";
    b.nflows = 16;
    b.dir = TB_C2P;
    b.size = 100;
    b.duration = 2.0;
    b.warmup = 0.5;
    b.burst = 16;
    b.budget = 256;
    b.gso = 1;
    b.gro = 1;
    b.inflight = 64;
    b.peer_fd = -1;
    b.peer_bind.s_addr = htonl(0x7f000001);
    if (parse_args(&b, argc, argv) != 0 || init(&b) != 0)
        return 2;
    if (strcmp(b.mode, "churn") == 0)
        return run_churn(&b);
    if (strcmp(b.mode, "hold") == 0)
        return run_hold(&b);
    return run_load(&b);
}
