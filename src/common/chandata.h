/* chandata.h - ChannelData framing (SPEC §2.11.1, RFC 8656 §12.4).
 * 2-byte channel number, 2-byte length, payload.  Padding is tolerated on
 * input and never added on output. */
#ifndef RLY_CHANDATA_H
#define RLY_CHANDATA_H

#include <stddef.h>
#include <stdint.h>

#define CHANDATA_HDR_LEN    4
#define CHANNEL_MIN         0x4000
#define CHANNEL_MAX         0x7FFF  /* SPEC §2.2: the RFC 5766 range */

/* 1 when n is a channel number the relay accepts (0x4000-0x7FFF). */
int chandata_number_ok(uint16_t n);

/* Parses a ChannelData datagram.  Returns 0 with *number, *payload (inside
 * buf) and *paylen set, or RLY_ERR_MALFORMED when len < 4 or the length
 * field exceeds len - 4.  Trailing bytes are ignored.  The number's range
 * is not checked here (the demultiplexer does it by first byte). */
int chandata_parse(const uint8_t *buf, size_t len, uint16_t *number,
    const uint8_t **payload, size_t *paylen);

/* Writes the 4-byte header for a payload of paylen (<= 65535) bytes. */
void chandata_hdr(uint8_t hdr[CHANDATA_HDR_LEN], uint16_t number,
    uint16_t paylen);

#endif
