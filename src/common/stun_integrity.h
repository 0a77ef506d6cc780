/* stun_integrity.h - MESSAGE-INTEGRITY (HMAC-SHA1), FINGERPRINT (CRC-32)
 * and the long-term key (SPEC §2.10, §3.5).  Uses OpenSSL 3's EVP API
 * (EVP_MAC, EVP_Digest): MD5() and HMAC_CTX are deprecated. */
#ifndef RLY_STUN_INTEGRITY_H
#define RLY_STUN_INTEGRITY_H

#include <stddef.h>
#include <stdint.h>

#include "stun_msg.h"

#define STUN_MI_LEN 20

/* HMAC-SHA1 over msg[0 .. mi_off), with the header's length field replaced
 * by mi_off - 20 + 24 (as if MESSAGE-INTEGRITY were the last attribute);
 * msg itself is not modified.  mi_off (>= 20) is the offset of the
 * MESSAGE-INTEGRITY attribute header.  Any key length, 0 included.
 * Returns 0 or RLY_ERR_CRYPTO. */
int stun_integrity_compute(const uint8_t *msg, size_t mi_off,
    const uint8_t *key, size_t keylen, uint8_t out[STUN_MI_LEN]);

/* Verifies m's MESSAGE-INTEGRITY (must be present and 20 bytes) with key,
 * comparing all 20 bytes in constant time.  Returns 0, RLY_ERR_AUTH, or
 * RLY_ERR_CRYPTO. */
int stun_integrity_verify(const struct stun_msg *m, const uint8_t *key,
    size_t keylen);

/* CRC-32 (zlib polynomial) of msg[0 .. fp_off) with the length field set to
 * count the FINGERPRINT (fp_off - 20 + 8), XORed with 0x5354554E.  fp_off
 * (>= 20) is the offset of the FINGERPRINT attribute header; msg is not
 * modified. */
uint32_t stun_fingerprint_compute(const uint8_t *msg, size_t fp_off);

/* Plain CRC-32 as zlib's crc32(0, buf, len). */
uint32_t stun_crc32(const uint8_t *buf, size_t len);

/* Checks m's FINGERPRINT when present: 0 when absent or valid and last,
 * RLY_ERR_AUTH when not last, not 4 bytes, or wrong. */
int stun_fingerprint_verify(const struct stun_msg *m);

/* key = MD5(username ":" realm ":" password), the bytes taken as given (no
 * SASLprep).  realm and password are NUL-terminated.  Returns 0 or
 * RLY_ERR_CRYPTO. */
int stun_long_term_key(const uint8_t *user, size_t ulen, const char *realm,
    const char *password, uint8_t key[16]);

#endif
