/* check_chan_idx.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
chan_idx_suite(void)
{
    return suite_create("chan_idx");
}
