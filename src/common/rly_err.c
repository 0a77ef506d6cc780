/* rly_err.c - names of RLY_ERR_* codes. */
#include "rly_err.h"

const char *
rly_strerror(int rc)
{
    switch (rc) {
    case RLY_OK:            return "success";
    case RLY_ERR_DROP:      return "datagram dropped";
    case RLY_ERR_MALFORMED: return "malformed input";
    case RLY_ERR_NOSPACE:   return "no space left in buffer";
    case RLY_ERR_NOTFOUND:  return "not found";
    case RLY_ERR_EXISTS:    return "already exists";
    case RLY_ERR_FULL:      return "table full";
    case RLY_ERR_INVAL:     return "invalid argument";
    case RLY_ERR_AUTH:      return "authentication failed";
    case RLY_ERR_STALE:     return "stale reference";
    case RLY_ERR_CRYPTO:    return "cryptographic library failure";
    case RLY_ERR_FATAL:     return "fatal error";
    case RLY_ERR_NOMEM:     return "out of memory";
    case RLY_ERR_CORRUPT:   return "shared table corrupt";
    default:                return "unknown error";
    }
}
