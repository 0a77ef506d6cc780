/* chandata.c - ChannelData framing (SPEC §2.11, RFC 8656 §12.4).  The hot
 * path: no allocation, no copy, no logging.  The payload is returned as a
 * pointer into the datagram; trailing padding is tolerated and ignored. */
#include "chandata.h"
#include "rly_err.h"

int
chandata_number_ok(uint16_t n)
{
    return n >= CHANNEL_MIN && n <= CHANNEL_MAX;
}

int
chandata_parse(const uint8_t *buf, size_t len, uint16_t *number,
    const uint8_t **payload, size_t *paylen)
{
    size_t n;

    if (len < CHANDATA_HDR_LEN)
        return RLY_ERR_MALFORMED;
    n = (size_t)buf[2] << 8 | buf[3];
    if (n > len - CHANDATA_HDR_LEN)
        return RLY_ERR_MALFORMED;
    *number = (uint16_t)(buf[0] << 8 | buf[1]);
    *payload = buf + CHANDATA_HDR_LEN;
    *paylen = n;
    return 0;
}

void
chandata_hdr(uint8_t hdr[CHANDATA_HDR_LEN], uint16_t number,
    uint16_t paylen)
{
    hdr[0] = (uint8_t)(number >> 8);
    hdr[1] = (uint8_t)number;
    hdr[2] = (uint8_t)(paylen >> 8);
    hdr[3] = (uint8_t)paylen;
}
