/* rly_err.h - error codes of the pure core.
 *
 * Core functions return 0 or a negative RLY_ERR_* value (STYLE §3).  A code
 * at or below RLY_ERR_FATAL means the object is unusable and must be freed.
 * A rejected protocol request is not an error: it becomes a response. */
#ifndef RLY_ERR_H
#define RLY_ERR_H

enum rly_err {
    RLY_OK              = 0,
    RLY_ERR_DROP        = -1,   /* discard the datagram; reason given apart */
    RLY_ERR_MALFORMED   = -2,   /* input breaks a framing or value rule */
    RLY_ERR_NOSPACE     = -3,   /* caller buffer or queue too small */
    RLY_ERR_NOTFOUND    = -4,   /* no such record */
    RLY_ERR_EXISTS      = -5,   /* already present */
    RLY_ERR_FULL        = -6,   /* fixed-size table full */
    RLY_ERR_INVAL       = -7,   /* invalid argument */
    RLY_ERR_AUTH        = -8,   /* integrity or credential check failed */
    RLY_ERR_STALE       = -9,   /* stale record (generation mismatch) */
    RLY_ERR_CRYPTO      = -10,  /* OpenSSL failure */
    RLY_ERR_FATAL       = -100, /* codes at or below are fatal */
    RLY_ERR_NOMEM       = -101,
    RLY_ERR_CORRUPT     = -102  /* shared region unusable */
};

/* Returns a static, human-readable name for an RLY_ERR_* code. */
const char *rly_strerror(int rc);

/* Nonzero when rc makes the object that returned it unusable. */
static inline int
rly_is_fatal(int rc)
{
    return rc <= RLY_ERR_FATAL;
}

#endif
