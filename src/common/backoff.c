/* backoff.c - placeholder, to be written. */
#include "backoff.h"
typedef int rly_backoff_placeholder;
