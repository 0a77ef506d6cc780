/* check_backoff.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
backoff_suite(void)
{
    return suite_create("backoff");
}
