/* portal_msg.c - pure parts of the portal connection (SPEC §7).
 *
 * Everything here is text in, text or a verdict out: the master's
 * portal.c owns the sockets, wslay and the timers.  Inputs come from the
 * network (portal replies, HTTP headers), so every parser bounds its
 * lengths and reduces what it copies for logs to printable ASCII.
 * RFC 3986 (URL), RFC 6455 §4 (handshake), RFC 9110 §5.6.7 and §10.2.3
 * (HTTP-date, Retry-After), RFC 9457 (problem details). */
#include <arpa/inet.h>
#include <json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "portal_msg.h"
#include "rly_err.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---- small string helpers ---- */

/* Appends n bytes of s to buf (size bytes, *len used, NUL-terminated). */
static int
put_n(char *buf, size_t size, size_t *len, const char *s, size_t n)
{
    if (n >= size - *len)
        return RLY_ERR_NOSPACE;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
    return 0;
}

static int
put(char *buf, size_t size, size_t *len, const char *s)
{
    return put_n(buf, size, len, s, strlen(s));
}

/* Copies up to n bytes of s into out (size > 0) as printable ASCII: other
 * bytes become '?'.  Cuts to fit. */
static void
copy_printable(char *out, size_t size, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n && i + 1 < size; i++)
        out[i] = s[i] >= 0x20 && s[i] <= 0x7e ? s[i] : '?';
    out[i] = '\0';
}

static int
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces and tabs: *s and *n describe the rest. */
static void
trim_ows(const char **s, size_t *n)
{
    while (*n > 0 && is_ows(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_ows((*s)[*n - 1]))
        (*n)--;
}

/* ---- URL ---- */

int
portal_msg_form_encode(const char *s, char *buf, size_t size, size_t *len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t            start = *len;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char          esc[3] = { '%', hex[c >> 4], hex[c & 15] };
        int           rc;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || c == '*' || c == '-' || c == '.' ||
            c == '_')
            rc = put_n(buf, size, len, s, 1);
        else if (c == ' ')
            rc = put_n(buf, size, len, "+", 1);
        else
            rc = put_n(buf, size, len, esc, 3);
        if (rc != 0) {
            *len = start;
            buf[start] = '\0';
            return rc;
        }
    }
    return 0;
}

/* Reads the scheme before "://"; sets *tls and returns the length used
 * (scheme and "://"), or 0 when unsupported. */
static size_t
parse_scheme(const char *url, int *tls)
{
    static const struct { const char *name; int tls; } schemes[] = {
        { "http", 0 }, { "ws", 0 }, { "https", 1 }, { "wss", 1 },
    };
    const char *sep = strstr(url, "://");
    size_t      n;

    if (sep == NULL)
        return 0;
    n = (size_t)(sep - url);
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (strlen(schemes[i].name) == n &&
            strncasecmp(url, schemes[i].name, n) == 0) {
            *tls = schemes[i].tls;
            return n + 3;
        }
    }
    return 0;
}

static int
parse_port(const char *s, size_t n, uint16_t *port)
{
    unsigned v = 0;

    if (n > 5)
        return RLY_ERR_INVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return RLY_ERR_INVAL;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (n > 0 && (v == 0 || v > 65535))
        return RLY_ERR_INVAL;
    if (n > 0)
        *port = (uint16_t)v;
    return 0;
}

static int
is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
        c == '~';
}

