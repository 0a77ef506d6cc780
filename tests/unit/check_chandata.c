/* check_chandata.c - ChannelData framing (SPEC §2.11): lengths that lie,
 * empty payloads, tolerated padding, and the channel number range. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "chandata.h"
#include "helper.h"
#include "rly_err.h"
#include "suites.h"

#define NELEM(a)    (sizeof(a) / sizeof((a)[0]))

static const struct {
    const char *name;
    const char *hex;
    int         rc;
    uint16_t    number;
    size_t      paylen;
} parse_cases[] = {
    { "empty", "", RLY_ERR_MALFORMED, 0, 0 },
    { "one_byte", "40", RLY_ERR_MALFORMED, 0, 0 },
    { "three_bytes", "40 00 00", RLY_ERR_MALFORMED, 0, 0 },
    { "length_0", "40 00 00 00", 0, 0x4000, 0 },
    { "length_0_padded", "40 00 00 00 00 00 00 00", 0, 0x4000, 0 },
    { "exact", "40 01 00 03 61 62 63", 0, 0x4001, 3 },
    { "padded", "40 01 00 03 61 62 63 00", 0, 0x4001, 3 },
    { "trailing_garbage", "4f ff 00 01 ff ee dd cc bb", 0, 0x4fff, 1 },
    { "length_one_too_many", "40 01 00 04 61 62 63", RLY_ERR_MALFORMED, 0,
      0 },
    { "length_lies_ffff", "40 01 ff ff 61 62 63 64", RLY_ERR_MALFORMED, 0,
      0 },
    { "length_1_no_payload", "40 01 00 01", RLY_ERR_MALFORMED, 0, 0 },
    { "top_of_range", "7f ff 00 02 01 02", 0, 0x7fff, 2 },
    /* The range is the demultiplexer's business, not the parser's. */
    { "number_not_checked", "80 00 00 01 01", 0, 0x8000, 1 },
};

START_TEST(test_chandata_parse)
{
    uint8_t        buf[32], *copy;
    size_t         n = hex2bin(parse_cases[_i].hex, buf, sizeof(buf));
    uint16_t       number = 0;
    const uint8_t *payload = NULL;
    size_t         paylen = 0;
    int            rc;

    ck_assert_uint_ne(n, (size_t)-1);
    /* An exact-size heap copy: an over-read is an ASan error. */
    copy = malloc(n > 0 ? n : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, n);
    rc = chandata_parse(copy, n, &number, &payload, &paylen);
    ck_assert_msg(rc == parse_cases[_i].rc, "%s: %d", parse_cases[_i].name,
        rc);
    if (rc == 0) {
        ck_assert_uint_eq(number, parse_cases[_i].number);
        ck_assert_uint_eq(paylen, parse_cases[_i].paylen);
        ck_assert_ptr_eq(payload, copy + CHANDATA_HDR_LEN);
    }
    free(copy);
}
END_TEST

START_TEST(test_chandata_hdr_roundtrip)
{
    static uint8_t buf[CHANDATA_HDR_LEN + 65535];
    static const uint16_t lens[] = { 0, 1, 3, 4, 255, 256, 1200, 65503,
        65535 };
    const uint8_t *payload;
    uint16_t       number;
    size_t         paylen;

    chandata_hdr(buf, 0x4001, 0x1234);
    ck_assert_uint_eq(buf[0], 0x40);
    ck_assert_uint_eq(buf[1], 0x01);
    ck_assert_uint_eq(buf[2], 0x12);
    ck_assert_uint_eq(buf[3], 0x34);
    for (size_t i = 0; i < NELEM(lens); i++) {
        uint16_t n = (uint16_t)(CHANNEL_MIN + i * 0x7FF);

        chandata_hdr(buf, n, lens[i]);
        ck_assert_int_eq(chandata_parse(buf, CHANDATA_HDR_LEN + lens[i],
            &number, &payload, &paylen), 0);
        ck_assert_uint_eq(number, n);
        ck_assert_uint_eq(paylen, lens[i]);
        if (lens[i] > 0)
            ck_assert_int_eq(chandata_parse(buf,
                CHANDATA_HDR_LEN + lens[i] - 1, &number, &payload,
                &paylen), RLY_ERR_MALFORMED);
    }
}
END_TEST

static const struct {
    uint16_t number;
    int      ok;
} number_cases[] = {
    { 0x0000, 0 }, { 0x0001, 0 }, { 0x3FFF, 0 }, { 0x4000, 1 },
    { 0x4001, 1 }, { 0x4FFF, 1 }, { 0x5000, 1 }, { 0x7FFE, 1 },
    { 0x7FFF, 1 }, { 0x8000, 0 }, { 0xBFFF, 0 }, { 0xFFFF, 0 },
};

START_TEST(test_chandata_number_range)
{
    ck_assert_int_eq(chandata_number_ok(number_cases[_i].number),
        number_cases[_i].ok);
}
END_TEST

Suite *
chandata_suite(void)
{
    Suite *s = suite_create("chandata");
    TCase *tc = tcase_create("chandata");

    tcase_add_loop_test(tc, test_chandata_parse, 0, NELEM(parse_cases));
    tcase_add_test(tc, test_chandata_hdr_roundtrip);
    tcase_add_loop_test(tc, test_chandata_number_range, 0,
        NELEM(number_cases));
    suite_add_tcase(s, tc);
    return s;
}
