/* rly_rand.h - injected randomness.  The core never reads /dev/urandom: the
 * caller passes a function (tests pass fixed or counting bytes). */
#ifndef RLY_RAND_H
#define RLY_RAND_H

#include <stddef.h>
#include <stdint.h>

/* Fills buf with len random bytes.  Returns 0, or a negative RLY_ERR_*. */
typedef int (*rly_rand_fn)(void *ud, uint8_t *buf, size_t len);

#endif
