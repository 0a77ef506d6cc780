/* backoff.h - placeholder, to be written. */
#ifndef RLY_BACKOFF_H
#define RLY_BACKOFF_H
#endif
