#!/usr/bin/python3
"""Every table of the relay bounded and tested at its bound, through the
real binary on loopback (issue 8 item 3).

Relay "alloc" (2 workers, dual-stack, 16 relay ports, limits.max_allocations
8, limits.max_channels 3):
* 8 allocations (4 dual-stack, 4 IPv4-only) succeed; the 9th gets 508
  signed (SPEC §2.6.2 step 4, §4.3); so does an Allocate at the bound with
  the username of a live allocation (capacity is checked before the
  same-username replacement, §4.3);
* per-username rule (§2.6.2 step 7, §4.1): below the bound, an Allocate
  with the same username from another source port replaces the first
  allocation: the new one succeeds, the first one's Refresh gets 437;
* limits.max_channels 3 across clients: the 4th ChannelBind gets 508, a
  refresh of an existing channel still succeeds, and channels freed by a
  Refresh 0 can be bound again (§2.6.4 steps 8-9);
* file descriptors: /proc/<worker>/fd summed over the workers grows by
  exactly one socket per relayed family and allocation, does not grow on
  508s, and returns to the baseline after Refresh 0 of every allocation;
  the freed slots serve 8 allocations again.

Relay "ports" (2 workers, IPv4, a relay range of 4 ports): the 5th
allocation gets 508.  Then a bind failure (§4.3): 3 of the 4 ports are
occupied by this test's own sockets (bound WITHOUT SO_REUSEPORT); Allocates
land on the one free port (the relay skips the occupied ones), a second
one gets 508 after its 8 bind attempts, the relay never crashes, and once
the ports are released an Allocate succeeds again.

Relay "nonces" (1 worker, so that every client socket shares its nonce
table; limits.nonce_table_size 2; SPEC §3.7, case C54): two sockets hold
nonces at the bound; a third evicts the least recently used one, whose
next authenticated request gets 438 with a fresh nonce, and whose retry
succeeds; the one evicted by that is next.

Relay "chans" (2 workers, limits.max_channels 4100): 4,096 ChannelBinds
from one allocation (pipelined, a bounded window) succeed, the 4,097th gets
508 (the per-socket cap, §5.1) although the table has room; a second
client fills the table (4 channels) and its 5th gets 508; after a Refresh 0
of the first allocation the freed channels can be bound again.
"""

import os
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403

REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           437: "Allocation Mismatch", 438: "Stale Nonce",
           508: "Insufficient Capacity"}
AAF6 = (A_ADDITIONAL_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))
COVERED = []


def covered(what):
    COVERED.append(what)
    log("OK: " + what)


def metric(relay, name):
    url = "http://127.0.0.1:%d/metrics" % relay.health_port
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def wait_metric(relay, name, want, timeout=3.0):
    """The gauge reaches `want` (skipped when /metrics is not served)."""
    deadline = time.monotonic() + timeout
    v = metric(relay, name)
    while v is not None and v != want and time.monotonic() < deadline:
        time.sleep(0.05)
        v = metric(relay, name)
    check(v is None or v == want, "%s = %r, expected %r" % (name, v, want))
    return v


class Creds:
    """Credentials computed from the relay's secret file (SPEC §3.3), so
    that many usernames cost no `credentials` subprocess each."""

    def __init__(self, relay):
        with open(relay.secret_path) as f:
            self.secret = f.read().splitlines()[0]
        self.relay = relay
        # the derivation agrees with the relay's own `credentials`
        u, p = relay.credentials(extra_args=["--salt", "probe"])
        exp = int(u.split(":")[0])
        check(turn_rest_password(exp, self.secret, "probe") == p,
              "password derivation disagrees with `credentials`")

    def client(self, salt, bind=("127.0.0.1", 0), server=None):
        exp = int(time.time()) + 3600
        user = "%d:%s" % (exp, salt)
        return TurnClient(server or ("127.0.0.1", self.relay.port), user,
                          turn_rest_password(exp, self.secret, salt),
                          bind=bind)

    def same_user(self, other, bind=("127.0.0.1", 0)):
        """A client on a new socket with `other`'s username."""
        return TurnClient(other.server, other.username, other.password,
                          bind=bind)


def expect_err(m, code, key, what):
    check(m is not None, "%s: no answer" % what)
    check(m.cls == ERROR and m.error() == (code, REASONS[code]),
          "%s: expected %d %r, got %s" % (what, code, REASONS[code],
                                          m.describe()))
    check(m.integrity_ok(key), "%s: %d not signed with the request's key: %s"
          % (what, code, m.describe()))