/* Splits the authority a (n bytes) into out->host, host_is_ip and port. */
static int
parse_authority(const char *a, size_t n, struct portal_url *out)
{
    const char *port = NULL, *end = a + n, *h = a, *hend;
    uint8_t     ip[16];

    if (memchr(a, '@', n) != NULL)
        return RLY_ERR_INVAL;
    if (n > 0 && a[0] == '[') {
        if ((hend = memchr(a, ']', n)) == NULL)
            return RLY_ERR_INVAL;
        h = a + 1;
        if (hend + 1 < end && hend[1] != ':')
            return RLY_ERR_INVAL;
        port = hend + 1 < end ? hend + 2 : end;
    } else {
        hend = memchr(a, ':', n);
        if (hend == NULL)
            hend = end;
        port = hend < end ? hend + 1 : end;
        for (const char *p = h; p < hend; p++)
            if (!is_host_char(*p))
                return RLY_ERR_INVAL;
    }
    if (hend == h)
        return RLY_ERR_INVAL;
    if ((size_t)(hend - h) >= sizeof(out->host))
        return RLY_ERR_NOSPACE;
    memcpy(out->host, h, (size_t)(hend - h));
    out->host[hend - h] = '\0';
    if (a[0] == '[') {
        if (inet_pton(AF_INET6, out->host, ip) != 1)
            return RLY_ERR_INVAL;
        out->host_is_ip = 1;
    } else {
        out->host_is_ip = inet_pton(AF_INET, out->host, ip) == 1;
    }
    return parse_port(port, (size_t)(end - port), &out->port);
}

static int
put_query_ip(char *buf, size_t size, size_t *len, const char *key,
    const struct addr *a, uint8_t family)
{
    char ip[INET6_ADDRSTRLEN];
    int  rc;

    if (a == NULL || a->family == ADDR_NONE)
        return 0;
    if (a->family != family)
        return RLY_ERR_INVAL;
    addr_format_ip(a, ip, sizeof(ip));
    if ((rc = put(buf, size, len, key)) != 0)
        return rc;
    if ((rc = portal_msg_form_encode(ip, buf, size, len)) != 0)
        return rc;
    return put(buf, size, len, "&");
}

static int
build_target(const struct portal_url_in *in, const char *path, size_t n,
    struct portal_url *out)
{
    char   *t = out->target, port[8];
    size_t  len = 0, size = sizeof(out->target);
    int     rc;

    while (n > 0 && path[n - 1] == '/')
        n--;
    t[0] = '\0';
    if ((rc = put_n(t, size, &len, path, n)) != 0 ||
        (rc = put(t, size, &len, "/relay/websocket?")) != 0)
        return rc;
    if (in->name != NULL &&
        ((rc = put(t, size, &len, "name=")) != 0 ||
         (rc = portal_msg_form_encode(in->name, t, size, &len)) != 0 ||
         (rc = put(t, size, &len, "&")) != 0))
        return rc;
    if ((rc = put_query_ip(t, size, &len, "ipv4=", in->ip4, ADDR_V4)) != 0 ||
        (rc = put_query_ip(t, size, &len, "ipv6=", in->ip6, ADDR_V6)) != 0)
        return rc;
    snprintf(port, sizeof(port), "%u", (unsigned)in->port);
    if ((rc = put(t, size, &len, "port=")) != 0 ||
        (rc = put(t, size, &len, port)) != 0)
        return rc;
    return 0;
}

int
portal_msg_url_build(const struct portal_url_in *in, struct portal_url *out)
{
    const char *rest;
    size_t      used, auth_n, path_n;
    uint16_t    defport;
    int         rc;

    memset(out, 0, sizeof(*out));
    if (in->url == NULL)
        return RLY_ERR_INVAL;
    for (const char *p = in->url; *p != '\0'; p++)
        if (*p < 0x21 || *p > 0x7e)
            return RLY_ERR_INVAL;
    if ((used = parse_scheme(in->url, &out->tls)) == 0)
        return RLY_ERR_INVAL;
    rest = in->url + used;
    defport = out->tls ? 443 : 80;
    out->port = defport;
    auth_n = strcspn(rest, "/?#");
    if ((rc = parse_authority(rest, auth_n, out)) != 0)
        return rc;
    path_n = strcspn(rest + auth_n, "?#");
    if ((rc = build_target(in, rest + auth_n, path_n, out)) != 0)
        return rc;
    if (strchr(out->host, ':') != NULL)
        snprintf(out->host_header, sizeof(out->host_header), "[%s]",
            out->host);
    else
        snprintf(out->host_header, sizeof(out->host_header), "%s",
            out->host);
    if (out->port != defport) {
        size_t n = strlen(out->host_header);

        snprintf(out->host_header + n, sizeof(out->host_header) - n, ":%u",
            (unsigned)out->port);
    }
    if ((size_t)snprintf(out->url, sizeof(out->url), "%s://%s%s",
            out->tls ? "wss" : "ws", out->host_header, out->target) >=
            sizeof(out->url))
        return RLY_ERR_NOSPACE;
    return 0;
}

