/* shm.c - maps the shared table region; see shm.h.
 *
 * The region is formatted here, before any worker exists, so no lock is
 * needed; after the first fork only the table's own locking applies. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "master/log.h"
#include "master/shm.h"
#include "rly_err.h"

int
shmem_create(struct shmem *sh, uint32_t max_allocs, uint32_t max_chans,
    uint32_t nworkers, rly_rand_fn rand, void *rand_ud)
{
    uint8_t user_key[ATAB_USER_KEY_LEN];
    uint8_t hash_key[ATAB_HASH_KEY_LEN];
    int     rc;

    memset(sh, 0, sizeof(*sh));
    sh->fd = -1;
    sh->size = atab_region_size(max_allocs, max_chans, nworkers);
    if (sh->size == 0) {
        log_error(log_get(), "shared table: invalid sizes");
        return -1;
    }
    sh->fd = memfd_create("firezone-relay-table", MFD_CLOEXEC);
    if (sh->fd < 0) {
        log_error(log_get(), "memfd_create: %s", strerror(errno));
        goto fail;
    }
    if (ftruncate(sh->fd, (off_t)sh->size) != 0) {
        log_error(log_get(), "ftruncate shared table (%zu bytes): %s",
            sh->size, strerror(errno));
        goto fail;
    }
    sh->base = mmap(NULL, sh->size, PROT_READ | PROT_WRITE, MAP_SHARED,
        sh->fd, 0);
    if (sh->base == MAP_FAILED) {
        sh->base = NULL;
        log_error(log_get(), "mmap shared table (%zu bytes): %s", sh->size,
            strerror(errno));
        goto fail;
    }
    if (rand(rand_ud, user_key, sizeof(user_key)) != 0 ||
        rand(rand_ud, hash_key, sizeof(hash_key)) != 0) {
        log_error(log_get(), "shared table: no randomness for its keys");
        goto fail;
    }
    rc = atab_format(sh->base, sh->size, max_allocs, max_chans, nworkers,
        user_key, hash_key);
    if (rc == 0)
        rc = atab_attach(sh->base, sh->size, &sh->tab);
    memset(user_key, 0, sizeof(user_key));
    memset(hash_key, 0, sizeof(hash_key));
    if (rc != 0) {
        log_error(log_get(), "shared table: %s", rly_strerror(rc));
        goto fail;
    }
    log_debug(log_get(), "shared table: %zu bytes, %u allocations, "
        "%u channels, %u workers", sh->size, max_allocs, max_chans,
        nworkers);
    return 0;
fail:
    shmem_destroy(sh);
    return -1;
}

void
shmem_destroy(struct shmem *sh)
{
    atab_detach(sh->tab);
    sh->tab = NULL;
    if (sh->base != NULL)
        munmap(sh->base, sh->size);
    sh->base = NULL;
    if (sh->fd >= 0)
        close(sh->fd);
    sh->fd = -1;
}
