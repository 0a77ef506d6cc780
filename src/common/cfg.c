/* cfg.c - placeholder, to be written. */
#include "cfg.h"
typedef int rly_cfg_placeholder;
