#!/usr/bin/python3
"""Issue 4's kill test under live traffic (SPEC §8 "Worker crash", C70).

2 workers.  Clients from different source ports (at least 4, added until
both workers own allocations), each with its own username and two channels
(0x4000 to echo peer A, 0x4001 to echo peer B).  A sender thread sends a
steady stream of sequence-numbered, time-stamped ChannelData on every
channel; a receiver thread records the echoes.  Each worker is killed with
SIGKILL in turn (first the one owning client 0's relay port, then the
other original one).  After each kill every stream must carry echoes of
datagrams sent after the kill within 2 s (10 s for sanitizer or valgrind
builds), and a new worker pid must replace the dead one.

At the end no allocation and no channel may have been lost: every client's
Refresh succeeds, every relay port is still held by a current worker, every
channel still echoes without a new ChannelBind, and the peers saw each
client's datagrams only from that client's relayed address.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403

CHANNELS = (0x4000, 0x4001)
INTERVAL = 0.01          # one datagram per stream every 10 ms
MAX_RUN = 60.0           # hard bound on the traffic threads


class Traffic:
    def __init__(self, clients):
        self.clients = clients
        self.halt = threading.Event()
        self.sent = {}       # (i, ch) -> count
        self.recv = {}       # (i, ch) -> count
        self.last_sent_at = {}   # (i, ch) -> send time (monotonic) of the
        self.errors = []         # newest echoed datagram
        self.t_start = time.monotonic()
        for i in range(len(clients)):
            for ch in CHANNELS:
                self.sent[(i, ch)] = 0
                self.recv[(i, ch)] = 0
                self.last_sent_at[(i, ch)] = 0.0
        self.tx = threading.Thread(target=self.send_loop, daemon=True)
        self.rx = threading.Thread(target=self.recv_loop, daemon=True)
        self.tx.start()
        self.rx.start()

    def send_loop(self):
        seq = 0
        while not self.halt.is_set() and \
                time.monotonic() - self.t_start < MAX_RUN:
            for i, c in enumerate(self.clients):
                for ch in CHANNELS:
                    payload = struct.pack("!IHHd", seq, i, ch,
                                          time.monotonic()) + b"L" * 100
                    try:
                        c.send_channel(ch, payload)
                        self.sent[(i, ch)] += 1
                    except OSError as e:
                        self.errors.append("send: %s" % e)
            seq += 1
            time.sleep(INTERVAL)

    def recv_loop(self):
        socks = {c.sock: i for i, c in enumerate(self.clients)}
        while not self.halt.is_set() and \
                time.monotonic() - self.t_start < MAX_RUN:
            r, _, _ = select.select(list(socks), [], [], 0.05)
            for s in r:
                try:
                    d, _ = s.recvfrom(70000)
                except OSError:
                    continue
                cd = parse_chandata(d)
                if cd is None or len(cd[1]) < 16:
                    self.errors.append("client %d got a non-ChannelData "
                                       "datagram %r" % (socks[s], d[:32]))
                    continue
                ch, payload = cd
                seq, i, pch, t = struct.unpack("!IHHd", payload[:16])
                if i != socks[s] or pch != ch:
                    self.errors.append("client %d got stream (%d, 0x%x) on "
                                       "channel 0x%x" % (socks[s], i, pch,
                                                         ch))
                    continue
                self.recv[(i, ch)] += 1
                if t > self.last_sent_at[(i, ch)]:
                    self.last_sent_at[(i, ch)] = t

    def stop(self):
        self.halt.set()
        self.tx.join(2)
        self.rx.join(2)


def wait_recovered(traffic, t_kill, limit):
    """Wait until every stream echoed a datagram sent after t_kill."""
    deadline = t_kill + limit + 2.0
    while time.monotonic() < deadline:
        if all(t > t_kill for t in traffic.last_sent_at.values()):
            return time.monotonic() - t_kill
        time.sleep(0.01)
    late = [k for k, t in traffic.last_sent_at.items() if t <= t_kill]
    raise TestFailure("streams %s carried no post-kill datagram within "
                      "%.1f s" % (["client %d ch 0x%x" % k for k in late],
                                  limit + 2.0))


def test():
    limit = 10.0 if slow_build() else 2.0
    relay = track(Relay("worker-kill-load", workers=2,
                        extra={"limits": {"error_rate": 0}}))
    relay.start()
    workers = relay.wait_workers(2)
    peers = [EchoPeer(), EchoPeer()]

    clients, relayed, owner = [], [], []
    for n in range(16):
        c = relay.client()
        _, ra = allocate_checked(relay, c)
        for ch, p in zip(CHANNELS, peers):
            c.bind_ok(ch, p.addr)
        o = relay.port_owners(ra[1])
        check(len(o) == 1 and o <= set(workers), "relay port %d held by %r"
              % (ra[1], o))
        clients.append(c)
        relayed.append(ra)
        owner.append(o.pop())
        if len(clients) >= 4 and set(owner) == set(workers):
            break
    check(set(owner) == set(workers), "16 clients all on worker(s) %r"
          % set(owner))
    log("%d clients x %d channels; allocations per worker: %s"
        % (len(clients), len(CHANNELS),
           {w: owner.count(w) for w in workers}))

    traffic = Traffic(clients)
    time.sleep(0.5)
    check(all(v > 0 for v in traffic.recv.values()),
          "not every stream flows before the kills: %r" % traffic.recv)

    victims = [owner[0]] + [w for w in workers if w != owner[0]]
    current = list(workers)
    times = []
    for victim in victims:
        t_kill = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        while pid_alive(victim) and time.monotonic() - t_kill < 1.0:
            time.sleep(0.001)
        check(not pid_alive(victim), "worker %d alive 1 s after SIGKILL"
              % victim)
        # only echoes of datagrams sent after the victim died count
        wait_recovered(traffic, time.monotonic(), limit)
        took = time.monotonic() - t_kill
        times.append(took)
        log("killed worker %d: every stream flowing again after %.3f s"
            % (victim, took))
        check(took <= limit, "streams resumed %.3f s after killing %d "
              "(limit %.1f s)" % (took, victim, limit))
        now = relay.wait_workers(2, exclude={victim}, timeout=limit)
        new = set(now) - set(current)
        check(len(new) == 1 and victim not in now,
              "workers %r -> %r after killing %d" % (current, now, victim))
        current = now
        time.sleep(0.3)
    traffic.stop()
    check(not traffic.errors, "traffic errors: %r" % traffic.errors[:5])
    sent = sum(traffic.sent.values())
    recv = sum(traffic.recv.values())
    log("traffic: %d datagrams sent, %d echoed (%.2f%% lost around the "
        "kills)" % (sent, recv, 100.0 * (sent - recv) / max(sent, 1)))
    check(relay.proc.poll() is None, "the master exited")

    # ---- nothing lost
    for c in clients:
        c.drain(0.05)
    for i, c in enumerate(clients):
        m = c.refresh()
        check(m.cls == SUCCESS and m.integrity_ok(c.key),
              "client %d: Refresh answered %s: allocation lost"
              % (i, m.describe()))
        o = relay.port_owners(relayed[i][1])
        check(len(o) == 1 and o <= set(current), "client %d: relay port %d "
              "held by %r, workers now %r" % (i, relayed[i][1], o, current))
        for ch, p in zip(CHANNELS, peers):
            payload = b"final-%d-%d" % (i, ch)
            c.send_channel(ch, payload)
            got = c.recv_data(2.0)
            check(got is not None and got[:2] == (ch, payload),
                  "client %d channel 0x%x lost: got %r" % (i, ch, got))
    for p in peers:
        unknown = set(p.sources) - set(relayed)
        check(not unknown, "a peer saw datagrams from %r, not a relayed "
              "address of %r" % (unknown, relayed))
        check(set(p.sources) == set(relayed), "a peer never heard from %r"
              % (set(relayed) - set(p.sources)))
    log("no allocation or channel lost: %d Refreshes ok, %d channels echo; "
        "re-adoption times %s s" % (len(clients), len(clients) *
                                    len(CHANNELS),
                                    ", ".join("%.3f" % t for t in times)))
    for c in clients:
        c.close()
    for p in peers:
        p.stop()
    relay.stop()


if __name__ == "__main__":
    main(test)
