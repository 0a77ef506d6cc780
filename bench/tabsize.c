/* tabsize.c - bytes of firezone-relay's shared table (issue 7, M3).
 *
 *   tabsize MAX_ALLOCS MAX_CHANNELS WORKERS
 *
 * Prints the region size that the master maps for these limits, from the
 * table's own sizing function, as one JSON line.  Differences between
 * two limits give the bytes per allocation slot and per channel slot,
 * shared indexes included. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "atab.h"

int
main(int argc, char **argv)
{
    unsigned long a, c, w;

    if (argc != 4) {
        fprintf(stderr, "usage: tabsize MAX_ALLOCS MAX_CHANNELS WORKERS\n");
        return 2;
    }
    a = strtoul(argv[1], NULL, 10);
    c = strtoul(argv[2], NULL, 10);
    w = strtoul(argv[3], NULL, 10);
    printf("{\"tool\":\"tabsize\",\"max_allocations\":%lu,"
        "\"max_channels\":%lu,\"workers\":%lu,\"bytes\":%zu}\n", a, c, w,
        atab_region_size((uint32_t)a, (uint32_t)c, (uint32_t)w));
    return 0;
}
