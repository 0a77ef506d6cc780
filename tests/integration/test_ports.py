#!/usr/bin/python3
"""Ports held by other programs (SPEC §2.1 "Trial bind", §4.3 "Bind
failure", §10.6).

* The listen port held by another process's plain UDP socket, and by a
  socket with SO_REUSEPORT (what a coturn on the same port looks like): the
  relay must not start, must not silently join the SO_REUSEPORT group, and
  exits 1 with an error naming the address.
* Relay ports held by another program: with a range of 4 ports of which 2
  are held by foreign sockets, two allocations get the two free ports
  (each in range, and never a foreign one), and a third Allocate gets 508
  "Insufficient Capacity"; the relay keeps running (upstream exits) and the
  foreign sockets never receive relayed data.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403


def test():
    # ---- trial bind
    r = track(Relay("trial-bind", workers=2))
    r.write_config()
    for reuse in (False, True):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", r.port))
        p = spawn([RELAY_BIN, "-c", r.cfg_path], stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                  env=clean_env(), cwd=r.dir)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(2)
            raise TestFailure("the relay started although 127.0.0.1:%d is "
                              "held (SO_REUSEPORT %s)" % (r.port, reuse))
        err = err.decode(errors="replace")
        check(p.returncode == 1, "listen port held (SO_REUSEPORT %s): exit "
              "%d, expected 1; stderr:\n%s" % (reuse, p.returncode, err))
        check("127.0.0.1:%d" % r.port in err, "the error does not name "
              "127.0.0.1:%d:\n%s" % (r.port, err))
        s.close()
        log("listen port held (SO_REUSEPORT %s): exit 1, %r" % (
            reuse, [l for l in err.splitlines() if "ERROR" in l][:1]))
    r.cleanup()

    # ---- relay ports held by another program
    r = track(Relay("foreign-ports", workers=1, relay_ports=4))
    rng = list(range(r.port_min, r.port_max + 1))
    foreign = []
    for p in rng[1:3]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", p))
        foreign.append(s)
    held = {s.getsockname()[1] for s in foreign}
    r.start()
    peer = EchoPeer()
    got_ports = []
    clients = []
    for i in range(2):
        c = r.client()
        _, ra = allocate_checked(r, c)
        check(ra[1] not in held, "allocation %d got port %d, which another "
              "program holds" % (i, ra[1]))
        c.bind_ok(0x4000, peer.addr)
        c.send_channel(0x4000, b"port-%d" % i)
        got = c.recv_data(2.0)
        check(got is not None and got[:2] == (0x4000, b"port-%d" % i),
              "echo through port %d: %r" % (ra[1], got))
        got_ports.append(ra[1])
        clients.append(c)
    check(sorted(got_ports) == sorted(set(rng) - held), "ports %r, expected "
          "the free ones %r" % (got_ports, sorted(set(rng) - held)))
    c = r.client()
    m = c.request(ALLOCATE, [transport_udp()], timeout=5.0)
    check(m.error() == (508, "Insufficient Capacity") and
          m.integrity_ok(c.key), "third Allocate with only foreign-held "
          "ports left: %s, expected a signed 508" % m.describe())
    check(r.proc.poll() is None, "the relay exited after bind failures")
    for s in foreign:
        s.setblocking(False)
        try:
            d = s.recv(2048)
            raise TestFailure("a foreign socket received %r" % d)
        except BlockingIOError:
            pass
    log("relay ports %r held by another program were skipped; 508 when "
        "only they remain; relay still running" % sorted(held))
    # the relay still works for the existing allocations
    for i, cl in enumerate(clients):
        cl.send_channel(0x4000, b"again-%d" % i)
        got = cl.recv_data(2.0)
        check(got is not None and got[:2] == (0x4000, b"again-%d" % i),
              "echo after the 508: %r" % (got,))
    for cl in clients + [c]:
        cl.close()
    for s in foreign:
        s.close()
    peer.stop()
    r.stop()


if __name__ == "__main__":
    main(test)
