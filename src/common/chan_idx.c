/* chan_idx.c - placeholder, to be written. */
#include "chan_idx.h"
typedef int rly_chan_idx_placeholder;
