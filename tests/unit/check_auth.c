/* check_auth.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
auth_suite(void)
{
    return suite_create("auth");
}