/* ---- Phoenix messages: outgoing ---- */

void
portal_msg_sess_init(struct portal_sess *s)
{
    memset(s, 0, sizeof(*s));
}

/* Adds val under key; frees val when it cannot. */
static int
add(struct json_object *o, const char *key, struct json_object *val)
{
    if (val == NULL)
        return -1;
    if (json_object_object_add(o, key, val) != 0) {
        json_object_put(val);
        return -1;
    }
    return 0;
}

/* {"topic":T,"event":E,"payload":P,"ref":R} as a malloc'd string; takes
 * ownership of payload. */
static char *
build_msg(const char *topic, const char *event, struct json_object *payload,
    uint64_t ref)
{
    struct json_object *o;
    const char         *text;
    char               *out = NULL;

    if ((o = json_object_new_object()) == NULL) {
        json_object_put(payload);
        return NULL;
    }
    if (add(o, "topic", json_object_new_string(topic)) != 0 ||
        add(o, "event", json_object_new_string(event)) != 0) {
        json_object_put(payload);
        goto out;
    }
    if (add(o, "payload", payload) != 0 ||
        add(o, "ref", json_object_new_int64((int64_t)ref)) != 0)
        goto out;
    if ((text = json_object_to_json_string_ext(o, JSON_FLAGS)) != NULL)
        out = strdup(text);
out:
    json_object_put(o);
    return out;
}

char *
portal_msg_join(struct portal_sess *s, const char *secret)
{
    struct json_object *payload;
    char               *text;

    if ((payload = json_object_new_object()) == NULL)
        return NULL;
    if (add(payload, "stamp_secret", json_object_new_string(secret)) != 0) {
        json_object_put(payload);
        return NULL;
    }
    if ((text = build_msg("relay", "phx_join", payload, s->next_ref)) ==
            NULL)
        return NULL;
    s->join_ref = s->next_ref++;
    s->join_sent = 1;
    return text;
}

char *
portal_msg_heartbeat(struct portal_sess *s, int *overdue)
{
    struct json_object *payload;
    char               *text;

    *overdue = 0;
    if ((payload = json_object_new_object()) == NULL)
        return NULL;
    if ((text = build_msg("phoenix", "heartbeat", payload, s->next_ref)) ==
            NULL)
        return NULL;
    /* Keep the newest refs; past the limit the caller reconnects anyway. */
    if (s->nhb == sizeof(s->hb_ref) / sizeof(s->hb_ref[0])) {
        memmove(s->hb_ref, s->hb_ref + 1,
            (s->nhb - 1) * sizeof(s->hb_ref[0]));
        s->nhb--;
        *overdue = 1;
    }
    s->hb_ref[s->nhb++] = s->next_ref++;
    if (s->nhb > PORTAL_HB_MAX_OUTSTANDING)
        *overdue = 1;
    return text;
}

/* ---- Phoenix messages: incoming ---- */

/* The string member key of o, with its length, or NULL. */
static const char *
get_str(struct json_object *o, const char *key, size_t *n)
{
    struct json_object *v;

    if (o == NULL || !json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    *n = (size_t)json_object_get_string_len(v);
    return json_object_get_string(v);
}

/* 1 when the string member key of o is exactly want (embedded NULs
 * included in the comparison). */
static int
str_is(struct json_object *o, const char *key, const char *want)
{
    size_t      n;
    const char *v = get_str(o, key, &n);

    return v != NULL && n == strlen(want) && memcmp(v, want, n) == 0;
}

static struct json_object *
get_obj(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (o == NULL || !json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_object))
        return NULL;
    return v;
}

