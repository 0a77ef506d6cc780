/* main.c - firezone-relay entry point: the command line (SPEC §9.4), the
 * configuration's sources and OS checks (SPEC §9.1, §9.3), the secret
 * (SPEC §3.1), the credentials subcommand (SPEC §3.8), then the master.
 *
 * The config module is pure: this file reads the file, looks up the
 * environment, collects the long flags and checks what needs the OS
 * (user, group, portal.ca_file, XDP support, the secret file's content).
 * It keeps those sources so that SIGHUP re-reads the same ones.
 *
 * Exit codes (SPEC §10.6): 0, 1 runtime fatal, 64 usage, 78 config. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cfg.h"
#include "master/log.h"
#include "master/master.h"
#include "master/rnd.h"
#include "master/runtime.h"
#include "rly_err.h"

#define PROG            "firezone-relay"
#define EXIT_USAGE      64
#define EXIT_CONFIG     78
#define FILE_MAX        (16 * 1024 * 1024)
#define DEFAULT_TTL     86400
#define SALT_LEN        16

enum run_mode { MODE_RUN, MODE_CHECK, MODE_DUMP };

/* The sources of the configuration, kept for SIGHUP. */
struct app {
    const char         *file;           /* -c FILE, or NULL: default */
    struct cfg_flag    *flags;          /* borrowed from argv */
    size_t              nflags;
    enum run_mode       mode;
    struct cfg         *cfg;            /* in force */
    struct runtime      rt;
};

/* --- Usage --- */

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " [-c FILE] [-t | -T] [--flag VALUE ...]\n"
        "       " PROG " credentials [-c FILE] [--salt SALT] "
        "[--ttl SECONDS | --expiry UNIX]\n"
        "       " PROG " -h | --help | -V | --version\n"
        "\n"
        "  -c FILE        configuration file (default %s)\n"
        "  -t             check the configuration and exit\n"
        "  -T             check, then print the effective configuration\n"
        "  -h, --help     this text\n"
        "  -V, --version  print the version\n"
        "\n"
        "Flags (override the environment and the file):\n",
        cfg_default_file());
    for (int k = 0; k < CFG_NKEYS; k++) {
        const char *flag = cfg_key_flag((enum cfg_key)k);

        if (flag != NULL)
            fprintf(f, "  --%-20s %s\n", flag,
                cfg_key_name((enum cfg_key)k));
    }
}

static int
usage_error(const char *what, const char *arg)
{
    fprintf(stderr, PROG ": %s%s\n"
        "Try '" PROG " --help' for more information.\n", what, arg);
    return EXIT_USAGE;
}

/* --- Files --- */

/* Reads a whole file into a NUL-terminated buffer.  Returns 0 or an errno
 * value. */