def expect_ok(m, key, what):
    check(m is not None and m.cls == SUCCESS, "%s: expected success, got %s"
          % (what, m.describe() if m else None))
    check(m.integrity_ok(key), "%s: success not signed: %s"
          % (what, m.describe()))


def fd_total(pids):
    n = 0
    for p in pids:
        n += len(os.listdir("/proc/%d/fd" % p))
    return n


def wait_fds(pids, want, what, timeout=2.5):
    """Relay sockets close within 1 s of a deletion (SPEC §4.6)."""
    deadline = time.monotonic() + timeout
    n = fd_total(pids)
    while n != want and time.monotonic() < deadline:
        time.sleep(0.02)
        n = fd_total(pids)
    check(n == want, "%s: workers hold %d fds, expected %d" % (what, n, want))
    return n


def same_processes(relay, master, workers, what):
    check(relay.proc.poll() is None, "%s: the relay master exited" % what)
    ws = relay.worker_pids()
    check(ws == workers, "%s: workers %r, expected the same %r (a worker "
          "died and was restarted?)" % (what, ws, workers))


def assert_quiet_log(relay, what, allow=()):
    bad = [l for l in relay.log_text().splitlines()
           if (" WARN " in l or " ERROR " in l)
           and not any(a in l for a in allow)]
    check(not bad, "%s: unexpected warnings or errors:\n%s"
          % (what, "\n".join(bad[:20])))


# --------------------------------------------------------------------------