/* Reads "ref": an integer >= 0 or a string of 1-19 digits. */
static int
get_ref(struct json_object *root, uint64_t *ref)
{
    struct json_object *v;
    const char         *s;
    size_t              n;
    uint64_t            r = 0;

    if (!json_object_object_get_ex(root, "ref", &v) || v == NULL)
        return 0;
    if (json_object_is_type(v, json_type_int)) {
        int64_t i = json_object_get_int64(v);

        if (i < 0)
            return 0;
        *ref = (uint64_t)i;
        return 1;
    }
    if (!json_object_is_type(v, json_type_string))
        return 0;
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (n == 0 || n > 19)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        r = r * 10 + (uint64_t)(s[i] - '0');
    }
    *ref = r;
    return 1;
}

static int
take_heartbeat(struct portal_sess *s, uint64_t ref)
{
    for (unsigned i = 0; i < s->nhb; i++) {
        if (s->hb_ref[i] != ref)
            continue;
        memmove(s->hb_ref + i, s->hb_ref + i + 1,
            (s->nhb - i - 1) * sizeof(s->hb_ref[0]));
        s->nhb--;
        return 1;
    }
    return 0;
}

static enum portal_action
on_reply(struct portal_sess *s, struct json_object *root,
    struct portal_event *ev)
{
    struct json_object *payload = get_obj(root, "payload");
    struct json_object *resp = get_obj(payload, "response");
    const char         *reason;
    size_t              n;

    if (str_is(root, "topic", "relay") && str_is(payload, "status", "error") &&
        str_is(resp, "reason", "unmatched topic"))
        return PORTAL_ACT_REJOIN;
    if (ev->has_ref && s->join_sent && ev->ref == s->join_ref) {
        if (str_is(payload, "status", "ok"))
            return PORTAL_ACT_JOINED;
        if (str_is(payload, "status", "error")) {
            if ((reason = get_str(resp, "reason", &n)) != NULL)
                copy_printable(ev->detail, sizeof(ev->detail), reason, n);
            return PORTAL_ACT_LOGIN_FAILED;
        }
    }
    if (ev->has_ref && take_heartbeat(s, ev->ref))
        return PORTAL_ACT_HEARTBEAT_ANSWERED;
    return PORTAL_ACT_IGNORED;
}

static enum portal_action
warn(struct portal_event *ev, const char *what, const char *name, size_t n)
{
    char clean[64];

    copy_printable(clean, sizeof(clean), name, n);
    snprintf(ev->detail, sizeof(ev->detail), "%s \"%s\"", what, clean);
    return PORTAL_ACT_WARN_UNKNOWN;
}

static enum portal_action
classify(struct portal_sess *s, struct json_object *root,
    struct portal_event *ev)
{
    struct json_object *payload = get_obj(root, "payload");
    const char         *event, *reason, *topic;
    size_t              n, rn;

    if ((event = get_str(root, "event", &n)) == NULL) {
        snprintf(ev->detail, sizeof(ev->detail), "message without event");
        return PORTAL_ACT_WARN_UNKNOWN;
    }
    ev->has_ref = get_ref(root, &ev->ref);
    if (str_is(root, "event", "phx_reply"))
        return on_reply(s, root, ev);
    if (str_is(root, "event", "init")) {
        if (str_is(root, "topic", "relay") && payload != NULL)
            return PORTAL_ACT_INIT;
        topic = get_str(root, "topic", &rn);
        return warn(ev, "unexpected init on topic",
            topic != NULL ? topic : "", topic != NULL ? rn : 0);
    }
    if (str_is(root, "event", "disconnect")) {
        if (str_is(payload, "reason", "token_expired"))
            return PORTAL_ACT_TOKEN_EXPIRED;
        reason = get_str(payload, "reason", &rn);
        return warn(ev, "disconnect with reason", reason != NULL ? reason : "",
            reason != NULL ? rn : 0);
    }
    if (str_is(root, "event", "phx_close"))
        return PORTAL_ACT_RECONNECT;
    if (str_is(root, "event", "phx_error"))
        return PORTAL_ACT_IGNORED;
    return warn(ev, "unknown event", event, n);
}

/* Parses a whole JSON text of len bytes; NULL when invalid or followed by
 * anything but whitespace. */