static int
read_file(const char *path, char **out, size_t *outlen)
{
    char   *buf = NULL;
    size_t  len = 0, cap = 0;
    int     fd, err = 0;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno;
    for (;;) {
        ssize_t n;

        if (cap - len < 4096) {
            char *nb;

            if (cap >= FILE_MAX) {
                err = EFBIG;
                break;
            }
            cap = cap == 0 ? 8192 : cap * 2;
            if ((nb = realloc(buf, cap + 1)) == NULL) {
                err = ENOMEM;
                break;
            }
            buf = nb;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (err != 0) {
        free(buf);
        return err;
    }
    if (buf == NULL && (buf = malloc(1)) == NULL)
        return ENOMEM;
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

/* The first line of a secret file, without its line end.  Returns 0 or an
 * errno value (EINVAL: empty or over-long line). */
static int
read_secret_file(const char *path, char *out, size_t size)
{
    char   *buf;
    size_t  len, n;
    int     err;

    if ((err = read_file(path, &buf, &len)) != 0)
        return err;
    n = strcspn(buf, "\r\n");
    if (n == 0 || n >= size) {
        free(buf);
        return EINVAL;
    }
    memcpy(out, buf, n);
    out[n] = '\0';
    memset(buf, 0, len);
    free(buf);
    return 0;
}

/* mkdir -p with mode 0700 for what is missing. */
static int
make_dirs(const char *dir)
{
    char    path[4096];
    size_t  len = strlen(dir);

    if (len == 0 || len >= sizeof(path))
        return len == 0 ? 0 : ENAMETOOLONG;
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return errno;
        path[i] = i == len ? '\0' : '/';
    }
    return 0;
}

/* Writes secret + newline to path through a temporary file and a rename,
 * creating the directory (0700) first.  Returns 0 or an errno value. */
static int
write_secret_file(const char *path, const char *secret)
{
    char        dir[4096], tmp[4200];
    const char *slash = strrchr(path, '/');
    size_t      len = strlen(secret);
    int         fd, err = 0;

    if (slash != NULL && slash != path) {
        if ((size_t)(slash - path) >= sizeof(dir))
            return ENAMETOOLONG;
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
        if ((err = make_dirs(dir)) != 0)
            return err;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    if (fchmod(fd, 0600) != 0 || write(fd, secret, len) != (ssize_t)len ||
        write(fd, "\n", 1) != 1 || fsync(fd) != 0)
        err = errno != 0 ? errno : EIO;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err == 0 && rename(tmp, path) != 0)
        err = errno;
    if (err != 0)
        unlink(tmp);
    return err;
}

/* --- Loading the configuration --- */

static const char *
env_get(void *ud, const char *name)
{
    return getenv(name);
}

/* Checks that need the OS (SPEC §9.3), recorded like the config's own. */
static void
os_checks(struct cfg *c, int reloading)
{
    char    secret[RT_SECRET_MAX];
    int     fd, err;

    if (c->user != NULL && getpwnam(c->user) == NULL)
        cfg_key_error(c, CFG_KEY_user, "no such user");
    if (c->group != NULL && getgrnam(c->group) == NULL)
        cfg_key_error(c, CFG_KEY_group, "no such group");
    if (c->portal_ca_file != NULL) {
        if ((fd = open(c->portal_ca_file, O_RDONLY | O_CLOEXEC)) < 0)
            cfg_key_error(c, CFG_KEY_portal_ca_file, "cannot read: %s",
                strerror(errno));
        else
            close(fd);
    }
#ifndef HAVE_XDP
    if (c->xdp_interface != NULL)
        cfg_key_error(c, CFG_KEY_xdp_interface,
            "built without XDP support");
#endif
    /* A secret file that will be used must hold a valid secret.  Not on
     * reload: the secret stays (SPEC §10.5), and after a privilege drop
     * the file may no longer be readable. */
    if (!reloading && c->auth_secret == NULL &&
        cfg_mode(c) == CFG_MODE_STANDALONE && c->auth_secret_file != NULL) {
        err = read_secret_file(c->auth_secret_file, secret, sizeof(secret));
        if (err == EINVAL || (err == 0 && !auth_secret_ok(secret)))
            cfg_key_error(c, CFG_KEY_auth_secret_file, "the file's first "
                "line must be 32-255 characters from A-Z a-z 0-9 - . _ ~ "
                "+ / =");
        else if (err != 0 && err != ENOENT)
            cfg_key_error(c, CFG_KEY_auth_secret_file, "cannot read: %s",
                strerror(err));
        memset(secret, 0, sizeof(secret));
    }
}

/* Reads every source.  Returns the cfg, or NULL after printing (to stderr,
 * or to the log when reloading) why; *status is the exit code then. */
static struct cfg *
load_config(const struct app *a, int reloading, int *status)
{
    struct cfg_input    in;
    struct cfg         *c;
    const char         *path = a->file != NULL ? a->file : cfg_default_file();
    char               *text = NULL;
    size_t              len = 0;
    int                 err;

    memset(&in, 0, sizeof(in));
    err = read_file(path, &text, &len);
    if (err != 0 && (a->file != NULL || err != ENOENT)) {
        if (reloading)
            log_error(log_get(), "%s: %s", path, strerror(err));
        else
            fprintf(stderr, PROG ": %s: %s\n", path, strerror(err));
        *status = EXIT_CONFIG;
        return NULL;
    }
    if (err == 0) {
        in.file = path;
        in.text = text;
        in.len = len;
    }
    in.getenv_fn = env_get;
    in.flags = a->flags;
    in.nflags = a->nflags;
    c = cfg_load(&in);
    free(text);
    if (c == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        *status = 1;
        return NULL;
    }
    os_checks(c, reloading);
    if (cfg_nerrors(c) == 0)
        return c;
    for (size_t i = 0; i < cfg_nerrors(c); i++) {
        if (reloading)
            log_error(log_get(), "%s", cfg_error(c, i));
        else
            fprintf(stderr, "%s\n", cfg_error(c, i));
    }
    cfg_free(c);
    *status = EXIT_CONFIG;
    return NULL;
}

static void
emit_stdout(void *ud, const char *s, size_t len)
{
    fwrite(s, 1, len, stdout);
}

/* --- Command line --- */

/* Parses argv (without the program name's subcommand).  Returns -1 to go
 * on, or an exit status. */
static int
parse_args(struct app *a, int argc, char **argv)
{
    if ((a->flags = calloc((size_t)argc, sizeof(*a->flags))) == NULL)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char     *arg = argv[i];
        const char     *value;
        enum cfg_key    k;

        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            printf(PROG " %s\n", PACKAGE_VERSION);
            return 0;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(arg, "-t") == 0) {
            a->mode = a->mode == MODE_DUMP ? MODE_DUMP : MODE_CHECK;
        } else if (strcmp(arg, "-T") == 0) {
            a->mode = MODE_DUMP;
        } else if (strcmp(arg, "-c") == 0) {
            if (i + 1 >= argc)
                return usage_error("missing argument for ", arg);
            a->file = argv[++i];
        } else if (strncmp(arg, "-c", 2) == 0 && arg[2] != '\0') {
            a->file = arg + 2;
        } else if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0' &&
            (k = cfg_flag_lookup(arg, &value)) != CFG_KEY_NONE) {
            if (value == NULL) {
                if (i + 1 >= argc)
                    return usage_error("missing argument for ", arg);
                value = argv[++i];
            }
            a->flags[a->nflags].name = cfg_key_flag(k);
            a->flags[a->nflags++].value = value;
        } else if (arg[0] == '-') {
            return usage_error("unknown option ", arg);
        } else {
            return usage_error("unexpected argument ", arg);
        }
    }
    return -1;
}

