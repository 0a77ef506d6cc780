/* check_peer_policy.c - SPEC §5.4 peer address policy: C48, C50-C52,
 * IPv4 embedded in IPv6, listen sockets, CIDR parsing. */
#include <check.h>
#include <string.h>

#include "helper.h"
#include "peer_policy.h"
#include "rly_err.h"
#include "suites.h"

/* R46 with the default policy: listen sockets public 192.0.2.1 and
 * 2001:db8::1, port 3478 (SPEC §11 fixture). */
static void
policy_r46(struct peer_policy *p)
{
    struct addr a;

    peer_policy_init(p);
    a = A("192.0.2.1:3478");
    ck_assert_int_eq(peer_policy_listen(p, &a), 0);
    a = A("[2001:db8::1]:3478");
    ck_assert_int_eq(peer_policy_listen(p, &a), 0);
}

static void
add_cidr(struct peer_policy *p, const char *s, int allow)
{
    struct cidr c;

    ck_assert_msg(cidr_parse(s, &c) == 0, "cidr %s", s);
    if (allow)
        ck_assert_int_eq(peer_policy_allow(p, &c), 0);
    else
        ck_assert_int_eq(peer_policy_deny(p, &c), 0);
}

static enum peer_verdict
check(const struct peer_policy *p, const char *peer)
{
    struct addr a = A(peer);

    return peer_policy_check(p, &a);
}

static void
assert_denied(const struct peer_policy *p, const char *peer)
{
    struct addr a = A(peer);

    ck_assert_msg(!peer_policy_allowed(p, &a), "%s allowed (%s)", peer,
        peer_policy_verdict_name(peer_policy_check(p, &a)));
}

static void
assert_allowed(const struct peer_policy *p, const char *peer)
{
    struct addr a = A(peer);

    ck_assert_msg(peer_policy_allowed(p, &a), "%s denied (%s)", peer,
        peer_policy_verdict_name(peer_policy_check(p, &a)));
}

static const char *const c48_peers[] = {
    "127.0.0.1:5000", "0.0.0.0:5000", "169.254.1.1:5000", "224.0.0.1:5000",
    "255.255.255.255:5000", "[::1]:5000", "[fe80::1]:5000",
    "[ff02::1]:5000", "[::ffff:127.0.0.1]:5000", "[64:ff9b::a9fe:101]:5000",
    "203.0.113.9:0", "192.0.2.1:3478", "[2001:db8::1]:3478",
};

START_TEST(test_c48_denied_peers)
{
    struct peer_policy p;

    policy_r46(&p);
    for (size_t i = 0; i < sizeof(c48_peers) / sizeof(c48_peers[0]); i++)
        assert_denied(&p, c48_peers[i]);
    ck_assert_int_eq(check(&p, "203.0.113.9:0"), PEER_DENY_PORT_ZERO);
    ck_assert_int_eq(check(&p, "192.0.2.1:3478"), PEER_DENY_LISTEN);
    ck_assert_int_eq(check(&p, "[2001:db8::1]:3478"), PEER_DENY_LISTEN);
    ck_assert_int_eq(check(&p, "[64:ff9b::a9fe:101]:5000"),
        PEER_DENY_BUILTIN);
    /* The usual peers of the fixture stay allowed. */
    assert_allowed(&p, "203.0.113.9:5000");
    assert_allowed(&p, "[2001:db8:2::9]:5000");
}
END_TEST

START_TEST(test_c50_private_ranges_allowed)
{
    static const char *const peers[] = {
        "10.1.2.3:5000", "[fd00::1]:5000", "172.16.0.1:5000",
        "192.168.1.1:5000", "100.64.0.1:5000", "[fc00::1]:5000",
        "[::ffff:10.1.2.3]:5000",
    };
    struct peer_policy p;

    policy_r46(&p);
    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
        assert_allowed(&p, peers[i]);
        ck_assert_int_eq(check(&p, peers[i]), PEER_ALLOW_DEFAULT);
    }
}
END_TEST

