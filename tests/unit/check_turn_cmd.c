/* check_turn_cmd.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
turn_cmd_suite(void)
{
    return suite_create("turn_cmd");
}
