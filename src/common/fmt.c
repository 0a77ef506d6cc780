/* fmt.c - placeholder, to be written. */
#include "fmt.h"
typedef int rly_fmt_placeholder;