/* --- Runtime settings --- */

static void
fill_reload(const struct cfg *c, struct atab_reload *r)
{
    memset(r, 0, sizeof(*r));
    r->error_rate = c->error_rate;
    r->error_burst = c->error_burst;
    r->log_level = (uint32_t)c->log_level;
    if (cfg_peer_policy(c, &r->policy) != 0)
        peer_policy_init(&r->policy);   /* not for a cfg without errors */
}

static uint32_t
resolve_workers(uint32_t n)
{
    long cpus;

    if (n != 0)
        return n;
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    if (cpus > ATAB_MAX_WORKERS)
        cpus = ATAB_MAX_WORKERS;
    return (uint32_t)cpus;
}

static void
fill_runtime(const struct cfg *c, struct runtime *rt)
{
    memset(rt, 0, sizeof(*rt));
    rt->public4 = c->public_ip4;
    rt->public6 = c->public_ip6;
    rt->bind4 = c->bind_ip4;
    rt->bind4.port = c->listen_port;
    rt->bind6 = c->bind_ip6;
    rt->bind6.port = c->listen_port;
    rt->listen_port = c->listen_port;
    rt->port_min = c->port_min;
    rt->port_max = c->port_max;
    rt->max_allocs = c->max_allocations;
    rt->max_chans = c->max_channels;
    rt->nonce_table_size = c->nonce_table_size;
    rt->nworkers = resolve_workers(c->workers);
    rt->portal_mode = cfg_mode(c) == CFG_MODE_PORTAL;
    rt->log_json = c->log_format == CFG_LOG_JSON;
    rt->seeded = cfg_key_is_set(c, CFG_KEY_rng_seed);
    rt->seed = c->rng_seed;
    if (c->user != NULL)
        snprintf(rt->user, sizeof(rt->user), "%s", c->user);
    if (c->group != NULL)
        snprintf(rt->group, sizeof(rt->group), "%s", c->group);
    fill_reload(c, &rt->reload);
    /* Portal and HTTP (master/portal.c, master/http.c). */
    rt->portal_url = c->portal_url;
    rt->portal_token = c->portal_token;
    rt->portal_name = c->portal_name;
    rt->portal_ca_file = c->portal_ca_file;
    rt->health = c->health_listen;
    rt->metrics = c->metrics_enabled;
    /* XDP offload (master/xdp.c); attached by the master. */
    rt->xdp_ifname = c->xdp_interface;
    rt->xdp_generic = c->xdp_mode == CFG_XDP_GENERIC;
    rt->xdp_int4 = c->xdp_int_ip4;
    rt->xdp_int6 = c->xdp_int_ip6;
    rt->xdp_efd = -1;
}

