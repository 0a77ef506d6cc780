/* check_siphash.c - SipHash-2-4 against the paper's appendix vector. */
#include <check.h>

#include "siphash.h"
#include "suites.h"

START_TEST(test_siphash_paper_vector)
{
    /* Key 00..0f, message 00..0e (15 bytes): a129ca6149be45e5. */
    uint8_t            k[16], m[15];
    struct siphash_key key;

    for (int i = 0; i < 16; i++)
        k[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        m[i] = (uint8_t)i;
    siphash_key_set(&key, k);
    ck_assert_uint_eq(siphash24(&key, m, sizeof(m)), 0xa129ca6149be45e5ULL);
    /* Empty input, same key: 726fdb47dd0e0e31 (reference vectors). */
    ck_assert_uint_eq(siphash24(&key, m, 0), 0x726fdb47dd0e0e31ULL);
}
END_TEST

Suite *
siphash_suite(void)
{
    Suite *s = suite_create("siphash");
    TCase *tc = tcase_create("siphash");

    tcase_add_test(tc, test_siphash_paper_vector);
    suite_add_tcase(s, tc);
    return s;
}