def test_allocations(have6):
    relay = track(Relay("limits-alloc", workers=2, ipv6=have6,
                        relay_ports=16,
                        extra={"limits": {"max_allocations": 8,
                                          "max_channels": 3}}))
    relay.start()
    workers = relay.wait_workers(2)
    master = relay.pid
    cr = Creds(relay)
    base = fd_total(workers)
    log("alloc: workers %r hold %d fds at the baseline" % (workers, base))

    clients, fds_per = [], []
    for i in range(8):
        c = cr.client("alloc%d" % i)
        dual = have6 and i % 2 == 0
        m, ra = allocate_checked(relay, c, extra=[AAF6] if dual else [])
        ras = m.xaddrs(A_XOR_RELAYED_ADDRESS)
        check(len(ras) == (2 if dual else 1), "allocation %d: relayed %r"
              % (i, ras))
        clients.append(c)
        fds_per.append(len(ras))
    ports = [c.relayed[1] for c in clients]
    check(len(set(ports)) == 8, "8 allocations on ports %r: not distinct"
          % ports)
    at_bound = base + sum(fds_per)
    wait_fds(workers, at_bound, "8 allocations (%d sockets)" % sum(fds_per))
    wait_metric(relay, "relay_active_allocations", 8)
    covered("8 allocations at limits.max_allocations 8: +%d worker fds "
            "(1 per relayed family: %d dual, %d IPv4-only)"
            % (sum(fds_per), fds_per.count(2), fds_per.count(1)))

    # the 9th: 508, signed, no fd
    ninth = cr.client("alloc-ninth")
    m = ninth.request(ALLOCATE, [transport_udp()])
    expect_err(m, 508, ninth.key, "9th Allocate")
    m = ninth.request(ALLOCATE, [transport_udp(), AAF6])
    expect_err(m, 508, ninth.key, "9th Allocate, dual")
    # at the bound, even the same username from a new socket gets 508: the
    # capacity check comes first (SPEC §4.3), and the old one lives on
    dup = cr.same_user(clients[0])
    m = dup.request(ALLOCATE, [transport_udp()])
    expect_err(m, 508, dup.key, "Allocate at the bound with a live "
               "allocation's username")
    expect_ok(clients[0].refresh(), clients[0].key,
              "Refresh of the allocation whose username was reused at the "
              "bound")
    wait_fds(workers, at_bound, "after three 508s")
    covered("9th Allocate -> 508 signed (IPv4 and dual), no fd leaked")
    covered("same-username Allocate at the bound -> 508 (capacity first), "
            "the old allocation kept")

    # per-username rule below the bound
    expect_ok(clients[7].refresh(0), clients[7].key, "Refresh 0 of #8")
    freed = fds_per.pop()
    clients.pop().close()
    wait_fds(workers, at_bound - freed, "after Refresh 0 of #8")
    m = dup.request(ALLOCATE, [transport_udp()])
    expect_ok(m, dup.key, "Allocate with #1's username from another port")
    dup.relayed = m.xaddr(A_XOR_RELAYED_ADDRESS)
    m = clients[0].refresh()
    expect_err(m, 437, clients[0].key, "Refresh of the replaced allocation")
    m = clients[0].channel_bind(0x4000, ("127.0.0.1", 9))
    expect_err(m, 437, clients[0].key, "ChannelBind on the replaced "
               "allocation")
    old = clients.pop(0)
    old_fds = fds_per.pop(0)
    old.close()
    clients.append(dup)
    fds_per.append(1)
    wait_fds(workers, base + sum(fds_per), "after the replacement")
    wait_metric(relay, "relay_active_allocations", 7)
    check(not relay.port_owners(old.relayed[1]) or
          old.relayed[1] == dup.relayed[1], "the replaced allocation's relay "
          "port %d is still open" % old.relayed[1])
    # the table is at 7: one more fits, then the bound holds again
    allocate_checked(relay, ninth)
    clients.append(ninth)
    fds_per.append(1)
    at_bound = base + sum(fds_per)
    wait_fds(workers, at_bound, "back at the bound")
    wait_metric(relay, "relay_active_allocations", 8)
    tenth = cr.client("alloc-tenth")
    m = tenth.request(ALLOCATE, [transport_udp()])
    expect_err(m, 508, tenth.key, "Allocate beyond the bound after the "
               "replacement")
    covered("same username from another source port replaces the first "
            "allocation: first gets 437 on Refresh and ChannelBind, its %d "
            "socket(s) closed, the table still bounded at 8" % old_fds)

    # limits.max_channels 3, shared by all clients
    a, b = clients[0], clients[1]
    peers = [udp_socket("127.0.0.1") for _ in range(5)]
    pa = [p.getsockname()[:2] for p in peers]
    a.bind_ok(0x4000, pa[0])
    a.bind_ok(0x4001, pa[1])
    b.bind_ok(0x4000, pa[2])
    wait_metric(relay, "relay_active_channels", 3)
    expect_err(b.channel_bind(0x4001, pa[3]), 508, b.key,
               "4th channel (b)")
    expect_err(a.channel_bind(0x4002, pa[4]), 508, a.key,
               "4th channel (a)")
    a.bind_ok(0x4000, pa[0])               # a refresh at the bound
    # data still flows on a channel while the table is full
    a.send_channel(0x4001, b"full-table")
    got = recv_from(peers[1], 2.0)
    check(got is not None and got[0] == b"full-table", "data on a channel "
          "with the table full: %r" % (got,))
    covered("limits.max_channels 3 -> 4th ChannelBind 508 signed (both "
            "clients); refresh of an existing channel succeeds")
    expect_ok(a.refresh(0), a.key, "Refresh 0 of a (2 channels)")
    clients.pop(0).close()
    fds_per.pop(0)
    wait_metric(relay, "relay_active_channels", 1)
    b.bind_ok(0x4001, pa[3])
    b.bind_ok(0x4002, pa[4])
    expect_err(b.channel_bind(0x4003, pa[0]), 508, b.key,
               "4th channel after the refill")
    covered("channels freed by Refresh 0 are bound again; the bound holds")
    for p in peers:
        p.close()

    # everything freed: back to the fd baseline; the slots serve again
    for c in clients:
        expect_ok(c.refresh(0), c.key, "Refresh 0")
    wait_fds(workers, base, "after Refresh 0 of every allocation")
    wait_metric(relay, "relay_active_allocations", 0)
    wait_metric(relay, "relay_active_channels", 0)
    again = []
    for i in range(8):
        c = cr.client("again%d" % i)
        allocate_checked(relay, c)
        again.append(c)
    expect_err(tenth.request(ALLOCATE, [transport_udp()]), 508, tenth.key,
               "9th Allocate, second round")
    wait_fds(workers, base + 8, "8 IPv4 allocations, second round")
    for c in again:
        expect_ok(c.refresh(0), c.key, "Refresh 0, second round")
        c.close()
    wait_fds(workers, base, "after the second round")
    covered("fds back to the baseline (%d) after Refresh 0 of all; the 8 "
            "slots serve again and the 9th gets 508 again" % base)
    same_processes(relay, master, workers, "alloc relay")
    assert_quiet_log(relay, "alloc relay")
    for c in clients + [tenth]:
        c.close()
    relay.stop()