/* SPEC §3.1.  Returns 0 or an exit status. */
static int
obtain_secret(const struct cfg *c, struct runtime *rt)
{
    const char *path = c->auth_secret_file;
    struct rnd  rnd;
    int         err;

    if (c->auth_secret != NULL) {
        snprintf(rt->secret, sizeof(rt->secret), "%s", c->auth_secret);
        return 0;
    }
    rnd_init(&rnd, rt->seeded, rt->seed, RND_STREAM_SECRET);
    if (!rt->portal_mode && path != NULL) {
        err = read_secret_file(path, rt->secret, sizeof(rt->secret));
        if (err == 0 && auth_secret_ok(rt->secret))
            return 0;
        if (err != ENOENT) {
            log_error(log_get(), "auth.secret_file %s: %s", path,
                err == 0 || err == EINVAL ? "not a valid secret" :
                strerror(err));
            return err == 0 || err == EINVAL ? EXIT_CONFIG : 1;
        }
    }
    if (auth_secret_generate(rnd_fill, &rnd, rt->secret) != 0) {
        log_error(log_get(), "cannot generate a secret");
        return 1;
    }
    if (rt->portal_mode || path == NULL)
        return 0;
    if ((err = write_secret_file(path, rt->secret)) != 0) {
        log_error(log_get(), "cannot write auth.secret_file %s: %s", path,
            strerror(err));
        return 1;
    }
    log_info(log_get(), "generated a new secret in %s", path);
    return 0;
}

/* --- SIGHUP --- */

static void
change_cb(void *ud, enum cfg_key k, const char *name, int reloadable)
{
    if (reloadable)
        log_info(log_get(), "%s: changed", name);
    else
        log_warn(log_get(), "%s: changed; requires restart (ignored)",
            name);
}

static int
reload_config(struct runtime *rt, struct atab_reload *out)
{
    struct app *a = rt->reload_ud;
    struct cfg *next;
    int         status;

    if ((next = load_config(a, 1, &status)) == NULL)
        return -1;
    cfg_reload_apply(a->cfg, next, change_cb, NULL);
    cfg_free(next);
    fill_reload(a->cfg, out);
    return 0;
}

/* --- credentials (SPEC §3.8) --- */

static int
parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static int
salt_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > 255)
        return 0;
    for (; *s != '\0'; s++)
        if (*s <= ' ' || *s > '~' || *s == ':')
            return 0;
    return 1;
}

static int
random_salt(const struct cfg *c, char out[SALT_LEN + 1])
{
    static const char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    struct rnd  rnd;
    size_t      n = 0;

    rnd_init(&rnd, cfg_key_is_set(c, CFG_KEY_rng_seed), c->rng_seed,
        RND_STREAM_SALT);
    while (n < SALT_LEN) {
        uint8_t b;

        if (rnd_fill(&rnd, &b, 1) != 0)
            return -1;
        if (b < 248)            /* 248 = 4 * 62: no modulo bias */
            out[n++] = alnum[b % 62];
    }
    out[n] = '\0';
    return 0;
}

/* One "--name VALUE" or "--name=VALUE" option; returns 1 when arg is it. */
static int
take_opt(int argc, char **argv, int *i, const char *name, const char **val,
    int *missing)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        *missing = 1;
        return 1;
    }
    *val = argv[++*i];
    return 1;
}

static struct cfg *
credentials_config(const char *file)
{
    const char *path = file != NULL ? file : cfg_default_file();
    struct cfg *c;
    char       *text = NULL;
    size_t      len;
    int         err;

    if ((c = cfg_new()) == NULL)
        return NULL;
    err = read_file(path, &text, &len);
    if (err != 0 && (file != NULL || err != ENOENT))
        cfg_key_error(c, CFG_KEY_NONE, "%s: %s", path, strerror(err));
    if (err == 0)
        cfg_load_yaml(c, path, text, len);
    free(text);
    cfg_apply_env(c, env_get, NULL);
    return c;
}

static int
credentials_secret(const struct cfg *c, char *out, size_t size)
{
    int err;

    if (c->auth_secret != NULL) {
        snprintf(out, size, "%s", c->auth_secret);
        return 0;
    }
    if (c->auth_secret_file == NULL) {
        fprintf(stderr, PROG ": no secret: set auth.secret or "
            "auth.secret_file\n");
        return EXIT_CONFIG;
    }
    err = read_secret_file(c->auth_secret_file, out, size);
    if (err == 0 && !auth_secret_ok(out))
        err = EINVAL;
    if (err != 0) {
        fprintf(stderr, PROG ": no secret: auth.secret is not set and "
            "auth.secret_file %s: %s\n", c->auth_secret_file,
            err == EINVAL ? "not a valid secret" : strerror(err));
        return EXIT_CONFIG;
    }
    return 0;
}

