/* tb_sys.c - clock, latency histogram, /proc sampling and addresses for
 * the benchmark tools.
 *
 * CPU use comes from /proc/PID/stat (utime + stime, which include the
 * softirq work done in the process's context: loopback delivers to the
 * receiving socket on the sender's CPU) summed over a process tree, and
 * from /proc/stat for whole CPUs. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "tb.h"

uint64_t
tb_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
hist_index(uint64_t us)
{
    int e;

    if (us < TB_HIST_LINEAR)
        return (int)us;
    e = 63 - __builtin_clzll(us);       /* e >= 10 */
    if (e >= 10 + 40)
        return TB_HIST_SLOTS - 1;
    return TB_HIST_LINEAR + (e - 10) * TB_HIST_SUB +
        (int)((us >> (e - 6)) & (TB_HIST_SUB - 1));
}

static uint64_t
hist_value(int idx)
{
    int e, sub;

    if (idx < TB_HIST_LINEAR)
        return (uint64_t)idx;
    e = 10 + (idx - TB_HIST_LINEAR) / TB_HIST_SUB;
    sub = (idx - TB_HIST_LINEAR) % TB_HIST_SUB;
    return ((uint64_t)1 << e) + ((uint64_t)sub << (e - 6));
}

void
tb_hist_add(struct tb_hist *h, uint64_t ns)
{
    uint64_t us = ns / 1000;

    h->slot[hist_index(us)]++;
    h->count++;
    if (us > h->max_us)
        h->max_us = us;
}

uint64_t
tb_hist_quantile(const struct tb_hist *h, double q)
{
    uint64_t want, seen = 0;

    if (h->count == 0)
        return 0;
    want = (uint64_t)(q * (double)h->count);
    if (want >= h->count)
        want = h->count - 1;
    for (int i = 0; i < TB_HIST_SLOTS; i++) {
        seen += h->slot[i];
        if (seen > want)
            return hist_value(i);
    }
    return h->max_us;
}

/* Reads a whole small file into buf (NUL-terminated); length or -1. */
static int
read_small(const char *path, char *buf, size_t cap)
{
    FILE  *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return -1;
    n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (int)n;
}

struct proc_ent {
    int         pid, ppid;
    uint64_t    ticks;
};

/* Every process's pid, parent and CPU ticks; count or -1.  Fields after
 * the command name, which may hold spaces and parentheses, are found from
 * the last ')'. */
static int
scan_procs(struct proc_ent **out)
{
    DIR             *d = opendir("/proc");
    struct dirent   *de;
    struct proc_ent *v = NULL;
    int              n = 0, cap = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        char                path[300], buf[1024], *p;
        int                 ppid;
        unsigned long long  ut, st;

        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        if (read_small(path, buf, sizeof(buf)) < 0 ||
            (p = strrchr(buf, ')')) == NULL)
            continue;
        /* state ppid pgrp session tty tpgid flags minflt cminflt majflt
         * cmajflt utime stime */
        if (sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
            "%llu %llu", &ppid, &ut, &st) != 3)
            continue;
        if (n == cap) {
            struct proc_ent *nv;

            cap = cap ? cap * 2 : 256;
            if ((nv = realloc(v, (size_t)cap * sizeof(*v))) == NULL)
                break;
            v = nv;
        }
        v[n].pid = atoi(de->d_name);
        v[n].ppid = ppid;
        v[n].ticks = ut + st;
        n++;
    }
    closedir(d);
    *out = v;
    return n;
}

/* Marks in `in` the processes of the tree rooted at pid; count marked. */
static int
mark_tree(const struct proc_ent *v, int n, int pid, char *in)
{
    int changed = 1, count = 0;

    for (int i = 0; i < n; i++)
        if ((in[i] = (v[i].pid == pid)))
            count++;
    while (changed) {
        changed = 0;
        for (int i = 0; i < n; i++) {
            if (in[i])
                continue;
            for (int j = 0; j < n; j++) {
                if (in[j] && v[j].pid == v[i].ppid) {
                    in[i] = 1;
                    count++;
                    changed = 1;
                    break;
                }
            }
        }
    }
    return count;
}

uint64_t
tb_pid_ticks(int pid)
{
    char                path[64], buf[1024], *p;
    unsigned long long  ut, st;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (pid <= 0 || read_small(path, buf, sizeof(buf)) < 0 ||
        (p = strrchr(buf, ')')) == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
        "%llu %llu", &ut, &st) != 2)
        return 0;
    return ut + st;
}