START_TEST(test_c51_allow_loopback)
{
    struct peer_policy p;

    policy_r46(&p);
    add_cidr(&p, "127.0.0.0/8", 1);
    assert_allowed(&p, "127.0.0.1:5000");
    assert_allowed(&p, "127.1.2.3:5000");
    assert_allowed(&p, "[::ffff:127.0.0.1]:5000");
    ck_assert_int_eq(check(&p, "127.0.0.1:5000"), PEER_ALLOW_LISTED);
    /* IPv6 loopback needs its own entry (tests use ::1/128). */
    assert_denied(&p, "[::1]:5000");
    add_cidr(&p, "::1/128", 1);
    assert_allowed(&p, "[::1]:5000");
    /* Other built-ins stay. */
    assert_denied(&p, "169.254.1.1:5000");
    assert_denied(&p, "0.0.0.0:5000");
}
END_TEST

START_TEST(test_c52_allow_beats_deny)
{
    struct peer_policy p;

    policy_r46(&p);
    add_cidr(&p, "203.0.113.0/24", 0);
    add_cidr(&p, "203.0.113.9/32", 1);
    assert_allowed(&p, "203.0.113.9:5000");             /* P */
    ck_assert_int_eq(check(&p, "203.0.113.9:5000"), PEER_ALLOW_LISTED);
    assert_denied(&p, "203.0.113.10:5000");             /* P2 */
    ck_assert_int_eq(check(&p, "203.0.113.10:5000"), PEER_DENY_LISTED);
    /* The deny list reaches embedded forms too. */
    assert_denied(&p, "[::ffff:203.0.113.10]:5000");
    assert_denied(&p, "[64:ff9b::cb00:710a]:5000");
    assert_allowed(&p, "[::ffff:203.0.113.9]:5000");
    /* An allow of a built-in range. */
    add_cidr(&p, "169.254.0.0/16", 1);
    assert_allowed(&p, "169.254.1.1:5000");
}
END_TEST

/* Hostile spellings of denied addresses. */
static const char *const hostile[] = {
    "[0:0:0:0:0:ffff:7f00:1]:5000",     /* mapped 127.0.0.1 */
    "[64:ff9b::7f00:1]:5000",           /* NAT64 127.0.0.1 */
    "[::127.0.0.1]:5000",               /* compatible 127.0.0.1 */
    "[::ffff:169.254.1.1]:5000",        /* mapped link-local */
    "[::ffff:0.0.0.0]:5000",
    "[::ffff:224.0.0.1]:5000",
    "[::ffff:255.255.255.255]:5000",
    "[::ffff:240.0.0.1]:5000",
    "[64:ff9b::e000:1]:5000",           /* NAT64 224.0.0.1 */
    "[::a9fe:101]:5000",                /* compatible 169.254.1.1 */
    "[0::0]:5000",
    "[0:0:0:0:0:0:0:1]:5000",
    "[fe80::1]:5000", "[febf::1]:5000", /* fe80::/10 edge */
    "[ff00::]:5000", "[ffff::1]:5000",
    "0.255.255.255:5000", "127.255.255.255:5000",
    "224.0.0.0:5000", "239.255.255.255:5000",
};

START_TEST(test_hostile_forms_denied)
{
    struct peer_policy p;

    policy_r46(&p);
    assert_denied(&p, hostile[_i]);
    ck_assert_int_eq(check(&p, hostile[_i]), PEER_DENY_BUILTIN);
}
END_TEST

START_TEST(test_edges_allowed)
{
    static const char *const peers[] = {
        "1.0.0.0:1", "126.255.255.255:5000", "128.0.0.0:5000",
        "169.253.255.255:5000", "169.255.0.0:5000", "223.255.255.255:5000",
        "[fec0::1]:5000", "[fe7f::1]:5000", "[feff::1]:5000",
        "[64:ff9b::cb00:709]:5000",     /* NAT64 203.0.113.9 */
        "[64:ff9b:1::7f00:1]:5000",     /* outside 64:ff9b::/96 */
        "[::fffe:7f00:1]:5000",         /* outside ::ffff:0:0/96 */
        "[2001:db8::1]:3479",
    };
    struct peer_policy p;

    policy_r46(&p);
    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++)
        assert_allowed(&p, peers[i]);
    /* ::2 is IPv4-compatible 0.0.0.2, inside 0.0.0.0/8. */
    ck_assert_int_eq(check(&p, "[::2]:5000"), PEER_DENY_BUILTIN);
}
END_TEST

