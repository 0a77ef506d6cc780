/* auth.c - placeholder, to be written. */
#include "auth.h"
typedef int rly_auth_placeholder;
