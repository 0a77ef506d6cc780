/* vectors.h - RFC 5769 test vectors (and the SPEC's own STUN vectors), as
 * hex for hex2bin(), laid out as the RFC prints them: one attribute a
 * line.  Transcribed from RFC 5769 §2.1-§2.4; every MESSAGE-INTEGRITY and
 * FINGERPRINT below verifies, which checks the transcription.  Macros, not
 * variables, so that a file using only some of them gets no warning. */
#ifndef RLY_TEST_VECTORS_H
#define RLY_TEST_VECTORS_H

/* §2.1-§2.3 share a transaction id and the short-term credential: the
 * password itself is the HMAC key.  Their padding bytes are 0x20. */
#define RFC5769_TXID        "b7e7a701bc34d686fa87dfae"
#define RFC5769_PASSWORD    "VOkJxbRl1RmTxUk/WvJxBt"

/* §2.1 Sample request: Binding request with SOFTWARE, PRIORITY (0x0024),
 * ICE-CONTROLLED (0x8029), USERNAME "evtj:h6vY", MESSAGE-INTEGRITY and
 * FINGERPRINT. */
#define RFC5769_REQUEST \
    "00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae" \
    "80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74" \
    "00 24 00 04 6e 00 01 ff" \
    "80 29 00 08 93 2f f9 b1 51 26 3b 36" \
    "00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20" \
    "00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49" \
    "            c1 b5 71 a2" \
    "80 28 00 04 e5 7a 3b cf"
#define RFC5769_REQUEST_SOFTWARE        "STUN test client"
#define RFC5769_REQUEST_USERNAME        "evtj:h6vY"
#define RFC5769_REQUEST_PRIORITY        0x6e0001ffu
#define RFC5769_REQUEST_ICE_CONTROLLED  "932ff9b151263b36"

/* §2.2 Sample IPv4 response: Binding success with SOFTWARE
 * "test vector", XOR-MAPPED-ADDRESS 192.0.2.1:32853, MESSAGE-INTEGRITY and
 * FINGERPRINT. */
#define RFC5769_RESPONSE4 \
    "01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae" \
    "80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20" \
    "00 20 00 08 00 01 a1 47 e1 12 a6 43" \
    "00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53" \
    "            f0 6b e7 d7" \
    "80 28 00 04 c0 7d 4c 96"
#define RFC5769_RESPONSE_SOFTWARE   "test vector"
#define RFC5769_RESPONSE4_MAPPED    "192.0.2.1:32853"

/* §2.3 Sample IPv6 response: as §2.2 with XOR-MAPPED-ADDRESS
 * [2001:db8:1234:5678:11:2233:4455:6677]:32853. */
#define RFC5769_RESPONSE6 \
    "01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae" \
    "80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20" \
    "00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5" \
    "            be d2 b9 d9" \
    "00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75" \
    "            bf e3 ed 41" \
    "80 28 00 04 c8 fb 0b 4c"
#define RFC5769_RESPONSE6_MAPPED \
    "[2001:db8:1234:5678:11:2233:4455:6677]:32853"

/* §2.4 Sample request with long-term authentication: USERNAME (the UTF-8
 * of U+30DE U+30C8 U+30EA U+30C3 U+30AF U+30B9), NONCE, REALM
 * "example.org", MESSAGE-INTEGRITY; no FINGERPRINT; padding is 0x00.  Key:
 * MD5(username ":example.org:TheMatrIX"). */
#define RFC5769_LT_REQUEST \
    "00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e" \
    "00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3" \
    "            82 b9 00 00" \
    "00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34" \
    "            6f 4c 39 46 53 54 76 79 36 34 73 41" \
    "00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00" \
    "00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2" \
    "            8c a8 96 66"
#define RFC5769_LT_TXID     "78ad3433c6ad72c029da412e"
#define RFC5769_LT_USERNAME "e3839ee38388e383aae38383e382afe382b9"
#define RFC5769_LT_NONCE    "f//499k954d6OL34oL9FSTvy64sA"
#define RFC5769_LT_REALM    "example.org"
#define RFC5769_LT_PASSWORD "TheMatrIX"
/* MD5 of the above, computed independently (Python hashlib). */
#define RFC5769_LT_KEY      "e8ca7ad59d5eb0518e312911d2dab2a9"

/* SPEC §2.10: Binding request, zero transaction id, only FINGERPRINT. */
#define SPEC_FP_ONLY \
    "0001 0008 2112a442 000000000000000000000000 8028 0004 b2aaf9f6"

/* SPEC §3.5: long-term keys of the §3.3 table's first and third rows, and
 * HMAC-SHA1 with the second of them over a 20-byte header whose length
 * field says 0x18 (a MESSAGE-INTEGRITY right after the header). */
#define SPEC_REALM          "firezone"
#define SPEC_ROW1_USER      "1892160000:n23JJ2wKKtt30oXi"
#define SPEC_ROW1_PASSWORD  "00hqldgk5xLeKKOB+xls9mHMVtgqzie9DulfgQwMv68"
#define SPEC_ROW1_KEY       "e444d93976b92ec355c14337c9a9d3fb"
#define SPEC_ROW3_USER      "1685200000:n23JJ2wKKtt30oXi"
#define SPEC_ROW3_PASSWORD  "KWFQGJs2EUSjn+RbrNzNrxjZJQJTx52zyr8FYpk/e20"
#define SPEC_ROW3_KEY       "b5b9c0f90e4d4ca659e6a95037c3fdf0"
#define SPEC_HMAC_INPUT     "000100182112a442 000000000000000000000000"
#define SPEC_HMAC_ROW3      "b7fae87d77ac2a745ffc1bcb1706af4c6ecc87f2"

#endif
