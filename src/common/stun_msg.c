/* stun_msg.c - placeholder, to be written. */
#include "stun_msg.h"
typedef int rly_stun_msg_placeholder;