static struct json_object *
parse_json(const char *text, size_t len)
{
    struct json_tokener *tok;
    struct json_object  *root;
    size_t               used;

    if (len > INT_MAX || (tok = json_tokener_new()) == NULL)
        return NULL;
    root = json_tokener_parse_ex(tok, text, (int)len);
    if (root == NULL || json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(root);
        root = NULL;
        goto out;
    }
    for (used = json_tokener_get_parse_end(tok); used < len; used++) {
        char c = text[used];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            json_object_put(root);
            root = NULL;
            break;
        }
    }
out:
    json_tokener_free(tok);
    return root;
}

enum portal_action
portal_msg_on_text(struct portal_sess *s, const char *text, size_t len,
    struct portal_event *ev)
{
    struct json_object *root;

    memset(ev, 0, sizeof(*ev));
    if ((root = parse_json(text, len)) == NULL) {
        snprintf(ev->detail, sizeof(ev->detail), "invalid JSON");
        return ev->action = PORTAL_ACT_WARN_UNKNOWN;
    }
    if (!json_object_is_type(root, json_type_object)) {
        snprintf(ev->detail, sizeof(ev->detail), "not a JSON object");
        ev->action = PORTAL_ACT_WARN_UNKNOWN;
    } else {
        ev->action = classify(s, root, ev);
    }
    json_object_put(root);
    return ev->action;
}

/* ---- Upgrade 401 ---- */

/* 1 when the media type of ct (parameters ignored) is t. */
static int
media_type_is(const char *ct, const char *t)
{
    size_t n = strlen(t);

    while (is_ows(*ct))
        ct++;
    return strncasecmp(ct, t, n) == 0 &&
        (ct[n] == '\0' || ct[n] == ';' || is_ows(ct[n]));
}

int
portal_msg_401(const char *content_type, const char *body, size_t len,
    char *msg, size_t size)
{
    struct json_object *root = NULL;
    const char         *detail = "HTTP 401";
    size_t              n = strlen(detail);
    char                clean[160];
    int                 invalid = 0;

    if (content_type != NULL && body != NULL &&
        (media_type_is(content_type, "application/problem+json") ||
         media_type_is(content_type, "application/json")))
        root = parse_json(body, len);
    if (root != NULL && json_object_is_type(root, json_type_object)) {
        const char *d;
        size_t      dn;

        invalid = str_is(root, "code", "invalid_token") ||
            str_is(root, "code", "missing_token");
        if ((d = get_str(root, "detail", &dn)) != NULL ||
            (d = get_str(root, "title", &dn)) != NULL) {
            detail = d;
            n = dn;
        }
    }
    copy_printable(clean, sizeof(clean), detail, n);
    json_object_put(root);
    if (invalid)
        snprintf(msg, size, "invalid token");
    else
        snprintf(msg, size, "authentication failed: %s", clean);
    return invalid;
}

/* ---- Retry-After ---- */

struct scan {
    const char *p, *end;
};

static int
scan_lit(struct scan *sc, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, lit, n) != 0)
        return 0;
    sc->p += n;
    return 1;
}

/* Exactly n digits. */
static int
scan_num(struct scan *sc, int n, int *v)
{
    *v = 0;
    if (sc->end - sc->p < n)
        return 0;
    for (int i = 0; i < n; i++) {
        if (sc->p[i] < '0' || sc->p[i] > '9')
            return 0;
        *v = *v * 10 + (sc->p[i] - '0');
    }
    sc->p += n;
    return 1;
}

static const char *const wkdays[] = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
    "Sunday"
};
static const char *const months[] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
    "Nov", "Dec"
};

/* A weekday: three letters ("Sun"), or the full name when full. */
static int
scan_wkday(struct scan *sc, int full)
{
    for (int i = 0; i < 7; i++) {
        char abbr[4];

        memcpy(abbr, wkdays[i], 3);
        abbr[3] = '\0';
        if (scan_lit(sc, full ? wkdays[i] : abbr))
            return 1;
    }
    return 0;
}

static int
scan_month(struct scan *sc, int *mon)
{
    for (int i = 0; i < 12; i++) {
        if (scan_lit(sc, months[i])) {
            *mon = i + 1;
            return 1;
        }
    }
    return 0;
}

