/* check_turn_core.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
turn_core_suite(void)
{
    return suite_create("turn_core");
}
