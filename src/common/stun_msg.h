/* stun_msg.h - parse and build STUN messages (RFC 8489; SPEC §2.3-§2.10).
 *
 * Parsing produces a view over the caller's buffer: nothing is copied or
 * allocated, and every pointer in struct stun_msg is valid as long as that
 * buffer is.  Building writes into a caller buffer. */
#ifndef RLY_STUN_MSG_H
#define RLY_STUN_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "stun_attr.h"

#define STUN_HDR_LEN    20
#define STUN_COOKIE     0x2112A442u
#define STUN_TXID_LEN   12
#define STUN_FP_XOR     0x5354554Eu

/* Classes (2 bits) and methods (12 bits), RFC 8489 §5. */
enum stun_class {
    STUN_REQUEST    = 0,
    STUN_INDICATION = 1,
    STUN_SUCCESS    = 2,
    STUN_ERROR      = 3
};

#define STUN_BINDING            0x001
#define STUN_ALLOCATE           0x003
#define STUN_REFRESH            0x004
#define STUN_SEND               0x006
#define STUN_DATA               0x007
#define STUN_CREATE_PERMISSION  0x008
#define STUN_CHANNEL_BIND       0x009

/* Composes / splits the 16-bit message type. */
uint16_t stun_type(uint16_t method, enum stun_class cls);
uint16_t stun_type_method(uint16_t type);
enum stun_class stun_type_class(uint16_t type);

/* Where one attribute sits in the message: offset of its 4-byte attribute
 * header from the message start, and its value length (unpadded).  off == 0
 * means absent (no attribute can start inside the STUN header). */
struct stun_attr_ref {
    uint16_t off;
    uint16_t len;
};

struct stun_msg {
    const uint8_t  *buf;            /* the whole message */
    size_t          len;            /* == 20 + length field */
    uint16_t        type;
    uint16_t        method;
    enum stun_class cls;
    const uint8_t  *txid;           /* 12 bytes inside buf */
    /* First occurrence of each known type that lies before
     * MESSAGE-INTEGRITY (or anywhere, when there is none).  The
     * MESSAGE-INTEGRITY entry is the first MESSAGE-INTEGRITY; the
     * FINGERPRINT entry is the first FINGERPRINT anywhere. */
    struct stun_attr_ref attr[STUN_K_COUNT];
    /* Set when a known attribute before MESSAGE-INTEGRITY breaks its value
     * rule (checked for every occurrence): the request gets an
     * unauthenticated 400 (SPEC §2.3 step 3).  bad_type names it. */
    int             bad_attr;
    uint16_t        bad_type;
    /* FINGERPRINT present but not the last attribute. */
    int             fp_not_last;
};

/* Parses framing (SPEC §2.3): returns 0, or RLY_ERR_MALFORMED when the
 * datagram is shorter than 20 bytes (or longer than 65535, which no UDP
 * datagram is), lacks the cookie, has a length field that is not a
 * multiple of 4 or that disagrees with len, or has an attribute (padding
 * included; its content is ignored) running past the end.  Value-rule
 * failures do not fail the parse: they set m->bad_attr.  The class is not
 * checked here.  m is always cleared first; after an error its contents
 * are unspecified. */
int stun_msg_parse(struct stun_msg *m, const uint8_t *buf, size_t len);

/* Value of a recorded attribute, or NULL when absent (len set to 0). */
const uint8_t *stun_msg_attr(const struct stun_msg *m, enum stun_known k,
    size_t *len);

/* Decodes an XOR address attribute value (SPEC §2.4 address rule) using
 * the message's transaction id.  Returns 0 with *out set (port in host
 * order, unused bytes zero), or RLY_ERR_MALFORMED when the value breaks
 * the address rule. */
int stun_xor_addr_decode(const uint8_t *val, size_t len,
    const uint8_t txid[STUN_TXID_LEN], struct addr *out);

/* Reads a 4-byte big-endian attribute value (LIFETIME).  Returns 0 or
 * RLY_ERR_MALFORMED when the value is not 4 bytes. */
int stun_attr_u32(const uint8_t *val, size_t len, uint32_t *out);

/* --- Building --------------------------------------------------------
 * A builder writes one message into buf, which it borrows until the last
 * call.  The header's length field is correct after every append.  Errors
 * are sticky: after the first failure every call does nothing and
 * stun_build_finish() returns the error: RLY_ERR_NOSPACE when buf (cap
 * bytes; stun_build_init() needs 20) or the 16-bit length field cannot
 * hold the attribute, RLY_ERR_INVAL for an address family or error code
 * that cannot be encoded, RLY_ERR_CRYPTO when the HMAC fails.  pad is the
 * byte used for attribute padding (0 on the wire; RFC 5769 vectors use
 * 0x20). */
struct stun_builder {
    uint8_t    *buf;
    size_t      cap;
    size_t      len;
    int         err;
    uint8_t     pad;
};

void stun_build_init(struct stun_builder *b, uint8_t *buf, size_t cap,
    uint16_t type, const uint8_t txid[STUN_TXID_LEN], uint8_t pad);
void stun_build_attr(struct stun_builder *b, uint16_t type,
    const void *val, size_t len);
void stun_build_u32(struct stun_builder *b, uint16_t type, uint32_t v);
/* XOR-MAPPED/RELAYED/PEER-ADDRESS: family 0x01/0x02 from a->family
 * (ADDR_V4/ADDR_V6; anything else is RLY_ERR_INVAL), XORed with the
 * transaction id given to stun_build_init(). */
void stun_build_xor_addr(struct stun_builder *b, uint16_t type,
    const struct addr *a);
/* ERROR-CODE with the class/number layout of SPEC §2.9: two zero bytes,
 * code / 100, code % 100, then reason (NUL-terminated, may be NULL for
 * none) unterminated and padded.  code outside 300-699 is RLY_ERR_INVAL. */
void stun_build_error(struct stun_builder *b, unsigned code,
    const char *reason);
/* Appends MESSAGE-INTEGRITY computed with the 16-byte long-term key over
 * everything built so far (stun_integrity_compute()). */
void stun_build_integrity(struct stun_builder *b, const uint8_t key[16]);
/* Same, with a key of any length (RFC 5769 §2.1 uses a short-term
 * password as the key). */
void stun_build_integrity_key(struct stun_builder *b, const uint8_t *key,
    size_t keylen);
/* Appends FINGERPRINT over everything built so far (after
 * MESSAGE-INTEGRITY, if any). */
void stun_build_fingerprint(struct stun_builder *b);
/* Returns the message length (> 0) or the sticky error (< 0). */
int stun_build_finish(struct stun_builder *b);

#endif
