#!/usr/bin/python3
"""SPEC case C69 and SPEC §10.5 (SIGHUP reload), §5.4 (peer policy).

The relay runs with 2 workers and the default peer policy, so loopback
peers are denied.  Clients (added until both workers own at least one
allocation) each allocate; a ChannelBind to a loopback UDP echo peer gets
403.  The config is rewritten with `peers.allow: [127.0.0.1/32]` (and a
changed non-reloadable key, which must be logged as "requires restart"),
SIGHUP is sent, and then, for every client:

* a new ChannelBind to 127.0.0.1:<echo port> succeeds (within 5 s),
* the allocation is kept: a Refresh from the same socket succeeds (not
  437) with the same relayed port still held by the relay,
* data flows through the channel both ways, from the relayed address.

Finally an invalid reload (unknown key) is logged with its location and
leaves the previous configuration in force.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403


def test():
    relay = track(Relay("reload", workers=2, peers_allow=False))
    relay.start()
    workers = relay.wait_workers(2)
    peer = EchoPeer()

    # ---- clients on both workers, each with an allocation; 403 before
    clients = []   # (client, relayed, owner)
    owners_seen = set()
    for i in range(16):
        c = relay.client()  # own username: §2.6.2 step 7
        _, relayed = allocate_checked(relay, c)
        owners = relay.port_owners(relayed[1])
        check(len(owners) == 1 and owners <= set(workers),
              "relay port %d held by %r, expected one worker of %r"
              % (relayed[1], owners, workers))
        m = c.channel_bind(0x4000, peer.addr)
        check(m.error() == (403, "Forbidden") and m.integrity_ok(c.key),
              "before reload: ChannelBind to %r answered %s, expected a "
              "signed 403" % (peer.addr, m.describe()))
        clients.append((c, relayed, owners.pop()))
        owners_seen |= relay.port_owners(relayed[1])
        if len(clients) >= 4 and owners_seen == set(workers):
            break
    check(owners_seen == set(workers), "16 clients all landed on %r"
          % owners_seen)
    log("%d clients with allocations on workers %r; loopback peer denied"
        % (len(clients), sorted(owners_seen)))

    # ---- reload with peers.allow [127.0.0.1/32] and a non-reloadable change
    relay.reload(peers_allow=["127.0.0.1/32"],
                 extra=dict(relay.extra, limits={"max_allocations": 999}))
    t0 = time.monotonic()
    pending = list(range(len(clients)))
    while pending and time.monotonic() - t0 < 5.0:
        for i in list(pending):
            c = clients[i][0]
            m = c.channel_bind(0x4000, peer.addr)
            if m.cls == SUCCESS:
                check(m.integrity_ok(c.key), "ChannelBind success not "
                      "signed: %s" % m.describe())
                pending.remove(i)
            else:
                check(m.error()[0] == 403, "after reload: ChannelBind "
                      "answered %s" % m.describe())
        if pending:
            time.sleep(0.05)
    check(not pending, "C69: 5 s after SIGHUP, ChannelBind to %r still gets "
          "403 for clients %r" % (peer.addr, pending))
    log("C69: ChannelBind to %r allowed %.2f s after SIGHUP"
        % (peer.addr, time.monotonic() - t0))
    check(relay.proc.poll() is None, "relay exited after SIGHUP")
    check(set(relay.worker_pids()) == set(workers), "workers changed on "
          "SIGHUP: %r -> %r" % (workers, relay.worker_pids()))

    # ---- allocations kept, data flows
    for c, relayed, owner in clients:
        m = c.refresh()
        check(m.cls == SUCCESS and m.integrity_ok(c.key),
              "C69: Refresh after reload answered %s (allocation lost?)"
              % m.describe())
        check(relay.port_owners(relayed[1]) == {owner},
              "relay port %d now held by %r, was %r"
              % (relayed[1], relay.port_owners(relayed[1]), owner))
        before = peer.sources.get(relayed, 0)
        payload = b"after-reload-%d" % relayed[1]
        c.send_channel(0x4000, payload)
        got = c.recv_data(2.0)
        check(got is not None and got[:2] == (0x4000, payload),
              "C69: echo through the new channel: got %r" % (got,))
        check(peer.sources.get(relayed, 0) == before + 1,
              "the peer did not see the datagram from the relayed address "
              "%r: %r" % (relayed, peer.sources))
    log("C69 ok: %d allocations kept (Refresh success), data flows"
        % len(clients))

    log_text = relay.log_text()
    check("requires restart" in log_text, "a changed non-reloadable key "
          "(limits.max_allocations) was not logged as 'requires restart'")
    warn = [l for l in log_text.splitlines() if "requires restart" in l]
    check(any("WARN" in l.upper() for l in warn),
          "'requires restart' not logged at warn: %r" % warn)

    # ---- an invalid reload keeps the old configuration
    relay.write_config(peers_allow=["127.0.0.1/32"])
    with open(relay.cfg_path, "a") as f:
        f.write("bogus_key: 1\n")
    nlines = len(open(relay.cfg_path).read().splitlines())
    relay.signal(signal.SIGHUP)
    want = "%s:%d:1: bogus_key: unknown key" % (relay.cfg_path, nlines)
    deadline = time.monotonic() + 3.0
    while want not in relay.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    check(want in relay.log_text(), "invalid reload: %r not logged"
          % want)
    check(relay.proc.poll() is None, "relay exited on an invalid reload")
    peer2 = EchoPeer()
    c, relayed, _ = clients[0]
    m = c.channel_bind(0x4001, peer2.addr)
    check(m.cls == SUCCESS, "after an invalid reload the old config (with "
          "peers.allow) must stay: ChannelBind answered %s" % m.describe())
    c.send_channel(0x4001, b"still-allowed")
    got = c.recv_data(2.0)
    check(got is not None and got[:2] == (0x4001, b"still-allowed"),
          "echo on the second channel: %r" % (got,))
    log("invalid reload logged with its location; old config kept")

    for c, _, _ in clients:
        c.close()
    peer.stop()
    peer2.stop()
    relay.stop()


if __name__ == "__main__":
    main(test)
