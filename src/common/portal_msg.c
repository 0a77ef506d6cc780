/* portal_msg.c - placeholder, to be written. */
#include "portal_msg.h"
typedef int rly_portal_msg_placeholder;
