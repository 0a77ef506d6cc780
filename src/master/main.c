/* main.c - firezone-relay entry point (placeholder until the runtime lands):
 * --help and --version. */
#include <stdio.h>
#include <string.h>

#include "config.h"

static void
usage(FILE *f)
{
    fprintf(f, "usage: firezone-relay [-c FILE] [-t | -T] [options]\n"
        "       firezone-relay credentials [-c FILE] [--salt SALT] "
        "[--ttl SECONDS | --expiry UNIX]\n"
        "       firezone-relay -h | --help | -V | --version\n");
}

int
main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("firezone-relay %s\n", PACKAGE_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    }
    usage(stderr);
    return 64;
}
