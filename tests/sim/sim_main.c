/* sim_main.c - the simulation's driver: a fixed budget of transitions
 * spread over many seeds and threads (`make check`), one seed
 * (`--seed N`, or SIM_SEED=N), a soak of N transitions (`--soak N`), or a
 * replay of a saved transition list (`--replay FILE`).
 *
 * A failing seed is shrunk: chunks of its transition list are deleted and
 * the rest is run again from scratch, as long as the same check (tag)
 * still fails, halving the chunk size when no deletion helps (delta
 * debugging).  The result is printed and saved for --replay. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

#if defined(__SANITIZE_ADDRESS__)
#define SIM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_SANITIZED 1
#endif
#endif
#ifdef SIM_SANITIZED
#define DEFAULT_BUDGET  100000      /* ASan: about 10x slower */
#else
#define DEFAULT_BUDGET  1000000
#endif
#define SHRINK_RUNS     4000
#define SHRINK_SECONDS  300

struct result {
    int         failed;
    char        tag[48];
    char        msg[1024];
    uint32_t    at;                 /* failing transition; n: final */
    uint64_t    ntr, nreq, ndata;
    uint64_t    st[ST_N];
};

struct job {
    uint64_t        first, nseeds, budget;
    uint32_t        *len;
    uint64_t        next;
    int             stop;
    pthread_mutex_t mu;
    uint64_t        ntr, nreq, ndata, nseeds_done;
    uint64_t        st[ST_N];
    uint64_t        fail_seed;
    uint32_t        fail_len;
    struct result   fail;
    int             have_fail;
};

static __thread sigjmp_buf *abort_jmp;
int sim_blackbox;

static void
on_signal(int sig)
{
    if (abort_jmp != NULL)
        siglongjmp(*abort_jmp, sig);
    signal(sig, SIG_DFL);
    raise(sig);
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Also to the terminal under `make check` (fd 9, AM_TESTS_FD_REDIRECT). */
static void
say(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (fcntl(9, F_GETFD) != -1) {
        va_start(ap, fmt);
        vdprintf(9, fmt, ap);
        va_end(ap);
    }
}

static uint32_t
seed_length(uint64_t seed)
{
    return 500 + (uint32_t)(sim_mix(seed, 77) % 1001);
}

static void
describe_cfg(const struct sim_cfg *c, char *buf, size_t size)
{
    snprintf(buf, size, "%d worker%s, relay %s, %s timers, open results "
        "%s, %s queues, nonce/rate tables %u, error rate %u/s burst %u, "
        "%u-%u ms delay, loss %u/1000, duplication %u/1000, ports %u-%u, "
        "up to %u agents", c->nworkers, c->nworkers > 1 ? "s" : "",
        c->has4 && c->has6 ? "dual-stack" : c->has4 ? "IPv4-only" :
        "IPv6-only", c->lazy ? "lazy (1 s ticks)" : "precise",
        c->open_late ? "after the batch" : "at once", c->small_q ?
        "one-event" : "large", c->table_size, c->err_rate, c->err_burst,
        c->dmin, c->dmax, c->loss_pm, c->dup_pm, SIM_PORT_MIN, c->port_max,
        c->max_agents);
}

static void
take_result(struct sim_world *w, uint32_t at, struct result *res)
{
    res->failed = w->failed;
    snprintf(res->tag, sizeof(res->tag), "%s", w->tag);
    snprintf(res->msg, sizeof(res->msg), "%s", w->msg);
    res->at = at;
    res->ntr = w->n_tr;
    res->nreq = w->n_requests;
    res->ndata = w->n_data;
    memcpy(res->st, w->st, sizeof(res->st));
    (void)w->st_mt;
}

static void
print_coverage(const uint64_t *st)
{
    static const char *const codes[XB_N] = { "success", "400", "401",
        "403", "437", "438", "440", "443", "508", "500" };
    char   buf[600];
    size_t n = 0;

    for (int i = 0; i < XB_N; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s %" PRIu64 "%s",
            codes[i], st[ST_RESP + i], i + 1 < XB_N ? ", " : "");
    say("sim: responses: %s\n", buf);
    n = 0;
    for (int i = 1; i < TURN_DROP_COUNT; i++)
        if (st[ST_DROP + i] != 0)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s %" PRIu64
                " ", turn_drop_name((enum turn_drop)i), st[ST_DROP + i]);
    say("sim: drops: %s\n", n ? buf : "none");
    say("sim: relayed %" PRIu64 " to peers, %" PRIu64 " to clients; "
        "%" PRIu64 " probes, %" PRIu64 " arrivals, %" PRIu64 "/%" PRIu64
        " round trips checked (%" PRIu64 " across IPv4/IPv6); %" PRIu64
        " deliveries checked for their recipient, %" PRIu64 " not\n",
        st[ST_TO_PEER], st[ST_TO_CLIENT], st[ST_PROBE], st[ST_ARRIVALS],
        st[ST_RT_OK], st[ST_RT_EXPECT], st[ST_RT_46], st[ST_DELIV_CHECKED],
        st[ST_DELIV_UNKNOWN]);
    say("sim: %" PRIu64 " allocations (%" PRIu64 " replays), replaced by "
        "username %" PRIu64 " same worker + %" PRIu64 " across workers, "
        "%" PRIu64 " bind failures, %" PRIu64 " 508 after 8 binds, %"
        PRIu64 " closed by timers; channels %" PRIu64 " new + %" PRIu64
        " refreshed, %" PRIu64 " unbound; peak %" PRIu64 "/%d allocations, "
        "%" PRIu64 "/%d channels; %" PRIu64 " respawns (%" PRIu64
        " allocations adopted, %" PRIu64 " lost), %" PRIu64 " reloads; %"
        PRIu64 " 508s due to records past their deadline\n",
        st[ST_ALLOC], st[ST_REPLAY],
        st[ST_REPLACE_SAME], st[ST_REPLACE_KICK], st[ST_BINDFAIL],
        st[ST_508_BIND], st[ST_CLOSE_TIMER], st[ST_CHAN_NEW],
        st[ST_CHAN_REFRESH], st[ST_UNBOUND], st[ST_MAX_ALLOCS],
        SIM_MAX_ALLOCS, st[ST_MAX_CHANS], SIM_MAX_CHANS, st[ST_RESPAWN],
        st[ST_ADOPTED], st[ST_LOST], st[ST_RELOAD], st[ST_LAZY508]);
}

