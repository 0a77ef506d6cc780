/* timer.c - the core's one timer (SPEC §6): an evtimer re-armed to
 * min(turn_core_next_deadline(), now + 1 s).  The 1 s floor also notices
 * allocations that another process deleted (the core cannot foresee
 * those), so their sockets close within a second (SPEC §4.6). */
#include "config.h"

#include "master/log.h"
#include "rly_err.h"
#include "worker/worker.h"

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    w->timer_at = TURN_NEVER;
    worker_clock(w);
    worker_between_batches(w);
    timer_run(w);
    timer_update(w);
}

int
timer_init(struct worker *w)
{
    w->timer_at = TURN_NEVER;
    w->timer = evtimer_new(w->base, timer_cb, w);
    return w->timer == NULL ? -1 : 0;
}

void
timer_fini(struct worker *w)
{
    if (w->timer != NULL)
        event_free(w->timer);
    w->timer = NULL;
}

void
timer_run(struct worker *w)
{
    int rc;

    udp_io_flush(w);
    while (!w->fatal) {
        rc = turn_core_on_timer(w->core, w->now, &w->q);
        if (rly_is_fatal(rc) || rc < 0) {
            worker_fatal(w, "timer", rc);
            break;
        }
        udp_io_flush(w);
        if (rc == 0)
            break;
    }
}

void
timer_update(struct worker *w)
{
    turn_ms_t       at = turn_core_next_deadline(w->core);
    turn_ms_t       tick = w->now + WORKER_TICK_MS;
    turn_ms_t       delay;
    struct timeval  tv;

    if (at > tick)
        at = tick;
    if (at >= w->timer_at || w->stopping)
        return;
    delay = at > w->now ? at - w->now : 0;
    tv.tv_sec = (time_t)(delay / 1000);
    tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
    if (evtimer_add(w->timer, &tv) == 0)
        w->timer_at = at;
}
