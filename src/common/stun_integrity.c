/* stun_integrity.c - placeholder, to be written. */
#include "stun_integrity.h"
typedef int rly_stun_integrity_placeholder;