START_TEST(test_embedded_loopback_v6)
{
    struct peer_policy p;

    /* ::1 and :: have no IPv4 form: allowing all IPv4 keeps them denied. */
    policy_r46(&p);
    add_cidr(&p, "0.0.0.0/0", 1);
    assert_denied(&p, "[::1]:5000");
    assert_denied(&p, "[::]:5000");
    assert_allowed(&p, "[::2]:5000");
    assert_allowed(&p, "[::ffff:127.0.0.1]:5000");
    assert_allowed(&p, "127.0.0.1:5000");
    /* But the listen socket stays denied. */
    assert_denied(&p, "[::ffff:192.0.2.1]:3478");
}
END_TEST

START_TEST(test_hairpin_allowed)
{
    struct peer_policy p;

    policy_r46(&p);
    assert_allowed(&p, "192.0.2.1:49152");
    assert_allowed(&p, "[2001:db8::1]:49152");
    assert_allowed(&p, "192.0.2.1:3479");
    assert_allowed(&p, "[::ffff:192.0.2.1]:49152");
}
END_TEST

START_TEST(test_listen_forms_denied)
{
    static const char *const peers[] = {
        "192.0.2.1:3478", "[::ffff:192.0.2.1]:3478", "[::c000:201]:3478",
        "[64:ff9b::c000:201]:3478", "[2001:db8::1]:3478",
    };
    struct peer_policy p;

    policy_r46(&p);
    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
        assert_denied(&p, peers[i]);
        ck_assert_int_eq(check(&p, peers[i]), PEER_DENY_LISTEN);
    }
}
END_TEST

START_TEST(test_listen_bind_wildcard)
{
    struct peer_policy p;
    struct addr        a;

    /* listen.bind_ip4 0.0.0.0 and bind_ip6 ::, port 3478, everything
     * allowed: the wildcard itself, in any form, stays denied. */
    peer_policy_init(&p);
    a = A("0.0.0.0:3478");
    ck_assert_int_eq(peer_policy_listen(&p, &a), 0);
    a = A("[::]:3478");
    ck_assert_int_eq(peer_policy_listen(&p, &a), 0);
    add_cidr(&p, "0.0.0.0/0", 1);
    add_cidr(&p, "::/0", 1);
    ck_assert_int_eq(check(&p, "0.0.0.0:3478"), PEER_DENY_LISTEN);
    ck_assert_int_eq(check(&p, "[::ffff:0.0.0.0]:3478"), PEER_DENY_LISTEN);
    ck_assert_int_eq(check(&p, "[64:ff9b::]:3478"), PEER_DENY_LISTEN);
    ck_assert_int_eq(check(&p, "[::]:3478"), PEER_DENY_LISTEN);
    ck_assert_int_eq(check(&p, "0.0.0.0:3479"), PEER_ALLOW_LISTED);
    ck_assert_int_eq(check(&p, "203.0.113.9:3478"), PEER_ALLOW_LISTED);
    /* Without allow entries the built-ins deny them on any port. */
    peer_policy_init(&p);
    a = A("0.0.0.0:3478");
    ck_assert_int_eq(peer_policy_listen(&p, &a), 0);
    ck_assert_int_eq(check(&p, "0.0.0.0:3479"), PEER_DENY_BUILTIN);
    ck_assert_int_eq(check(&p, "[::ffff:0.0.0.0]:3479"), PEER_DENY_BUILTIN);
}
END_TEST

