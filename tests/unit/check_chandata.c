/* check_chandata.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
chandata_suite(void)
{
    return suite_create("chandata");
}