def test_ports():
    relay = track(Relay("limits-ports", workers=2, relay_ports=4))
    relay.start()
    workers = relay.wait_workers(2)
    master = relay.pid
    cr = Creds(relay)
    base = fd_total(workers)
    rng = list(range(relay.port_min, relay.port_max + 1))
    check(len(rng) == 4, "relay range %r" % rng)

    cs = []
    for i in range(4):
        c = cr.client("port%d" % i)
        allocate_checked(relay, c)
        cs.append(c)
    check(sorted(c.relayed[1] for c in cs) == rng, "4 allocations on %r, "
          "expected each port of %r once" % ([c.relayed[1] for c in cs],
                                             rng))
    fifth = cr.client("port-fifth")
    expect_err(fifth.request(ALLOCATE, [transport_udp()]), 508, fifth.key,
               "5th Allocate on a 4-port range")
    wait_fds(workers, base + 4, "4 allocations on 4 ports")
    covered("relay range of 4 ports -> 4 allocations on distinct ports, the "
            "5th gets 508 signed")
    for c in cs:
        expect_ok(c.refresh(0), c.key, "Refresh 0")
        c.close()
    wait_fds(workers, base, "after Refresh 0 of the 4")

    # bind failure: occupy 3 of the 4 ports ourselves, no SO_REUSEPORT
    free_port = rng[2]
    blockers = []
    deadline = time.monotonic() + 3.0
    for p in rng:
        if p == free_port:
            continue
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", p))
                blockers.append(s)
                break
            except OSError:
                s.close()
                check(time.monotonic() < deadline, "cannot occupy relay port"
                      " %d (still held?)" % p)
                time.sleep(0.05)
    log("ports: occupied %r; %d is free" % ([s.getsockname()[1] for s in
                                             blockers], free_port))
    for i in range(6):
        c = cr.client("bindfail%d" % i)
        m, ra = allocate_checked(relay, c)
        check(ra[1] == free_port, "Allocate with 3 of 4 ports occupied got "
              "port %d, expected the free %d" % (ra[1], free_port))
        other = cr.client("bindfail-other%d" % i)
        m = other.request(ALLOCATE, [transport_udp()])
        expect_err(m, 508, other.key, "Allocate with every unheld port "
                   "occupied by another program")
        other.close()
        same_processes(relay, master, workers, "after a bind failure")
        wait_fds(workers, base + 1, "one allocation, the rest failed binds")
        expect_ok(c.refresh(0), c.key, "Refresh 0")
        c.close()
        wait_fds(workers, base, "after Refresh 0")
    covered("bind failure: 6 x an Allocate lands on the one port not "
            "occupied by another program (skipping occupied ones), a second "
            "gets 508 after its bind attempts; no crash, no fd leaked")
    for s in blockers:
        s.close()
    later = []
    for i in range(4):
        c = cr.client("released%d" % i)
        allocate_checked(relay, c)
        later.append(c)
    check(sorted(c.relayed[1] for c in later) == rng, "after releasing the "
          "ports: allocations on %r" % [c.relayed[1] for c in later])
    for c in later:
        expect_ok(c.refresh(0), c.key, "Refresh 0")
        c.close()
    covered("released ports are used again: 4 allocations over the range")
    same_processes(relay, master, workers, "ports relay")
    tail = [l for l in relay.log_text().splitlines()
            if " WARN " in l or " ERROR " in l]
    if tail:
        log("ports relay logged:\n  " + "\n  ".join(tail[:10]))
    check(not [l for l in tail if " ERROR " in l], "errors logged on bind "
          "failures:\n" + "\n".join(tail[:10]))
    fifth.close()
    relay.stop()