struct hdate {
    int year, mon, day, hour, min, sec;
    int two_digit_year;
};

static int
scan_time(struct scan *sc, struct hdate *d)
{
    return scan_num(sc, 2, &d->hour) && scan_lit(sc, ":") &&
        scan_num(sc, 2, &d->min) && scan_lit(sc, ":") &&
        scan_num(sc, 2, &d->sec);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static int
scan_imf(struct scan sc, struct hdate *d)
{
    return scan_wkday(&sc, 0) && scan_lit(&sc, ", ") &&
        scan_num(&sc, 2, &d->day) && scan_lit(&sc, " ") &&
        scan_month(&sc, &d->mon) && scan_lit(&sc, " ") &&
        scan_num(&sc, 4, &d->year) && scan_lit(&sc, " ") &&
        scan_time(&sc, d) && scan_lit(&sc, " GMT") && sc.p == sc.end;
}

/* "Sunday, 06-Nov-94 08:49:37 GMT" */
static int
scan_rfc850(struct scan sc, struct hdate *d)
{
    d->two_digit_year = 1;
    return scan_wkday(&sc, 1) && scan_lit(&sc, ", ") &&
        scan_num(&sc, 2, &d->day) && scan_lit(&sc, "-") &&
        scan_month(&sc, &d->mon) && scan_lit(&sc, "-") &&
        scan_num(&sc, 2, &d->year) && scan_lit(&sc, " ") &&
        scan_time(&sc, d) && scan_lit(&sc, " GMT") && sc.p == sc.end;
}

/* "Sun Nov  6 08:49:37 1994" */
static int
scan_asctime(struct scan sc, struct hdate *d)
{
    if (!scan_wkday(&sc, 0) || !scan_lit(&sc, " ") ||
        !scan_month(&sc, &d->mon) || !scan_lit(&sc, " "))
        return 0;
    if (!(scan_lit(&sc, " ") ? scan_num(&sc, 1, &d->day) :
            scan_num(&sc, 2, &d->day)))
        return 0;
    return scan_lit(&sc, " ") && scan_time(&sc, d) && scan_lit(&sc, " ") &&
        scan_num(&sc, 4, &d->year) && sc.p == sc.end;
}

static int (*const date_forms[])(struct scan, struct hdate *) = {
    scan_imf, scan_rfc850, scan_asctime
};

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), for y >= 0: count
 * from 1 March so the leap day ends the year. */
