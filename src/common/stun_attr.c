/* stun_attr.c - placeholder, to be written. */
#include "stun_attr.h"
typedef int rly_stun_attr_placeholder;