START_TEST(test_allow_cannot_undeny_listen)
{
    struct peer_policy p;
    struct addr        a;

    policy_r46(&p);
    add_cidr(&p, "192.0.2.1", 1);
    add_cidr(&p, "2001:db8::1/128", 1);
    add_cidr(&p, "::/0", 1);
    add_cidr(&p, "0.0.0.0/0", 1);
    assert_denied(&p, "192.0.2.1:3478");
    assert_denied(&p, "[2001:db8::1]:3478");
    assert_denied(&p, "[::ffff:192.0.2.1]:3478");
    assert_allowed(&p, "192.0.2.1:3477");
    /* A loopback public address (tests) on listen.port, allowed. */
    peer_policy_init(&p);
    a = A("127.0.0.1:3478");
    ck_assert_int_eq(peer_policy_listen(&p, &a), 0);
    add_cidr(&p, "127.0.0.0/8", 1);
    ck_assert_int_eq(check(&p, "127.0.0.1:3478"), PEER_DENY_LISTEN);
    ck_assert_int_eq(check(&p, "[::ffff:7f00:1]:3478"), PEER_DENY_LISTEN);
    ck_assert_int_eq(check(&p, "127.0.0.1:40000"), PEER_ALLOW_LISTED);
    ck_assert_int_eq(check(&p, "127.0.0.2:3478"), PEER_ALLOW_LISTED);
}
END_TEST

START_TEST(test_list_limits)
{
    struct peer_policy p;
    struct cidr        c;
    struct addr        a;

    peer_policy_init(&p);
    ck_assert_int_eq(cidr_parse("10.0.0.0/8", &c), 0);
    for (int i = 0; i < PEER_POLICY_MAX_CIDRS; i++) {
        ck_assert_int_eq(peer_policy_allow(&p, &c), 0);
        ck_assert_int_eq(peer_policy_deny(&p, &c), 0);
    }
    ck_assert_int_eq(peer_policy_allow(&p, &c), RLY_ERR_FULL);
    ck_assert_int_eq(peer_policy_deny(&p, &c), RLY_ERR_FULL);
    a = A("192.0.2.1:3478");
    for (int i = 0; i < PEER_POLICY_MAX_LISTEN; i++)
        ck_assert_int_eq(peer_policy_listen(&p, &a), 0);
    ck_assert_int_eq(peer_policy_listen(&p, &a), RLY_ERR_FULL);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(peer_policy_allow(&p, &c), RLY_ERR_INVAL);
    memset(&a, 0, sizeof(a));
    ck_assert_int_eq(peer_policy_check(&p, &a), PEER_DENY_FAMILY);
    ck_assert_int_eq(peer_policy_allowed(&p, &a), 0);
}
END_TEST

struct cidr_case {
    const char *in;
    int         ok;
    const char *out;    /* cidr_format() of the result */
};

static const struct cidr_case cidr_cases[] = {
    { "10.0.0.0/8",         1, "10.0.0.0/8" },
    { "0.0.0.0/0",          1, "0.0.0.0/0" },
    { "203.0.113.9",        1, "203.0.113.9/32" },
    { "203.0.113.9/32",     1, "203.0.113.9/32" },
    { "::/0",               1, "::/0" },
    { "::1",                1, "::1/128" },
    { "fe80::/10",          1, "fe80::/10" },
    { "2001:db8::/32",      1, "2001:db8::/32" },
    { "2001:DB8::1/128",    1, "2001:db8::1/128" },
    { "::ffff:127.0.0.0/104", 1, "::ffff:127.0.0.0/104" },
    { "100.64.0.0/10",      1, "100.64.0.0/10" },
    { "10.0.0.1/8",         0, NULL },  /* host bits */
    { "fe80::1/10",         0, NULL },
    { "10.0.0.0/33",        0, NULL },
    { "::/129",             0, NULL },
    { "10.0.0.0/",          0, NULL },
    { "/8",                 0, NULL },
    { "",                   0, NULL },
    { "10.0.0.0/08",        0, NULL },  /* strict decimal */
    { "10.0.0.0/+8",        0, NULL },
    { "10.0.0.0/-8",        0, NULL },
    { "10.0.0.0/ 8",        0, NULL },
    { "10.0.0.0/8 ",        0, NULL },
    { " 10.0.0.0/8",        0, NULL },
    { "10.0.0.0/0x8",       0, NULL },
    { "10.0.0.0/8/8",       0, NULL },
    { "::/0128",            0, NULL },
    { "::/4294967424",      0, NULL },  /* 2^32 + 128 */
    { "10.0.0/8",           0, NULL },
    { "010.0.0.0/8",        0, NULL },
    { "10.0.0.256",         0, NULL },
    { "[::1]/128",          0, NULL },
    { "fe80::1%eth0/128",   0, NULL },
    { "example.com/32",     0, NULL },
    { "1.2.3.4:80",         0, NULL },
};

