/* check_stun_msg.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
stun_msg_suite(void)
{
    return suite_create("stun_msg");
}
