/* peer_policy.c - placeholder, to be written. */
#include "peer_policy.h"
typedef int rly_peer_policy_placeholder;
