/* turn_cmd.c - the command queue; see turn_cmd.h. */
#include <stdlib.h>
#include <string.h>

#include "rly_err.h"
#include "turn_cmd.h"

int
turn_cmdq_init(struct turn_cmdq *q, size_t ncmds, size_t arena_bytes)
{
    memset(q, 0, sizeof(*q));
    q->cmd = calloc(ncmds, sizeof(*q->cmd));
    q->arena = malloc(arena_bytes);
    if (q->cmd == NULL || q->arena == NULL) {
        turn_cmdq_fini(q);
        return RLY_ERR_NOMEM;
    }
    q->cap = ncmds;
    q->arena_cap = arena_bytes;
    return 0;
}

void
turn_cmdq_fini(struct turn_cmdq *q)
{
    free(q->cmd);
    free(q->arena);
    memset(q, 0, sizeof(*q));
}

void
turn_cmdq_reset(struct turn_cmdq *q)
{
    q->n = 0;
    q->used = 0;
}

int
turn_cmdq_room(const struct turn_cmdq *q)
{
    return q->cap - q->n >= TURN_CMDS_PER_EVENT &&
        q->arena_cap - q->used >= TURN_ARENA_PER_EVENT;
}

struct turn_cmd *
turn_cmdq_push(struct turn_cmdq *q, enum turn_cmd_kind k)
{
    struct turn_cmd *c;

    if (q->n >= q->cap)
        return NULL;
    c = &q->cmd[q->n++];
    memset(c, 0, sizeof(*c));
    c->kind = k;
    return c;
}

uint8_t *
turn_cmdq_arena(struct turn_cmdq *q, size_t len)
{
    uint8_t *p;

    /* Keep reservations 8-byte aligned for whoever reads them. */
    len = (len + 7) & ~(size_t)7;
    if (q->arena_cap - q->used < len)
        return NULL;
    p = q->arena + q->used;
    q->used += len;
    return p;
}

void
turn_cmdq_arena_trim(struct turn_cmdq *q, uint8_t *p, size_t reserved,
    size_t used)
{
    reserved = (reserved + 7) & ~(size_t)7;
    used = (used + 7) & ~(size_t)7;
    if (p + reserved == q->arena + q->used && used <= reserved)
        q->used -= reserved - used;
}