static int
credentials_args(int argc, char **argv, const char **file,
    const char **salt, uint64_t *expiry, int *has_expiry)
{
    const char *ttl_s = NULL, *exp_s = NULL;
    uint64_t    ttl = DEFAULT_TTL;
    int         missing = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0) {
            if (i + 1 >= argc)
                return usage_error("missing argument for ", "-c");
            *file = argv[++i];
        } else if (take_opt(argc, argv, &i, "--salt", salt, &missing) ||
            take_opt(argc, argv, &i, "--ttl", &ttl_s, &missing) ||
            take_opt(argc, argv, &i, "--expiry", &exp_s, &missing)) {
            if (missing)
                return usage_error("missing argument for ", argv[i]);
        } else {
            return usage_error("credentials: unknown argument ", argv[i]);
        }
    }
    if (ttl_s != NULL && exp_s != NULL)
        return usage_error("credentials: ", "--ttl and --expiry exclude "
            "each other");
    if ((ttl_s != NULL && parse_u64(ttl_s, &ttl) != 0) ||
        (exp_s != NULL && parse_u64(exp_s, expiry) != 0))
        return usage_error("credentials: ", "--ttl and --expiry take "
            "a decimal number of seconds");
    if (*salt != NULL && !salt_ok(*salt))
        return usage_error("credentials: ", "the salt must be 1-255 "
            "printable ASCII characters without ':' or space");
    if (exp_s == NULL) {
        uint64_t now = (uint64_t)time(NULL);

        if (ttl > UINT64_MAX - now)
            return usage_error("credentials: ", "--ttl is too large");
        *expiry = now + ttl;
    }
    *has_expiry = 1;
    return -1;
}

static int
credentials(int argc, char **argv)
{
    const char *file = NULL, *salt = NULL;
    char        gensalt[SALT_LEN + 1];
    char        secret[RT_SECRET_MAX];
    char        password[AUTH_PASSWORD_LEN + 1];
    uint64_t    expiry = 0;
    int         has_expiry = 0, rc;
    struct cfg *c;

    if ((rc = credentials_args(argc, argv, &file, &salt, &expiry,
        &has_expiry)) >= 0)
        return rc;
    if ((c = credentials_config(file)) == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    rc = EXIT_CONFIG;
    if (cfg_nerrors(c) > 0) {
        for (size_t i = 0; i < cfg_nerrors(c); i++)
            fprintf(stderr, "%s\n", cfg_error(c, i));
        goto out;
    }
    if ((rc = credentials_secret(c, secret, sizeof(secret))) != 0)
        goto out;
    rc = 1;
    if (salt == NULL) {
        if (random_salt(c, gensalt) != 0)
            goto out;
        salt = gensalt;
    }
    if (auth_password(secret, expiry, (const uint8_t *)salt, strlen(salt),
        password) != 0)
        goto out;
    printf("username=%llu:%s\npassword=%s\nrealm=%s\n",
        (unsigned long long)expiry, salt, password, AUTH_REALM);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    memset(secret, 0, sizeof(secret));
    cfg_free(c);
    return rc;
}

/* --- main --- */

static int
run(struct app *a)
{
    struct runtime *rt = &a->rt;
    int             rc;

    fill_runtime(a->cfg, rt);
    log_setup("master", rt->log_json, (enum rly_log_level)a->cfg->log_level);
    if (rt->seeded)
        log_warn(log_get(), "rng_seed is set: secret, ports and nonces are "
            "predictable (for tests only)");
    if ((rc = obtain_secret(a->cfg, rt)) != 0)
        return rc;
    rt->reload_fn = reload_config;
    rt->reload_ud = a;
    if (!rt->portal_mode)
        log_info(log_get(), "standalone mode: get TURN credentials with "
            "'firezone-relay credentials%s%s'", a->file ? " -c " : "",
            a->file ? a->file : "");
    rc = master_run(rt);
    memset(rt->secret, 0, sizeof(rt->secret));
    return rc;
}

int
main(int argc, char **argv)
{
    struct app *a;
    int         rc;

    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "credentials") == 0)
        return credentials(argc - 1, argv + 1);
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return 1;
    if ((rc = parse_args(a, argc, argv)) >= 0)
        goto out;
    if ((a->cfg = load_config(a, 0, &rc)) == NULL)
        goto out;
    switch (a->mode) {
    case MODE_CHECK:
        fprintf(stderr, PROG ": configuration OK\n");
        rc = 0;
        break;
    case MODE_DUMP:
        cfg_dump(a->cfg, emit_stdout, NULL);
        rc = fflush(stdout) == 0 ? 0 : 1;
        break;
    case MODE_RUN:
        rc = run(a);
        break;
    }
out:
    cfg_free(a->cfg);
    free(a->flags);
    free(a);
    return rc;
}