static int64_t
days_from_civil(int y, int m, int d)
{
    int64_t era, yoe, doy;

    y -= m <= 2;
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* The Gregorian year holding day number days (from 1970-01-01). */
static int
year_of_days(int64_t days)
{
    int64_t z = days + 719468, era, doe, yoe, doy, mp;

    era = z / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    return (int)(yoe + era * 400 + (mp >= 10));
}

static int
days_in_month(int y, int m)
{
    static const int dm[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
        31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : dm[m - 1];
}

static int
parse_http_date(const char *s, size_t n, uint64_t now, uint64_t *delay)
{
    struct scan  sc = { s, s + n };
    struct hdate d;
    int64_t      t;
    size_t       i;

    /* Each form starts from a clean date: a failed one may have set some
     * fields. */
    for (i = 0; i < sizeof(date_forms) / sizeof(date_forms[0]); i++) {
        memset(&d, 0, sizeof(d));
        if (date_forms[i](sc, &d))
            break;
    }
    if (i == sizeof(date_forms) / sizeof(date_forms[0]))
        return RLY_ERR_INVAL;
    if (d.two_digit_year) {
        int cur = year_of_days((int64_t)(now / 86400));

        d.year += cur / 100 * 100;
        if (d.year > cur + 50)
            d.year -= 100;
    }
    if (d.mon < 1 || d.mon > 12 || d.day < 1 ||
        d.day > days_in_month(d.year, d.mon) || d.hour > 23 || d.min > 59 ||
        d.sec > 60)
        return RLY_ERR_INVAL;
    t = days_from_civil(d.year, d.mon, d.day) * 86400 + d.hour * 3600 +
        d.min * 60 + d.sec;
    *delay = t > 0 && (uint64_t)t > now ? (uint64_t)t - now : 0;
    return 0;
}

int
portal_msg_retry_after(const char *value, uint64_t now_wall_s,
    uint64_t *delay_s)
{
    size_t   n;
    uint64_t v = 0;

    if (value == NULL)
        return RLY_ERR_INVAL;
    n = strlen(value);
    trim_ows(&value, &n);
    if (n == 0)
        return RLY_ERR_INVAL;
    if (strspn(value, "0123456789") >= n) {
        for (size_t i = 0; i < n; i++) {
            v = v * 10 + (uint64_t)(value[i] - '0');
            if (v > UINT32_MAX) {
                v = UINT32_MAX;
                break;
            }
        }
        *delay_s = v;
        return 0;
    }
    return parse_http_date(value, n, now_wall_s, delay_s);
}

/* ---- WebSocket handshake, headers ---- */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_MAX 128

int
portal_msg_ws_key(rly_rand_fn rnd, void *ud, char out[PORTAL_WS_KEY_LEN + 1])
{
    uint8_t raw[16];
    int     rc;

    if ((rc = rnd(ud, raw, sizeof(raw))) != 0)
        return rc;
    EVP_EncodeBlock((unsigned char *)out, raw, (int)sizeof(raw));
    return 0;
}

int
portal_msg_ws_accept(const char *key, char out[PORTAL_WS_ACCEPT_LEN + 1])
{
    char          buf[WS_KEY_MAX + sizeof(WS_GUID)];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int  mdlen = 0;
    size_t        n = strlen(key);

    if (n > WS_KEY_MAX)
        return RLY_ERR_INVAL;
    memcpy(buf, key, n);
    memcpy(buf + n, WS_GUID, sizeof(WS_GUID) - 1);
    if (EVP_Digest(buf, n + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(),
            NULL) != 1 || mdlen != 20)
        return RLY_ERR_CRYPTO;
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
    return 0;
}

int
portal_msg_ws_accept_ok(const char *key, const char *value)
{
    char   want[PORTAL_WS_ACCEPT_LEN + 1];
    size_t n;

    if (value == NULL || portal_msg_ws_accept(key, want) != 0)
        return 0;
    n = strlen(value);
    trim_ows(&value, &n);
    return n == PORTAL_WS_ACCEPT_LEN &&
        memcmp(value, want, PORTAL_WS_ACCEPT_LEN) == 0;
}

/* Appends s with bytes outside 0x20..0x7e replaced by '_'. */
static int
put_clean(char *buf, size_t size, size_t *len, const char *s)
{
    for (; *s != '\0'; s++) {
        char c = *s >= 0x20 && *s <= 0x7e ? *s : '_';

        if (put_n(buf, size, len, &c, 1) != 0)
            return RLY_ERR_NOSPACE;
    }
    return 0;
}

int
portal_msg_user_agent(const char *release, const char *version,
    const char *arch, char *buf, size_t size)
{
    size_t len = 0;

    if (size == 0)
        return RLY_ERR_NOSPACE;
    buf[0] = '\0';
    if (put(buf, size, &len, "Linux/") != 0 ||
        put_clean(buf, size, &len, release) != 0 ||
        put(buf, size, &len, " relay/") != 0 ||
        put_clean(buf, size, &len, version) != 0 ||
        put(buf, size, &len, " (") != 0 ||
        put_clean(buf, size, &len, arch) != 0 ||
        put(buf, size, &len, "; ") != 0 ||
        put_clean(buf, size, &len, release) != 0 ||
        put(buf, size, &len, ")") != 0)
        return RLY_ERR_NOSPACE;
    return 0;
}

size_t
portal_msg_token_strip(char *token)
{
    size_t w = 0;

    for (size_t r = 0; token[r] != '\0'; r++) {
        char c = token[r];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\v' && c != '\f' &&
            c != '\r')
            token[w++] = c;
    }
    token[w] = '\0';
    return w;
}