def test_nonces():
    relay = track(Relay("limits-nonces", workers=1,
                        extra={"limits": {"nonce_table_size": 2}}))
    relay.start()
    cr = Creds(relay)

    def first_401(c):
        tid = new_tid()
        m = c.transact_raw(encode(ALLOCATE, REQUEST, tid, [transport_udp()]),
                           tid)
        check(m is not None and m.error()[0] == 401 and m.has(A_NONCE),
              "credential-less Allocate: %r" % (m,))
        c._take_nonce(m)
        return c.nonce

    def authd(c, what):
        """One CreatePermission with the client's current nonce, no
        automatic retry: the raw answer."""
        tid = new_tid()
        m = c.transact_raw(c.build(CREATE_PERMISSION, [], tid), tid)
        check(m is not None, "%s: no answer" % what)
        return m

    def stale(c, old, what):
        m = authd(c, what)
        expect_err(m, 438, c.key, what)
        new = m.text(A_NONCE)
        check(new and new != old, "%s: the 438 carries %r, expected a fresh "
              "nonce" % (what, new))
        c._take_nonce(m)
        expect_ok(authd(c, what + ", retry"), c.key, what + ", retry")

    c1, c2, c3 = (cr.client("nonce%d" % i) for i in range(3))
    n1, n2 = first_401(c1), first_401(c2)
    check(n1 != n2, "two sockets got the same nonce")
    expect_ok(authd(c1, "c1 at the bound"), c1.key, "c1 at the bound")
    expect_ok(authd(c2, "c2 at the bound"), c2.key, "c2 at the bound")
    covered("nonce_table_size 2: two sockets keep their nonces")
    n3 = first_401(c3)                      # evicts c1, the LRU entry
    stale(c1, n1, "c1 after eviction by c3")  # its 438 evicts c2
    expect_ok(authd(c3, "c3 (not evicted)"), c3.key, "c3 (not evicted)")
    covered("third socket evicts the least recently used: its next auth'd "
            "request gets 438 with a fresh nonce, the retry succeeds (C54)")
    stale(c2, n2, "c2, evicted by c1's new nonce")
    covered("the entry evicted in turn gets 438 too; the most recent one "
            "does not")
    check(n3 not in (n1, n2), "nonce reuse across sockets")
    for c in (c1, c2, c3):
        c.close()

    # one nonce serves exactly 10,000 requests (SPEC §3.7, case C17):
    # pipelined auth'd Refreshes without an allocation (437 each), never
    # retransmitted (a retransmission would consume a use)
    c4 = cr.client("nonce-uses")
    n4 = first_401(c4)
    uses, window, answered = 10000, 64, 0
    pending = set()
    sent = 0
    t0 = time.monotonic()
    while answered < uses:
        while sent < uses and len(pending) < window:
            tid = new_tid()
            c4.send_raw(c4.build(REFRESH, [], tid))
            pending.add(tid)
            sent += 1
        got = c4._recv(2.0)
        check(got is not None, "nonce uses: no answer after %d of %d "
              "(%d outstanding)" % (answered, uses, len(pending)))
        d = got[0]
        if d[8:20] not in pending:
            continue
        pending.discard(d[8:20])
        m = StunMessage(d)
        expect_err(m, 437, c4.key, "auth'd Refresh %d of 10,000 with one "
                   "nonce" % (answered + 1))
        answered += 1
    took = time.monotonic() - t0
    m = authd(c4, "request 10,001")
    expect_err(m, 438, c4.key, "request 10,001 with one nonce")
    check(m.text(A_NONCE) != n4, "the 438 after 10,000 uses carries the "
          "spent nonce")
    c4._take_nonce(m)
    expect_ok(authd(c4, "after the new nonce"), c4.key, "after the new "
              "nonce")
    covered("one nonce passes exactly 10,000 auth'd requests (pipelined, "
            "%.2f s); the 10,001st gets 438 with a fresh nonce (C17)" % took)
    c4.close()

    # the rate-limit buckets share the bound (SPEC §2.12): an LRU table of
    # nonce_table_size (2) IPs per worker; an evicted IP starts full again
    def alloc_burst(src, n):
        s = udp_socket(src)
        t = time.monotonic()
        for i in range(n):
            tid = new_tid()
            s.sendto(encode(ALLOCATE, REQUEST, tid, [transport_udp()]),
                     ("127.0.0.1", relay.port))
        got, last = 0, t
        while recv_from(s, 0.3) is not None:
            got += 1
            last = time.monotonic()
        s.close()
        return got, t, last
    got, t1, last1 = alloc_burst("127.0.0.5", 260)
    el = last1 - t1
    check(200 <= got <= 200 + 100 * el + 1, "rate limit: %d of 260 "
          "answered in %.3f s, expected 200 + at most 100/s" % (got, el))
    got2, _, last2 = alloc_burst("127.0.0.5", 100)
    check(got + got2 <= 200 + 100 * (last2 - t1) + 1, "rate limit: %d + %d "
          "answers to one IP within %.3f s" % (got, got2, last2 - t1))
    for src in ("127.0.0.6", "127.0.0.7"):       # two other IPs evict it
        g = alloc_burst(src, 1)[0]
        check(g == 1, "%s: no 401" % src)
    got3 = alloc_burst("127.0.0.5", 150)[0]
    check(got3 == 150, "the evicted IP should start full again: %d of 150 "
          "answered" % got3)
    covered("rate-limit table at its bound (2 IPs per worker): 127.0.0.5 "
            "gets %d of 260 then %d of 100; after 2 other IPs evict it, "
            "150 of 150 (starts full)" % (got, got2))
    assert_quiet_log(relay, "nonces relay")
    relay.stop()


