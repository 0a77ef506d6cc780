/* stun_attr.h - the STUN attribute types the relay knows (SPEC §2.4) and
 * their value rules.  Any other type is skipped unchecked; error 420 is
 * never sent. */
#ifndef RLY_STUN_ATTR_H
#define RLY_STUN_ATTR_H

#include <stddef.h>
#include <stdint.h>

#define STUN_ATTR_USERNAME                  0x0006
#define STUN_ATTR_MESSAGE_INTEGRITY         0x0008
#define STUN_ATTR_ERROR_CODE                0x0009
#define STUN_ATTR_CHANNEL_NUMBER            0x000C
#define STUN_ATTR_LIFETIME                  0x000D
#define STUN_ATTR_XOR_PEER_ADDRESS          0x0012
#define STUN_ATTR_REALM                     0x0014
#define STUN_ATTR_NONCE                     0x0015
#define STUN_ATTR_XOR_RELAYED_ADDRESS       0x0016
#define STUN_ATTR_REQUESTED_ADDRESS_FAMILY  0x0017
#define STUN_ATTR_EVEN_PORT                 0x0018
#define STUN_ATTR_REQUESTED_TRANSPORT       0x0019
#define STUN_ATTR_DONT_FRAGMENT             0x001A
#define STUN_ATTR_MESSAGE_INTEGRITY_SHA256  0x001C
#define STUN_ATTR_XOR_MAPPED_ADDRESS        0x0020
#define STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY 0x8000
#define STUN_ATTR_SOFTWARE                  0x8022
#define STUN_ATTR_FINGERPRINT               0x8028

/* Dense index of the known types, used by struct stun_msg. */
enum stun_known {
    STUN_K_USERNAME = 0,
    STUN_K_MESSAGE_INTEGRITY,
    STUN_K_ERROR_CODE,
    STUN_K_CHANNEL_NUMBER,
    STUN_K_LIFETIME,
    STUN_K_XOR_PEER_ADDRESS,
    STUN_K_REALM,
    STUN_K_NONCE,
    STUN_K_XOR_RELAYED_ADDRESS,
    STUN_K_REQUESTED_ADDRESS_FAMILY,
    STUN_K_REQUESTED_TRANSPORT,
    STUN_K_XOR_MAPPED_ADDRESS,
    STUN_K_ADDITIONAL_ADDRESS_FAMILY,
    STUN_K_SOFTWARE,
    STUN_K_FINGERPRINT,
    STUN_K_MESSAGE_INTEGRITY_SHA256,    /* recorded, never checked (§2.4) */
    STUN_K_COUNT
};

/* Maps a wire type to its enum stun_known, or -1 for an unknown type. */
int stun_attr_known(uint16_t type);

/* Checks one attribute value against its SPEC §2.4 rule.  Returns 0, or
 * RLY_ERR_MALFORMED when the rule is broken.  Unknown types and
 * MESSAGE-INTEGRITY-SHA256 pass.  FINGERPRINT is checked for its 4 bytes
 * only; position (after MESSAGE-INTEGRITY, FINGERPRINT last) is
 * stun_msg_parse()'s business. */
int stun_attr_check(uint16_t type, const uint8_t *val, size_t len);

/* SPEC §2.4 text rule: valid UTF-8, <= 127 characters and <= 763 bytes.
 * Returns 1 when it holds, else 0. */
int stun_text_ok(const uint8_t *s, size_t len);
/* Valid UTF-8 per RFC 3629 (no overlongs, no surrogates, <= U+10FFFF, no
 * truncated sequence; U+0000 is allowed).  Returns the number of
 * characters (code points), or -1. */
long stun_utf8_count(const uint8_t *s, size_t len);

#endif
