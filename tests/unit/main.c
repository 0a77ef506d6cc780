/* main.c - runs every Check suite of the core (one per src/common module).
 * CK_FORK=no runs in-process, for a debugger. */
#include <check.h>
#include <stdlib.h>

#include "suites.h"

int
main(void)
{
    SRunner *sr;
    int      failed;

    sr = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(sr, name##_suite());
    RLY_SUITES
#undef SUITE
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
