/* check_stun_integrity.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
stun_integrity_suite(void)
{
    return suite_create("stun_integrity");
}
