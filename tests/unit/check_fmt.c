/* check_fmt.c - placeholder suite, to be written. */
#include "suites.h"

Suite *
fmt_suite(void)
{
    return suite_create("fmt");
}
