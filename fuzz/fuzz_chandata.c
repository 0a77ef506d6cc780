/* fuzz_chandata.c - libFuzzer target for ChannelData framing (SPEC
 * §2.11.1, §2.11.2): chandata_parse() either refuses the datagram (under
 * 4 bytes, or a length field beyond the datagram) or returns a payload
 * inside it with paylen <= len - 4; the header writer round-trips. */
#include <stddef.h>
#include <stdint.h>

#include "chandata.h"
#include "fuzz_util.h"
#include "rly_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *payload = NULL;
    uint16_t       number = 0, n2;
    size_t         paylen = 0, field;
    uint8_t        hdr[CHANDATA_HDR_LEN];
    int            rc;

    rc = chandata_parse(data, size, &number, &payload, &paylen);
    if (size < CHANDATA_HDR_LEN) {
        FZ_CHECK(rc == RLY_ERR_MALFORMED);
        return 0;
    }
    field = (size_t)(data[2] << 8 | data[3]);
    if (field > size - CHANDATA_HDR_LEN) {
        FZ_CHECK(rc == RLY_ERR_MALFORMED);
        return 0;
    }
    FZ_CHECK(rc == 0);
    FZ_CHECK(number == (uint16_t)(data[0] << 8 | data[1]));
    FZ_CHECK(payload == data + CHANDATA_HDR_LEN);
    FZ_CHECK(paylen == field && paylen <= size - CHANDATA_HDR_LEN);
    FZ_CHECK(chandata_number_ok(number) ==
        (number >= CHANNEL_MIN && number <= CHANNEL_MAX));

    chandata_hdr(hdr, number, (uint16_t)paylen);
    FZ_CHECK(memcmp(hdr, data, CHANDATA_HDR_LEN) == 0);
    FZ_CHECK(chandata_parse(hdr, sizeof(hdr), &n2, &payload, &paylen) ==
        (field == 0 ? 0 : RLY_ERR_MALFORMED));
    return 0;
}
