/* check_addr.c - struct addr parsing, formatting, comparison. */
#include <check.h>
#include <string.h>

#include "addr.h"
#include "helper.h"
#include "rly_err.h"
#include "suites.h"

START_TEST(test_addr_parse_format_roundtrip)
{
    static const char *const good[] = {
        "192.0.2.1:3478", "[2001:db8::1]:3478", "0.0.0.0:0", "[::]:65535",
    };
    char buf[ADDR_STRLEN];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct addr a = A(good[i]);
        ck_assert_str_eq(addr_format(&a, buf, sizeof(buf)), good[i]);
    }
}
END_TEST

START_TEST(test_addr_parse_rejects)
{
    static const char *const bad[] = {
        "192.0.2.1", "192.0.2.1:", "192.0.2.1:65536", "2001:db8::1:80",
        "[2001:db8::1]", "[2001:db8::1]80", "host:80", ":80", "1.2.3.4:-1",
        "1.2.3.4:8a", "::1:80", "[1.2.3.4]:80",
    };
    struct addr a;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(addr_parse_ip_port(&a, bad[i]) == RLY_ERR_INVAL,
            "accepted %s", bad[i]);
}
END_TEST

START_TEST(test_addr_eq)
{
    struct addr a = A("192.0.2.1:1"), b = A("192.0.2.1:2"), c = A("[::1]:1");

    ck_assert(addr_eq(&a, &a));
    ck_assert(!addr_eq(&a, &b));
    ck_assert(addr_ip_eq(&a, &b));
    ck_assert(!addr_ip_eq(&a, &c));
}
END_TEST

START_TEST(test_addr_sockaddr_roundtrip)
{
    struct addr             a = A("[2001:db8::9]:5000"), b;
    struct sockaddr_storage ss;
    socklen_t               len = addr_to_sockaddr(&a, &ss);

    ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
    ck_assert_int_eq(addr_from_sockaddr(&b, (struct sockaddr *)&ss, len), 0);
    ck_assert(addr_eq(&a, &b));
    ck_assert_int_eq(addr_from_sockaddr(&b, (struct sockaddr *)&ss, 4),
        RLY_ERR_INVAL);
}
END_TEST

Suite *
addr_suite(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("addr");

    tcase_add_test(tc, test_addr_parse_format_roundtrip);
    tcase_add_test(tc, test_addr_parse_rejects);
    tcase_add_test(tc, test_addr_eq);
    tcase_add_test(tc, test_addr_sockaddr_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}
