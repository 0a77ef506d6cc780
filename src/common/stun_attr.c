/* stun_attr.c - the attribute types the relay knows and their value rules
 * (SPEC §2.4).  A rule looks at one value only; where an attribute sits in
 * the message (after MESSAGE-INTEGRITY, FINGERPRINT last) is stun_msg.c's
 * business.  UTF-8 is validated as RFC 3629 defines it: no overlong forms,
 * no surrogates, nothing above U+10FFFF, no truncated sequences. */
#include "chandata.h"
#include "rly_err.h"
#include "stun_attr.h"

#define STUN_TEXT_MAX_CHARS     127
#define STUN_TEXT_MAX_BYTES     763
#define STUN_USERNAME_MAX_BYTES 512

int
stun_attr_known(uint16_t type)
{
    switch (type) {
    case STUN_ATTR_USERNAME:
        return STUN_K_USERNAME;
    case STUN_ATTR_MESSAGE_INTEGRITY:
        return STUN_K_MESSAGE_INTEGRITY;
    case STUN_ATTR_ERROR_CODE:
        return STUN_K_ERROR_CODE;
    case STUN_ATTR_CHANNEL_NUMBER:
        return STUN_K_CHANNEL_NUMBER;
    case STUN_ATTR_LIFETIME:
        return STUN_K_LIFETIME;
    case STUN_ATTR_XOR_PEER_ADDRESS:
        return STUN_K_XOR_PEER_ADDRESS;
    case STUN_ATTR_REALM:
        return STUN_K_REALM;
    case STUN_ATTR_NONCE:
        return STUN_K_NONCE;
    case STUN_ATTR_XOR_RELAYED_ADDRESS:
        return STUN_K_XOR_RELAYED_ADDRESS;
    case STUN_ATTR_REQUESTED_ADDRESS_FAMILY:
        return STUN_K_REQUESTED_ADDRESS_FAMILY;
    case STUN_ATTR_REQUESTED_TRANSPORT:
        return STUN_K_REQUESTED_TRANSPORT;
    case STUN_ATTR_XOR_MAPPED_ADDRESS:
        return STUN_K_XOR_MAPPED_ADDRESS;
    case STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY:
        return STUN_K_ADDITIONAL_ADDRESS_FAMILY;
    case STUN_ATTR_SOFTWARE:
        return STUN_K_SOFTWARE;
    case STUN_ATTR_FINGERPRINT:
        return STUN_K_FINGERPRINT;
    case STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
        return STUN_K_MESSAGE_INTEGRITY_SHA256;
    default:
        return -1;
    }
}

/* Length of the sequence led by byte c (1-4), or 0 when c cannot lead
 * one: a stray continuation byte, 0xC0/0xC1 (always overlong) or
 * 0xF5-0xFF (beyond U+10FFFF). */
static int
lead_len(uint8_t c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

/* The second byte's range depends on the lead: that is where overlongs
 * (E0, F0), surrogates (ED) and values above U+10FFFF (F4) are cut. */
static int
second_ok(uint8_t lead, uint8_t c)
{
    uint8_t lo = 0x80, hi = 0xBF;

    if (lead == 0xE0)
        lo = 0xA0;
    else if (lead == 0xED)
        hi = 0x9F;
    else if (lead == 0xF0)
        lo = 0x90;
    else if (lead == 0xF4)
        hi = 0x8F;
    return c >= lo && c <= hi;
}

long
stun_utf8_count(const uint8_t *s, size_t len)
{
    size_t i = 0;
    long   n = 0;

    while (i < len) {
        int k = lead_len(s[i]);

        if (k == 0 || (size_t)k > len - i)
            return -1;
        if (k > 1 && !second_ok(s[i], s[i + 1]))
            return -1;
        for (int j = 2; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return -1;
        i += (size_t)k;
        n++;
    }
    return n;
}

int
stun_text_ok(const uint8_t *s, size_t len)
{
    long n;

    if (len > STUN_TEXT_MAX_BYTES)
        return 0;
    n = stun_utf8_count(s, len);
    return n >= 0 && n <= STUN_TEXT_MAX_CHARS;
}

/* Address rule: byte 0 ignored, family 0x01 with 8 bytes or 0x02 with
 * 20. */
static int
addr_ok(const uint8_t *val, size_t len)
{
    if (len < 2)
        return 0;
    return (val[1] == 0x01 && len == 8) || (val[1] == 0x02 && len == 20);
}

static int
error_code_ok(const uint8_t *val, size_t len)
{
    unsigned cls;

    if (len < 4)
        return 0;
    cls = val[2] & 0x07;
    return cls >= 3 && cls <= 6 && val[3] <= 99 &&
        stun_text_ok(val + 4, len - 4);
}

static int
family_ok(const uint8_t *val, size_t len)
{
    return len == 4 && (val[0] == 0x01 || val[0] == 0x02);
}

static int
rule_ok(uint16_t type, const uint8_t *val, size_t len)
{
    switch (type) {
    case STUN_ATTR_USERNAME:
        return len <= STUN_USERNAME_MAX_BYTES &&
            stun_utf8_count(val, len) >= 0;
    case STUN_ATTR_MESSAGE_INTEGRITY:
        return len == 20;
    case STUN_ATTR_ERROR_CODE:
        return error_code_ok(val, len);
    case STUN_ATTR_CHANNEL_NUMBER:
        return len == 4 &&
            chandata_number_ok((uint16_t)(val[0] << 8 | val[1]));
    case STUN_ATTR_LIFETIME:
    case STUN_ATTR_REQUESTED_TRANSPORT:
    case STUN_ATTR_FINGERPRINT:
        return len == 4;
    case STUN_ATTR_XOR_PEER_ADDRESS:
    case STUN_ATTR_XOR_RELAYED_ADDRESS:
    case STUN_ATTR_XOR_MAPPED_ADDRESS:
        return addr_ok(val, len);
    case STUN_ATTR_REALM:
    case STUN_ATTR_NONCE:
    case STUN_ATTR_SOFTWARE:
        return stun_text_ok(val, len);
    case STUN_ATTR_REQUESTED_ADDRESS_FAMILY:
    case STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY:
        return family_ok(val, len);
    default:
        /* Unknown types, and MESSAGE-INTEGRITY-SHA256, have no rule. */
        return 1;
    }
}

int
stun_attr_check(uint16_t type, const uint8_t *val, size_t len)
{
    return rule_ok(type, val, len) ? 0 : RLY_ERR_MALFORMED;
}
