/* check_cfg.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
cfg_suite(void)
{
    return suite_create("cfg");
}
