#!/usr/bin/python3
"""SPEC case C71 and SPEC §10.5 (SIGTERM, SIGINT: graceful stop).

* an idle relay: SIGTERM -> exit 0 within 5 s, no worker left;
* 2 workers with live allocations, channels and data flowing: SIGTERM ->
  exit 0 within 5 s, no worker left, the relay ports and the listen port
  free again (allocations do not survive);
* SIGINT behaves like SIGTERM.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403


def test():
    # ---- idle
    r = track(Relay("sigterm-idle", workers=1))
    r.start()
    took = r.stop(timeout=5.0)
    check(port_is_free(r.port), "listen port %d still held after exit"
          % r.port)
    log("C71 ok (idle): exit 0 in %.2f s" % took)

    # ---- live allocations and traffic, 2 workers
    r = track(Relay("sigterm-live", workers=2))
    r.start()
    r.wait_workers(2)
    peer = EchoPeer()
    clients, ports = [], []
    for i in range(4):
        c = r.client()  # own username: §2.6.2 step 7
        _, relayed = allocate_checked(r, c)
        c.bind_ok(0x4000, peer.addr)
        c.send_channel(0x4000, b"live-%d" % i)
        got = c.recv_data(2.0)
        check(got is not None and got[:2] == (0x4000, b"live-%d" % i),
              "echo before SIGTERM: %r" % (got,))
        clients.append(c)
        ports.append(relayed[1])
    for c in clients:
        m = c.refresh()
        check(m.cls == SUCCESS, "allocation not live before SIGTERM: %s"
              % m.describe())
    # keep traffic in flight while the signal arrives
    for c in clients:
        for j in range(20):
            c.send_channel(0x4000, b"x" * 200)
    took = r.stop(timeout=5.0)
    for p in ports:
        check(port_is_free(p), "relay port %d still held after exit" % p)
    check(port_is_free(r.port), "listen port %d still held after exit"
          % r.port)
    log("C71 ok (4 live allocations, 2 workers): exit 0 in %.2f s" % took)
    for c in clients:
        c.close()
    peer.stop()

    # ---- SIGINT
    r = track(Relay("sigint", workers=2))
    r.start()
    ws = r.wait_workers(2)
    c = r.client()
    allocate_checked(r, c)
    t0 = time.monotonic()
    r.proc.send_signal(signal.SIGINT)
    try:
        rc = r.proc.wait(5.0)
    except subprocess.TimeoutExpired:
        raise TestFailure("no exit within 5 s of SIGINT")
    check(rc == 0, "exit status %d after SIGINT" % rc)
    time.sleep(0.2)
    check(not any(pid_alive(w) for w in ws), "workers left after SIGINT")
    r.proc = None
    log("SIGINT ok: exit 0 in %.2f s" % (time.monotonic() - t0))
    c.close()


if __name__ == "__main__":
    main(test)