/* Runs a seed: generated transitions (gen != 0, appended to *list) or the
 * n given ones.  Catches an abort in the core (RLY_BUG_ON). */
static int
run(uint64_t seed, int gen, struct sim_tr *list, uint32_t n, int verbose,
    struct result *res)
{
    struct sim_cfg     cfg;
    struct sim_world  *w;
    struct sim_rng     g;
    sigjmp_buf         jb;
    volatile uint32_t  i = 0;
    int                sig;

    memset(res, 0, sizeof(*res));
    sim_cfg_from_seed(seed, &cfg);
    if ((w = sim_world_new(&cfg, verbose)) == NULL)
        return -1;
    sim_rng_seed(&g, sim_mix(seed, 0x6E6));
    abort_jmp = &jb;
    if ((sig = sigsetjmp(jb, 1)) != 0) {
        w->relay.aborted = 1;
        w->failed = 0;
        sim_fail(w, "core-abort", "the process got signal %d (an "
            "RLY_BUG_ON in the core?) during transition %u", sig,
            (unsigned)i);
        take_result(w, i, res);
        abort_jmp = NULL;
        sim_world_free(w);
        return 0;
    }
    for (i = 0; i < n && !w->failed; i++) {
        if (gen)
            sim_gen_next(w, &g, &list[i]);
        sim_tr_exec(w, &list[i]);
        sim_model_check(w, 0);
        if (w->failed)
            break;
    }
    if (!w->failed)
        sim_final(w);
    take_result(w, i, res);
    abort_jmp = NULL;
    sim_world_free(w);
    return 0;
}

/* --- Shrinking ------------------------------------------------------- */

static uint32_t
shrink(uint64_t seed, struct sim_tr *list, uint32_t n, const char *tag,
    uint32_t *runs)
{
    struct sim_tr *tmp = malloc(((size_t)n + 1) * sizeof(*tmp));
    uint32_t       chunk = n > 1 ? n / 2 : 1;
    double         t0 = now_s();
    struct result  r;

    if (tmp == NULL)
        return n;
    for (;;) {
        int progress = 0;

        for (uint32_t i = 0; i < n;) {
            uint32_t cut = chunk < n - i ? chunk : n - i, m = n - cut;

            if (*runs >= SHRINK_RUNS || now_s() - t0 > SHRINK_SECONDS)
                goto out;
            memcpy(tmp, list, i * sizeof(*tmp));
            memcpy(tmp + i, list + i + cut, (n - i - cut) * sizeof(*tmp));
            (*runs)++;
            if (m > 0 && run(seed, 0, tmp, m, 0, &r) == 0 && r.failed &&
                strcmp(r.tag, tag) == 0) {
                n = r.at < m ? r.at + 1 : m;
                memcpy(list, tmp, n * sizeof(*tmp));
                progress = 1;
            } else {
                i += chunk;
            }
        }
        if (!progress && chunk == 1)
            break;
        if (!progress)
            chunk /= 2;
        else if (chunk > n / 2 && n > 1)
            chunk = n / 2;
    }
out:
    free(tmp);
    return n;
}

