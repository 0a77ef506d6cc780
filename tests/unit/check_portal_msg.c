/* check_portal_msg.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
portal_msg_suite(void)
{
    return suite_create("portal_msg");
}
