/* check_peer_policy.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
peer_policy_suite(void)
{
    return suite_create("peer_policy");
}
