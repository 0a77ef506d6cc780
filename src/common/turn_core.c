/* turn_core.c - placeholder, to be written. */
#include "turn_core.h"
typedef int rly_turn_core_placeholder;