static void
print_list(FILE *f, uint64_t seed, const struct sim_tr *list, uint32_t n)
{
    char desc[200];

    fprintf(f, "seed %" PRIu64 "\n", seed);
    for (uint32_t i = 0; i < n; i++) {
        sim_tr_describe(&list[i], desc, sizeof(desc));
        fprintf(f, "t %u %u %u %u %u %016" PRIx64 "  # %u: %s\n",
            list[i].kind, list[i].a, list[i].b, list[i].c, list[i].d,
            list[i].rs, i, desc);
    }
}

static void
report(uint64_t seed, uint32_t len, struct sim_tr *list,
    const struct result *first)
{
    struct sim_cfg cfg;
    struct result  again;
    uint32_t       n = first->at < len ? first->at + 1 : len, runs = 0;
    char           c[300], path[64];
    FILE          *f;
    int            err, null = -1;

    sim_cfg_from_seed(seed, &cfg);
    describe_cfg(&cfg, c, sizeof(c));
    say("sim: FAIL seed %" PRIu64 " (%s)\n", seed, c);
    say("sim:   at transition %u of %u [%s] %s\n", first->at, len,
        first->tag, first->msg);
    say("sim: shrinking %u transitions...\n", n);
    fflush(stderr);
    /* The core may print a BUG line on each re-run: once is enough. */
    if ((err = dup(2)) >= 0 && (null = open("/dev/null", O_WRONLY)) >= 0) {
        dup2(null, 2);
        close(null);
    }
    n = shrink(seed, list, n, first->tag, &runs);
    if (err >= 0) {
        dup2(err, 2);
        close(err);
    }
    run(seed, 0, list, n, 0, &again);
    say("sim: shrunk to %u transition%s in %u runs; the replay %s:\n", n,
        n == 1 ? "" : "s", runs, again.failed && strcmp(again.tag,
            first->tag) == 0 ? "fails the same way" : "DOES NOT fail");
    say("sim:   [%s] %s\n", again.tag, again.msg);
    print_list(stdout, seed, list, n);
    if (fcntl(9, F_GETFD) != -1) {
        FILE *nine = fdopen(dup(9), "w");

        if (nine != NULL) {
            print_list(nine, seed, list, n);
            fclose(nine);
        }
    }
    snprintf(path, sizeof(path), "sim-fail-%" PRIu64 ".txt", seed);
    if ((f = fopen(path, "w")) != NULL) {
        print_list(f, seed, list, n);
        fclose(f);
    }
    say("sim: replay: tests/sim/sim --seed %" PRIu64 " --length %u  (or "
        "SIM_SEED=%" PRIu64 " make check; trace: tests/sim/sim --replay "
        "%s -v)\n", seed, len, seed, path);
}

/* --- One seed, replay ------------------------------------------------ */

static int
one_seed(uint64_t seed, uint32_t len, int verbose)
{
    struct sim_tr *list = calloc((size_t)len + 1, sizeof(*list));
    struct sim_cfg cfg;
    struct result  r;
    char           c[300];
    double         t0 = now_s();

    if (list == NULL || run(seed, 1, list, len, verbose, &r) != 0) {
        fprintf(stderr, "sim: cannot set up the world\n");
        free(list);
        return 99;
    }
    if (r.failed) {
        report(seed, len, list, &r);
        free(list);
        return 1;
    }
    sim_cfg_from_seed(seed, &cfg);
    describe_cfg(&cfg, c, sizeof(c));
    say("sim: seed %" PRIu64 ": %u transitions OK in %.2f s (%" PRIu64
        " requests, %" PRIu64 " peer datagrams; %s)\n", seed, len,
        now_s() - t0, r.nreq, r.ndata, c);
    print_coverage(r.st);
    free(list);
    return 0;
}