uint64_t
tb_proc_tree_ticks(int pid)
{
    struct proc_ent *v = NULL;
    char            *in;
    uint64_t         sum = 0;
    int              n;

    if (pid <= 0 || (n = scan_procs(&v)) <= 0) {
        free(v);
        return 0;
    }
    if ((in = calloc((size_t)n, 1)) != NULL) {
        mark_tree(v, n, pid, in);
        for (int i = 0; i < n; i++)
            if (in[i])
                sum += v[i].ticks;
    }
    free(in);
    free(v);
    return sum;
}

int
tb_stat_ticks(uint64_t cpus, uint64_t *busy, uint64_t *total)
{
    static char buf[16384];
    char       *line, *save = NULL;

    *busy = *total = 0;
    if (read_small("/proc/stat", buf, sizeof(buf)) < 0)
        return -1;
    for (line = strtok_r(buf, "\n", &save); line != NULL;
        line = strtok_r(NULL, "\n", &save)) {
        unsigned long long f[10] = { 0 };
        int                cpu = -1;
        uint64_t           sum = 0;

        if (strncmp(line, "cpu", 3) != 0)
            break;
        if (line[3] == ' ') {
            if (cpus != 0)
                continue;
        } else {
            cpu = atoi(line + 3);
            if (cpus == 0 || cpu >= 64 || !(cpus >> cpu & 1))
                continue;
        }
        sscanf(line + 3 + strcspn(line + 3, " "), "%llu %llu %llu %llu "
            "%llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3],
            &f[4], &f[5], &f[6], &f[7], &f[8], &f[9]);
        /* guest and guest_nice (8, 9) are already in user and nice. */
        for (int i = 0; i < 8; i++)
            sum += f[i];
        *total += sum;
        *busy += sum - f[3] - f[4];
    }
    return 0;
}

static uint64_t
field_kb(const char *text, const char *name)
{
    const char *p = strstr(text, name);

    if (p == NULL)
        return 0;
    return strtoull(p + strlen(name), NULL, 10) * 1024;
}

int
tb_proc_tree_mem(int pid, struct tb_mem *m)
{
    struct proc_ent *v = NULL;
    char            *in;
    static char      buf[65536];
    int              n;

    memset(m, 0, sizeof(*m));
    if ((n = scan_procs(&v)) <= 0 || (in = calloc((size_t)n, 1)) == NULL) {
        free(v);
        return -1;
    }
    mark_tree(v, n, pid, in);
    for (int i = 0; i < n; i++) {
        char path[64];

        if (!in[i])
            continue;
        snprintf(path, sizeof(path), "/proc/%d/status", v[i].pid);
        if (read_small(path, buf, sizeof(buf)) < 0)
            continue;
        m->rss += field_kb(buf, "VmRSS:");
        m->anon += field_kb(buf, "RssAnon:");
        m->shmem += field_kb(buf, "RssShmem:");
        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", v[i].pid);
        if (read_small(path, buf, sizeof(buf)) >= 0)
            m->pss += field_kb(buf, "\nPss:");
        m->nproc++;
    }
    free(in);
    free(v);
    return 0;
}

int
tb_sockstat(struct tb_sockstat *s)
{
    char        buf[4096];
    const char *p;

    memset(s, 0, sizeof(*s));
    if (read_small("/proc/net/sockstat", buf, sizeof(buf)) < 0)
        return -1;
    if ((p = strstr(buf, "sockets: used ")) != NULL)
        s->sockets_used = strtoull(p + 14, NULL, 10);
    if ((p = strstr(buf, "\nUDP: inuse ")) != NULL) {
        char *end;

        s->udp_inuse = strtoull(p + 12, &end, 10);
        if ((p = strstr(end, "mem ")) != NULL)
            s->udp_mem_pages = strtoull(p + 4, NULL, 10);
    }
    {
        static char mi[8192];

        if (read_small("/proc/meminfo", mi, sizeof(mi)) >= 0)
            s->slab_bytes = field_kb(mi, "\nSlab:");
    }
    return 0;
}

int
tb_parse_addr(const char *s, struct sockaddr_in *sin)
{
    char        host[64];
    const char *colon = strrchr(s, ':');
    char       *end;
    long        port;

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535)
        return -1;
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

uint32_t
tb_gro_size(struct msghdr *h)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL;
        c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int v;

            memcpy(&v, CMSG_DATA(c), sizeof(v));
            return v > 0 ? (uint32_t)v : 0;
        }
    }
    return 0;
}
