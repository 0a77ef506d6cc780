/* atab.c - placeholder, to be written. */
#include "atab.h"
typedef int rly_atab_placeholder;