static int
replay_file(const char *path, int verbose)
{
    FILE          *f = fopen(path, "r");
    struct sim_tr *list = NULL;
    uint32_t       n = 0, cap = 0;
    uint64_t       seed = 0;
    char           line[512];
    struct result  r;

    if (f == NULL) {
        fprintf(stderr, "sim: %s: %s\n", path, strerror(errno));
        return 99;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        struct sim_tr t;

        if (sscanf(line, "seed %" SCNu64, &seed) == 1)
            continue;
        memset(&t, 0, sizeof(t));
        if (sscanf(line, "t %u %u %u %u %u %" SCNx64, &t.kind, &t.a, &t.b,
                &t.c, &t.d, &t.rs) != 6 || t.kind >= TR_N)
            continue;
        if (n == cap) {
            struct sim_tr *l;

            cap = cap ? cap * 2 : 64;
            if ((l = realloc(list, cap * sizeof(*l))) == NULL)
                break;
            list = l;
        }
        list[n++] = t;
    }
    fclose(f);
    if (run(seed, 0, list, n, verbose, &r) != 0) {
        free(list);
        return 99;
    }
    free(list);
    if (r.failed) {
        say("sim: replay of %s (seed %" PRIu64 ", %u transitions) fails at "
            "transition %u [%s] %s\n", path, seed, n, r.at, r.tag, r.msg);
        return 1;
    }
    say("sim: replay of %s (seed %" PRIu64 ", %u transitions) passes\n",
        path, seed, n);
    return 0;
}

/* --- The budget over many seeds -------------------------------------- */

static void *
worker(void *arg)
{
    struct job    *j = arg;
    struct sim_tr *list = NULL;
    uint32_t       cap = 0;
    struct result  r;

    for (;;) {
        uint64_t k, seed;
        uint32_t len;

        pthread_mutex_lock(&j->mu);
        k = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (k >= j->nseeds || __atomic_load_n(&j->stop, __ATOMIC_RELAXED))
            break;
        seed = j->first + k;
        len = j->len[k];
        if (len > cap) {
            free(list);
            cap = len;
            if ((list = calloc((size_t)cap + 1, sizeof(*list))) == NULL)
                break;
        }
        if (run(seed, 1, list, len, 0, &r) != 0)
            continue;
        pthread_mutex_lock(&j->mu);
        j->ntr += r.ntr;
        j->nreq += r.nreq;
        j->ndata += r.ndata;
        j->nseeds_done++;
        for (int i = 0; i < ST_N; i++)
            j->st[i] = i == ST_MAX_ALLOCS || i == ST_MAX_CHANS ?
                (r.st[i] > j->st[i] ? r.st[i] : j->st[i]) : j->st[i] + r.st[i];
        if (r.failed && (!j->have_fail || seed < j->fail_seed)) {
            j->have_fail = 1;
            j->fail_seed = seed;
            j->fail_len = len;
            j->fail = r;
            __atomic_store_n(&j->stop, 1, __ATOMIC_RELAXED);
        }
        pthread_mutex_unlock(&j->mu);
    }
    free(list);
    return NULL;
}

static int
budget_run(uint64_t first, uint64_t budget, int jobs)
{
    struct job   j;
    pthread_t    th[64];
    uint64_t     sum = 0, cap = 0;
    double       t0 = now_s(), dt;
    int          rc = 0, nth = 0;

    memset(&j, 0, sizeof(j));
    pthread_mutex_init(&j.mu, NULL);
    j.first = first;
    while (sum < budget) {
        uint32_t len = seed_length(first + j.nseeds);

        if (j.nseeds == cap) {
            uint32_t *l;

            cap = cap ? cap * 2 : 1024;
            if ((l = realloc(j.len, cap * sizeof(*l))) == NULL)
                return 99;
            j.len = l;
        }
        if (len > budget - sum)
            len = (uint32_t)(budget - sum);
        j.len[j.nseeds++] = len;
        sum += len;
    }
    say("sim: %" PRIu64 " transitions over %" PRIu64 " seeds (%" PRIu64
        "-%" PRIu64 ") on %d thread%s%s\n", budget, j.nseeds, first,
        first + j.nseeds - 1, jobs, jobs > 1 ? "s" : "",
#ifdef SIM_SANITIZED
        ", sanitizer build (smaller default budget)"
#else
        ""
#endif
        );
    for (int i = 0; i < jobs && i < 64; i++)
        if (pthread_create(&th[nth], NULL, worker, &j) == 0)
            nth++;
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    dt = now_s() - t0;
    say("sim: explored %" PRIu64 " transitions (%" PRIu64 " seeds, %" PRIu64
        " requests, %" PRIu64 " peer datagrams) in %.1f s: %.0f "
        "transitions/s\n", j.ntr, j.nseeds_done, j.nreq, j.ndata, dt,
        dt > 0 ? (double)j.ntr / dt : 0.0);
    print_coverage(j.st);
    if (j.have_fail) {
        struct sim_tr *list = calloc((size_t)j.fail_len + 1, sizeof(*list));
        struct result  r;

        if (list != NULL && run(j.fail_seed, 1, list, j.fail_len, 0,
                &r) == 0 && r.failed)
            report(j.fail_seed, j.fail_len, list, &r);
        else
            say("sim: FAIL seed %" PRIu64 " [%s] %s (did not replay!)\n",
                j.fail_seed, j.fail.tag, j.fail.msg);
        free(list);
        rc = 1;
    } else if (j.ntr != budget) {
        say("sim: FAIL explored %" PRIu64 " of %" PRIu64 " transitions\n",
            j.ntr, budget);
        rc = 99;
    } else {
        say("sim: OK\n");
    }
    free(j.len);
    pthread_mutex_destroy(&j.mu);
    return rc;
}