START_TEST(test_cidr_parse_table)
{
    const struct cidr_case *t = &cidr_cases[_i];
    struct cidr             c;
    char                    buf[64];

    memset(&c, 0xaa, sizeof(c));
    if (!t->ok) {
        ck_assert_msg(cidr_parse(t->in, &c) == RLY_ERR_INVAL, "%s", t->in);
        ck_assert_uint_eq(c.len, 0xaa);     /* unchanged */
        return;
    }
    ck_assert_msg(cidr_parse(t->in, &c) == 0, "%s", t->in);
    ck_assert_str_eq(cidr_format(&c, buf, sizeof(buf)), t->out);
    ck_assert_uint_eq(c.net.port, 0);
}
END_TEST

START_TEST(test_cidr_contains)
{
    struct cidr c;
    struct addr a;

    ck_assert_int_eq(cidr_parse("100.64.0.0/10", &c), 0);
    a = A("100.127.255.255:1");
    ck_assert_int_eq(cidr_contains(&c, &a), 1);
    a = A("100.128.0.0:1");
    ck_assert_int_eq(cidr_contains(&c, &a), 0);
    a = A("[::ffff:100.64.0.1]:1");     /* other family */
    ck_assert_int_eq(cidr_contains(&c, &a), 0);
    ck_assert_int_eq(cidr_parse("0.0.0.0/0", &c), 0);
    a = A("255.255.255.255:1");
    ck_assert_int_eq(cidr_contains(&c, &a), 1);
    ck_assert_int_eq(cidr_parse("2001:db8::/33", &c), 0);
    a = A("[2001:db8:7fff::1]:1");
    ck_assert_int_eq(cidr_contains(&c, &a), 1);
    a = A("[2001:db8:8000::1]:1");
    ck_assert_int_eq(cidr_contains(&c, &a), 0);
}
END_TEST

Suite *
peer_policy_suite(void)
{
    Suite *s = suite_create("peer_policy");
    TCase *tc = tcase_create("spec");

    tcase_add_test(tc, test_c48_denied_peers);
    tcase_add_test(tc, test_c50_private_ranges_allowed);
    tcase_add_test(tc, test_c51_allow_loopback);
    tcase_add_test(tc, test_c52_allow_beats_deny);
    suite_add_tcase(s, tc);

    tc = tcase_create("forms");
    tcase_add_loop_test(tc, test_hostile_forms_denied, 0,
        (int)(sizeof(hostile) / sizeof(hostile[0])));
    tcase_add_test(tc, test_edges_allowed);
    tcase_add_test(tc, test_embedded_loopback_v6);
    tcase_add_test(tc, test_hairpin_allowed);
    tcase_add_test(tc, test_listen_forms_denied);
    tcase_add_test(tc, test_listen_bind_wildcard);
    tcase_add_test(tc, test_allow_cannot_undeny_listen);
    tcase_add_test(tc, test_list_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("cidr");
    tcase_add_loop_test(tc, test_cidr_parse_table, 0,
        (int)(sizeof(cidr_cases) / sizeof(cidr_cases[0])));
    tcase_add_test(tc, test_cidr_contains);
    suite_add_tcase(s, tc);
    return s;
}