def test_channels_per_client():
    relay = track(Relay("limits-chans", workers=2,
                        extra={"limits": {"max_channels": 4100}}))
    relay.start()
    workers = relay.wait_workers(2)
    master = relay.pid
    cr = Creds(relay)
    x = cr.client("chans-x")
    allocate_checked(relay, x)
    x.request(CREATE_PERMISSION, [])        # nonce in hand
    check(x.key is not None, "no nonce")

    n = 4096
    window = 64
    todo = list(range(n))
    pending = {}            # tid -> (index, data, sent at)
    done = 0
    t0 = time.monotonic()
    deadline = t0 + 30.0
    retrans = 0

    def bind_req(i):
        tid = new_tid()
        peer = ("127.0.0.2", 10000 + i)
        data = x.build(CHANNEL_BIND, [
            (A_CHANNEL_NUMBER, struct.pack("!HH", 0x4000 + i, 0)),
            (A_XOR_PEER_ADDRESS, encode_xor_address(peer, tid))], tid)
        return tid, data

    while done < n:
        check(time.monotonic() < deadline, "4,096 ChannelBinds: only %d done"
              " in 30 s" % done)
        while todo and len(pending) < window:
            i = todo.pop(0)
            tid, data = bind_req(i)
            x.send_raw(data)
            pending[tid] = (i, data, time.monotonic())
        got = x._recv(0.5)
        if got is None:
            now = time.monotonic()
            for tid, (i, data, at) in list(pending.items()):
                if now - at > 1.0:              # an idempotent refresh
                    x.send_raw(data)
                    pending[tid] = (i, data, now)
                    retrans += 1
            continue
        d, _ = got
        if len(d) < 20 or d[8:20] not in pending:
            continue
        i, _, _ = pending.pop(d[8:20])
        m = StunMessage(d)
        check(m.cls == SUCCESS and m.integrity_ok(x.key), "ChannelBind %d of"
              " 4,096 (0x%04x): %s" % (i + 1, 0x4000 + i, m.describe()))
        done += 1
    took = time.monotonic() - t0
    log("chans: 4,096 ChannelBinds from one allocation in %.2f s (window %d,"
        " %d retransmissions)" % (took, window, retrans))
    wait_metric(relay, "relay_active_channels", 4096)
    m = x.channel_bind(0x5000, ("127.0.0.2", 20000))
    expect_err(m, 508, x.key, "4,097th channel of one client socket")
    expect_ok(x.channel_bind(0x4000, ("127.0.0.2", 10000)), x.key,
              "refresh of channel 0x4000 at the per-socket cap")
    covered("4,096 channels on one client socket (pipelined, %.2f s); the "
            "4,097th gets 508 with room left in limits.max_channels 4100"
            % took)

    y = cr.client("chans-y")
    allocate_checked(relay, y)
    for i in range(4):
        y.bind_ok(0x4000 + i, ("127.0.0.3", 10000 + i))
    wait_metric(relay, "relay_active_channels", 4100)
    expect_err(y.channel_bind(0x4004, ("127.0.0.3", 10004)), 508, y.key,
               "channel 4,101 with limits.max_channels 4100")
    covered("limits.max_channels 4100 full -> 508 for another client")
    expect_ok(x.refresh(0), x.key, "Refresh 0 of the 4,096-channel "
              "allocation")
    wait_metric(relay, "relay_active_channels", 4)
    y.bind_ok(0x4004, ("127.0.0.3", 10004))
    covered("Refresh 0 frees 4,096 channels at once; binding works again")
    same_processes(relay, master, workers, "chans relay")
    assert_quiet_log(relay, "chans relay")
    x.close()
    y.close()
    relay.stop()


def test():
    have6 = True
    try:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s6.bind(("::1", 0))
        s6.close()
    except OSError:
        have6 = False
        log("no IPv6 loopback: the fd check uses IPv4-only allocations")
    t0 = time.monotonic()
    for part in (test_allocations, test_ports, test_nonces,
                 test_channels_per_client):
        t = time.monotonic()
        if part is test_allocations:
            part(have6)
        else:
            part()
        log("%s: %.2f s" % (part.__name__, time.monotonic() - t))
    log("limits covered in %.1f s:" % (time.monotonic() - t0))
    for i, what in enumerate(COVERED, 1):
        print("  %2d. %s" % (i, what))


if __name__ == "__main__":
    main(test)