static void
usage(void)
{
    fprintf(stderr,
        "usage: sim [-v] [--black-box] [--jobs N] [--budget N] "
        "[--first-seed N]\n"
        "       sim [-v] --seed N [--length L]     one seed (also SIM_SEED)\n"
        "       sim [--jobs N] --soak N            N transitions, new seeds\n"
        "       sim [-v] --replay FILE             a saved transition list\n");
}

static int
jobs_default(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

int
main(int argc, char **argv)
{
    struct sim_crypto cr;
    struct sigaction  sa;
    uint64_t          seed = 0, budget = DEFAULT_BUDGET, first = 1;
    uint32_t          len = 0;
    int               have_seed = 0, verbose = 0, jobs = jobs_default();
    const char       *replay = NULL, *env;
    char              why[128];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "-v") == 0) {
            verbose = 1;
        } else if (strcmp(a, "--black-box") == 0) {
            sim_blackbox = 1;
        } else if (v != NULL && strcmp(a, "--seed") == 0) {
            seed = strtoull(v, NULL, 0);
            have_seed = 1;
            i++;
        } else if (v != NULL && strcmp(a, "--length") == 0) {
            len = (uint32_t)strtoul(v, NULL, 0);
            i++;
        } else if (v != NULL && strcmp(a, "--budget") == 0) {
            budget = strtoull(v, NULL, 0);
            i++;
        } else if (v != NULL && strcmp(a, "--soak") == 0) {
            budget = strtoull(v, NULL, 0);
            first = (uint64_t)time(NULL) * 1000 + (uint64_t)getpid() % 1000;
            i++;
        } else if (v != NULL && strcmp(a, "--first-seed") == 0) {
            first = strtoull(v, NULL, 0);
            i++;
        } else if (v != NULL && strcmp(a, "--jobs") == 0) {
            jobs = atoi(v);
            i++;
        } else if (v != NULL && strcmp(a, "--replay") == 0) {
            replay = v;
            i++;
        } else {
            usage();
            return 64;
        }
    }
    if (!have_seed && (env = getenv("SIM_SEED")) != NULL && *env != '\0') {
        seed = strtoull(env, NULL, 0);
        have_seed = 1;
    }
    if ((env = getenv("SIM_BUDGET")) != NULL && *env != '\0')
        budget = strtoull(env, NULL, 0);
    if ((env = getenv("SIM_BLACKBOX")) != NULL && atoi(env) > 0)
        sim_blackbox = 1;
    if ((env = getenv("SIM_JOBS")) != NULL && atoi(env) > 0)
        jobs = atoi(env);
    if (jobs < 1)
        jobs = 1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGABRT, &sa, NULL);
#ifndef SIM_SANITIZED
    sigaction(SIGSEGV, &sa, NULL);
#endif
    if (sim_crypto_init(&cr) != 0 ||
        sim_crypto_selftest(&cr, why, sizeof(why)) != 0) {
        fprintf(stderr, "sim: the simulation's own crypto fails its "
            "known-answer tests: %s\n", why);
        return 99;
    }
    sim_crypto_fini(&cr);
    if (replay != NULL)
        return replay_file(replay, verbose);
    if (have_seed)
        return one_seed(seed, len ? len : seed_length(seed), verbose);
    return budget_run(first, budget, jobs);
}
