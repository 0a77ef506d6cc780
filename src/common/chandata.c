/* chandata.c - placeholder, to be written. */
#include "chandata.h"
typedef int rly_chandata_placeholder;
