/* check_atab.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
atab_suite(void)
{
    return suite_create("atab");
}
