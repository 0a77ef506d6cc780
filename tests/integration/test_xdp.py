#!/usr/bin/python3
"""The XDP offload of the ChannelData path (SPEC §1, §2.11, §9.2, §10.2,
§10.5; docs/xdp.md), in network namespaces.

Root only.  Skipped (exit 77) with the reason when not root (or `ip
netns` and veth pairs are unavailable), when the binary was built without
--enable-xdp, or when the kernel refuses BPF; anything else that goes
wrong fails.

Topology: four namespaces of this test, fzr-xdp-<pid>-{c,p,g,x}:

    client c ==veth== g (router) ==veth== x (the relay, XDP on its veth)
                      g ==veth== peer p

XDP_TX sends a frame back out of the interface it came in on, so both
clients and peers must be behind that interface: the router g forwards
between the three links, and the relay has one interface with a default
route via g (IPv4 and IPv6).  g's end of the relay link runs a
pass-everything XDP program (src/xdp/xdp_pass.bpf.o), because a veth
drops XDP_TX frames at a peer end that runs no XDP.  Transmit checksum
offload is off on every veth end: a locally sent datagram otherwise
crosses the veths with a partial checksum, which no XDP program can
update (a NIC's frames always carry a full one).

Phases:

1. plain path: the relay without xdp.* keys; for each client family
   (IPv4, IPv6) a dual allocation (AAF IPv6) with channel 0x4000 to an
   IPv4 peer and 0x4001 to an IPv6 peer (so IPv4/IPv6 same-family and
   both cross-family cases), payloads of 0-1400 bytes both ways; the
   datagrams the peer and the client receive are recorded.
2. offload (native mode): relay_xdp_attached is 1; the same exchange
   gives byte-identical datagrams from the same addresses (the relayed
   address of the peer's family / the relay's address and listen port);
   relay_xdp_relayed_{packets,bytes}_total move by exactly the datagrams
   and payload bytes sent and relay_relayed_{packets,bytes}_total do not
   move; STUN Binding and Refresh still work; ChannelData with padding,
   an IP-fragmented datagram and a hairpin between two allocations go
   through user space (user-space counters move, XDP ones do not) and
   arrive; an unknown channel is not relayed; Refresh 0 stops the offload
   at once (nothing relayed either way, XDP counters still); after
   `kill -9` of every worker the channels of a live allocation are still
   offloaded, and after SIGHUP too; SIGTERM exits 0 and detaches.
3. offload in generic mode with `user: nobody`: the master keeps
   CAP_BPF and CAP_NET_ADMIN and nothing else, the workers have no
   capability, and the offload works (the master updates the maps after
   the privilege drop).
4. started as nobody with CAP_BPF and CAP_NET_ADMIN as ambient
   capabilities (what the systemd drop-in of docs/xdp.md does, through
   setpriv): the program loads without root or CAP_PERFMON, the workers
   drop both capabilities, and the offload works.
5. xdp.interface naming no interface: a warn log with the reason,
   relay_xdp_attached 0, and the relay serves on the plain path.

Everything is torn down on exit, failure, SIGTERM and SIGINT.
"""

import ctypes
import fcntl
import os
import pwd
import grp
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylib  # noqa: E402
from relaylib import *  # noqa: E402,F401,F403
import netns_helper  # noqa: E402
from netns_helper import NetnsUnavailable, Topology  # noqa: E402

LISTEN_PORT = 3478
HEALTH_PORT = 8080
PORT_MIN, PORT_MAX = 50000, 50199
CH4, CH6 = 0x4000, 0x4001       # channels to the IPv4 / IPv6 peer
AAF_IPV6 = (A_ADDITIONAL_ADDRESS_FAMILY, b"\x02\x00\x00\x00")
SIZES = [0, 1, 2, 3, 5, 17, 100, 333, 1000, 1200, 1400]
SETTLE = 0.1        # the master applies a channel event in microseconds

# addresses: link i is 10.77.i.0/24 and fd77:i::/64; .1 / ::1 is g
C4, C6 = "10.77.1.2", "fd77:1::2"
P4, P6 = "10.77.2.2", "fd77:2::2"
X4, X6 = "10.77.3.2", "fd77:3::2"

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17

_topologies = []


def canon(ip):
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return socket.inet_ntop(fam, socket.inet_pton(fam, ip))


def fam_of(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def norm(a):
    return (canon(a[0]), a[1])


def teardown_all():
    problems = []
    while _topologies:
        problems += _topologies.pop().teardown()
    return problems


def _on_signal(signum, frame):
    teardown_all()
    relaylib._cleanup()
    print("interrupted by signal %d; namespaces removed" % signum, flush=True)
    os._exit(EXIT_HARD)


def builddir():
    top = os.environ.get("top_builddir") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    return os.path.abspath(top)


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------
# Preconditions


def build_has_xdp(tmp):
    """Whether the binary accepts xdp.interface (SPEC §9.2)."""
    cfg = os.path.join(tmp, "probe.yaml")
    with open(cfg, "w") as f:
        f.write("public_ip4: 192.0.2.1\nauth:\n  secret: %s\n"
                "xdp:\n  interface: lo\n" % ("a" * 40))
    r = subprocess.run([RELAY_BIN, "-t", "-c", cfg], capture_output=True,
                       text=True, timeout=10, env=clean_env())
    if r.returncode == 78 and "built without XDP support" in r.stderr:
        return False
    check(r.returncode == 0, "`firezone-relay -t` with xdp.interface exited "
          "%d: %s" % (r.returncode, r.stderr.strip()))
    return True


# --------------------------------------------------------------------------
# Topology


def tx_csum_off(ns, ifname):
    """ethtool -K IF tx off, through SIOCETHTOOL (no ethtool needed)."""
    def do():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            ev = ctypes.create_string_buffer(
                struct.pack("II", ETHTOOL_STXCSUM, 0), 8)
            ifr = struct.pack("16sP", ifname.encode(),
                              ctypes.addressof(ev)).ljust(40, b"\0")
            fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
        finally:
            s.close()
    try:
        ns.call(do)
    except OSError as e:
        if shutil.which("ethtool"):
            netns_helper.run(ns.exec_argv(["ethtool", "-K", ifname, "tx",
                                           "off"]))
        else:
            raise HarnessError("cannot turn off tx checksum offload on %s "
                               "in %s: %s" % (ifname, ns.name, e))


def build_topology(pass_obj):
    topo = Topology("fzr-xdp")
    _topologies.append(topo)
    c = topo.add_ns("c")
    p = topo.add_ns("p")
    g = topo.add_ns("g")
    x = topo.add_ns("x")
    # No duplicate address detection: link-local addresses are usable at
    # once, or the first IPv6 datagrams wait for neighbour discovery
    for ns in (c, p, g, x):
        ns.sysctl("net.ipv6.conf.default.accept_dad", 0)
        ns.sysctl("net.ipv6.conf.all.accept_dad", 0)
    for i, (ns, gif) in enumerate(((c, "to-c"), (p, "to-p"), (x, "to-x")),
                                  start=1):
        topo.link(ns, "eth0", g, gif)
        Topology.addr(ns, "eth0", "10.77.%d.2/24" % i)
        Topology.addr(ns, "eth0", "fd77:%d::2/64" % i)
        Topology.addr(g, gif, "10.77.%d.1/24" % i)
        Topology.addr(g, gif, "fd77:%d::1/64" % i)
        ns.ip("route", "add", "default", "via", "10.77.%d.1" % i)
        ns.ip("-6", "route", "add", "default", "via", "fd77:%d::1" % i)
        tx_csum_off(ns, "eth0")
        tx_csum_off(g, gif)
    g.sysctl("net.ipv4.ip_forward", 1)
    g.sysctl("net.ipv6.conf.all.forwarding", 1)
    r = g.ip("link", "set", "dev", "to-x", "xdpdrv", "obj", pass_obj,
             "sec", "xdp", check=False)
    if r.returncode != 0:
        why = (r.stderr or r.stdout).strip()
        raise Skip("the kernel refuses BPF: cannot attach a pass-everything "
                   "XDP program to a veth: %s" % why)
    wait_routes(c, p, x)
    return topo, c, p, g, x


def wait_routes(c, p, x):
    """Every end reaches every other through g, in both families (neighbour
    discovery done), within 5 s."""
    pairs = [(a, ia, b, ib) for (a, ia), (b, ib) in
             (((x, X4), (p, P4)), ((x, X6), (p, P6)), ((x, X4), (c, C4)),
              ((x, X6), (c, C6)), ((c, C4), (p, P4)), ((c, C6), (p, P6)))]
    for a, ia, b, ib in pairs:
        rx = b.socket(fam_of(ib), (ib, 0))
        tx = a.socket(fam_of(ia), (ia, 0))
        try:
            deadline = time.monotonic() + 5.0
            ok = False
            while not ok and time.monotonic() < deadline:
                tx.sendto(b"probe", rx.getsockname()[:2])
                ok = recv_from(rx, 0.1) is not None
            check(ok, "topology: %s cannot reach %s through the router"
                  % (ia, ib))
            while recv_from(rx, 0.01) is not None:
                pass
        finally:
            rx.close()
            tx.close()


# --------------------------------------------------------------------------
# The relay in namespace x


class RelayProc:
    def __init__(self, x, tmp, name, xdp=None, user=None, wrapper=()):
        self.x = x
        self.name = name
        self.dir = os.path.join(tmp, name)
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o755)
        self.cfg = os.path.join(self.dir, "relay.yaml")
        self.errlog = os.path.join(self.dir, "stderr.log")
        lines = ["# generated by tests/integration/test_xdp.py",
                 "public_ip4: %s" % X4,
                 'public_ip6: "%s"' % X6,
                 "listen:", "  port: %d" % LISTEN_PORT,
                 "relay:", "  port_min: %d" % PORT_MIN,
                 "  port_max: %d" % PORT_MAX,
                 "workers: 2",
                 "health:", "  listen: 127.0.0.1:%d" % HEALTH_PORT,
                 "auth:", "  secret: %s" % os.urandom(24).hex(),
                 "limits:", "  max_allocations: 1000",
                 "log:", "  level: %s" % os.environ.get(
                     "RELAY_TEST_LOG_LEVEL", "debug")]
        if user:
            lines += ["user: %s" % user[0], "group: %s" % user[1]]
        if xdp:
            lines += ["xdp:"] + ["  %s: %s" % kv for kv in xdp.items()]
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.cfg, 0o644)
        with open(self.errlog, "ab") as ef, \
                open(os.path.join(self.dir, "stdout.log"), "ab") as of:
            self.proc = x.spawn(list(wrapper) + [RELAY_BIN, "-c", self.cfg],
                                stdout=of,
                                stderr=ef, stdin=subprocess.DEVNULL,
                                cwd=self.dir, env=clean_env())
        self.pid = self.proc.pid
        r = subprocess.run([RELAY_BIN, "credentials", "-c", self.cfg,
                            "--ttl", "3600"], capture_output=True, text=True,
                           timeout=10, env=clean_env())
        check(r.returncode == 0, "credentials exited %d: %s"
              % (r.returncode, r.stderr))
        kv = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
        self.creds = (kv["username"], kv["password"])
        self.salt = 0

    def log_text(self):
        return read_text(self.errlog)

    def alive(self):
        return self.proc.poll() is None

    def credentials(self):
        """Fresh credentials (their own salt: one allocation each)."""
        self.salt += 1
        r = subprocess.run([RELAY_BIN, "credentials", "-c", self.cfg,
                            "--ttl", "3600", "--salt",
                            "xdp%d" % self.salt], capture_output=True,
                           text=True, timeout=10, env=clean_env())
        check(r.returncode == 0, "credentials exited %d" % r.returncode)
        kv = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
        return kv["username"], kv["password"]

    def metrics(self):
        def fetch():
            s = socket.create_connection(("127.0.0.1", HEALTH_PORT),
                                         timeout=3)
            try:
                s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                data = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        return data
                    data += d
            finally:
                s.close()
        raw = self.x.call(fetch).decode()
        check(raw.startswith("HTTP/1.") and " 200 " in raw.split("\r\n")[0],
              "/metrics: %r" % raw[:100])
        out = {}
        for line in raw.split("\r\n\r\n", 1)[1].splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def stop(self):
        if not self.alive():
            raise TestFailure("%s died (status %r); stderr:\n%s"
                              % (self.name, self.proc.poll(),
                                 self.log_text()[-3000:]))
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "%s: exit status %r within 5 s of SIGTERM"
              % (self.name, rc))


def counters(m):
    """The relayed counters of a /metrics snapshot."""
    out = {}
    for kind in ("relay", "relay_xdp"):
        for what in ("packets", "bytes"):
            for d in ("client_to_peer", "peer_to_client"):
                out[(kind, what, d)] = m.get(
                    '%s_relayed_%s_total{direction="%s"}' % (kind, what, d),
                    0.0)
    return out


def delta(a, b):
    return {k: b[k] - a[k] for k in a}


def show(d):
    return ", ".join("%s %s %s=%d" % (k[0], k[1], k[2], v)
                     for k, v in sorted(d.items()) if v)


# --------------------------------------------------------------------------
# Clients, peers and the exchange


class Side:
    """One client family: a TURN client in c with a dual allocation and a
    channel to each peer socket in p."""

    def __init__(self, topo, relay, fam):
        self.fam = fam
        c, p = topo
        self.server = (X4, LISTEN_PORT) if fam == 4 else (X6, LISTEN_PORT)
        u, pw = relay.credentials()
        self.cl = c.call(TurnClient, self.server, u, pw,
                         bind=(C4 if fam == 4 else C6, 0))
        self.peer4 = p.socket(socket.AF_INET, (P4, 0))
        self.peer6 = p.socket(socket.AF_INET6, (P6, 0))
        m = self.cl.allocate(extra=[AAF_IPV6])
        rel = m.xaddrs(A_XOR_RELAYED_ADDRESS)
        check(len(rel) == 2, "dual Allocate: %s" % m.describe())
        self.relayed4, self.relayed6 = norm(rel[0]), norm(rel[1])
        check(self.relayed4 == (X4, self.relayed4[1]) and
              self.relayed6 == (canon(X6), self.relayed4[1]),
              "relayed addresses %r" % (rel,))
        self.port = self.relayed4[1]
        self.cl.bind_ok(CH4, self.peer4.getsockname()[:2])
        self.cl.bind_ok(CH6, self.peer6.getsockname()[:2])

    def close(self):
        for s in (self.cl, self.peer4, self.peer6):
            s.close()

    def channels(self):
        return ((CH4, self.peer4, self.relayed4),
                (CH6, self.peer6, self.relayed6))


def exchange(side, label, sizes=SIZES):
    """Payloads both ways on both channels.  Returns the transcript (what
    the peer and the client received, bytes only) and the number of
    datagrams and payload bytes per direction."""
    transcript = []
    sent = {"c2p": [0, 0], "p2c": [0, 0]}
    cl = side.cl
    for ch, peer, relayed in side.channels():
        for i, n in enumerate(sizes):
            payload = bytes((i * 31 + k * 7 + ch) & 0xFF for k in range(n))
            cl.send_channel(ch, payload)
            got = recv_from(peer, 2.0)
            check(got is not None, "%s: the IPv%d peer got nothing within "
                  "2 s for a %d-byte payload on channel 0x%04x"
                  % (label, 6 if ch == CH6 else 4, n, ch))
            d, src = got
            check(d == payload, "%s: the peer got %d bytes for a %d-byte "
                  "payload (differs)" % (label, len(d), n))
            check(norm(src) == relayed, "%s: the peer got the datagram "
                  "from %s, expected the relayed address %s"
                  % (label, src, relayed))
            sent["c2p"][0] += 1
            sent["c2p"][1] += n
            reply = bytes((0xA5 ^ i ^ k) & 0xFF for k in range(sizes[-1 - i]))
            peer.sendto(reply, relayed)
            got = cl.recv_raw(2.0)
            check(got is not None, "%s: the client got nothing within 2 s "
                  "for a %d-byte datagram from the peer on channel 0x%04x"
                  % (label, len(reply), ch))
            cd, csrc = got
            check(norm(csrc) == norm(side.server), "%s: ChannelData from "
                  "%s, expected the relay's address and listen port %s"
                  % (label, csrc, side.server))
            check(cd == chandata(ch, reply), "%s: the client got %r..., "
                  "expected ChannelData 0x%04x with %d bytes (no padding)"
                  % (label, cd[:8], ch, len(reply)))
            sent["p2c"][0] += 1
            sent["p2c"][1] += len(reply)
            transcript.append((ch, d, cd))
    return transcript, sent


def expect_counters(label, d, sent, offloaded):
    """offloaded: every datagram through XDP, none through user space;
    else the reverse."""
    for key, dirn in (("c2p", "client_to_peer"), ("p2c", "peer_to_client")):
        on, off = ("relay_xdp", "relay") if offloaded else \
            ("relay", "relay_xdp")
        check(d[(on, "packets", dirn)] == sent[key][0] and
              d[(on, "bytes", dirn)] == sent[key][1] and
              d[(off, "packets", dirn)] == 0 and
              d[(off, "bytes", dirn)] == 0,
              "%s: counters moved by [%s], expected %s_relayed %s: %d "
              "datagrams, %d bytes, and nothing in %s_relayed"
              % (label, show(d), on, dirn, sent[key][0], sent[key][1], off))


def wait_ready(relay, c, fam=4):
    server = (X4 if fam == 4 else X6, LISTEN_PORT)
    cl = c.call(TurnClient, server, None, None,
                bind=(C4 if fam == 4 else C6, 0))
    try:
        deadline = time.monotonic() + (30.0 if slow_build() else 10.0)
        while time.monotonic() < deadline and relay.alive():
            m = cl.binding(timeout=0.2)
            if m is not None and m.cls == SUCCESS:
                check(norm(m.xaddr(A_XOR_MAPPED_ADDRESS)) == norm(cl.local),
                      "Binding: XOR-MAPPED-ADDRESS %r"
                      % (m.xaddr(A_XOR_MAPPED_ADDRESS),))
                return
        check(relay.alive(), "%s exited with status %r at start; stderr:\n%s"
              % (relay.name, relay.proc.poll(), relay.log_text()[-4000:]))
        raise TestFailure("%s did not answer a Binding from the client "
                          "namespace" % relay.name)
    finally:
        cl.close()


def xdp_prog_on(x):
    return "prog/xdp" in x.ip("-d", "link", "show", "eth0").stdout


def require_attached(relay):
    m = relay.metrics()
    if m.get("relay_xdp_attached") == 1.0:
        return
    text = relay.log_text()
    lines = [l for l in text.splitlines() if "XDP offload not attached" in l]
    if lines and "loading the BPF program failed" in lines[-1]:
        raise Skip("the kernel refuses BPF: %s" % lines[-1])
    raise TestFailure("%s: relay_xdp_attached %r; log:\n%s"
                      % (relay.name, m.get("relay_xdp_attached"),
                         "\n".join(lines) or text[-3000:]))


# --------------------------------------------------------------------------
# Phases


def phase_plain(c, p, x, tmp):
    log("==== plain path (no xdp keys)")
    relay = RelayProc(x, tmp, "plain")
    wait_ready(relay, c)
    check(relay.metrics().get("relay_xdp_attached") == 0.0,
          "relay_xdp_attached is not 0 without xdp.interface")
    out = {}
    for fam in (4, 6):
        side = Side((c, p), relay, fam)
        try:
            before = counters(relay.metrics())
            out[fam], sent = exchange(side, "plain IPv%d client" % fam)
            expect_counters("plain IPv%d client" % fam,
                            delta(before, counters(relay.metrics())), sent,
                            offloaded=False)
        finally:
            side.close()
    relay.stop()
    log("  plain path: %d datagrams per client family" % len(out[4]))
    return out


def kill_workers(relay):
    ws = children(relay.pid)
    check(len(ws) == 2, "expected 2 workers, found %r" % ws)
    for w in ws:
        os.kill(w, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        now = children(relay.pid)
        if len(now) == 2 and not set(now) & set(ws):
            break
        time.sleep(0.05)
    now = children(relay.pid)
    check(len(now) == 2 and not set(now) & set(ws), "workers %r not "
          "replaced after kill -9 (now %r)" % (ws, now))
    return now


def phase_offload(c, p, x, tmp, plain):
    log("==== offload, native mode")
    relay = RelayProc(x, tmp, "xdp", xdp={
        "interface": "eth0", "mode": "native",
        "int_ip4": X4, "int_ip6": '"%s"' % X6})
    wait_ready(relay, c)
    require_attached(relay)
    check(xdp_prog_on(x), "no XDP program on the relay's eth0:\n%s"
          % x.ip("-d", "link", "show", "eth0").stdout)
    log("  attached: %s" % [l for l in relay.log_text().splitlines()
                            if "XDP offload attached" in l][-1:])

    sides = {}
    try:
        # -- byte-identical to the plain path, counted by XDP only
        for fam in (4, 6):
            side = sides[fam] = Side((c, p), relay, fam)
            time.sleep(SETTLE)
            before = counters(relay.metrics())
            tr, sent = exchange(side, "XDP IPv%d client" % fam)
            d = delta(before, counters(relay.metrics()))
            check(tr == plain[fam], "IPv%d client: what the peers and the "
                  "client received through XDP differs from the plain path"
                  % fam)
            expect_counters("XDP IPv%d client" % fam, d, sent,
                            offloaded=True)
            log("  IPv%d client <-> IPv4 and IPv6 peers: %d datagrams each "
                "way, byte-identical, offloaded (%s)"
                % (fam, sent["c2p"][0], show(d)))

        side = sides[4]
        cl = side.cl
        # -- STUN still works
        m = cl.binding(timeout=1.0)
        check(m is not None and m.cls == SUCCESS, "Binding with the offload "
              "attached: %r" % (m and m.describe()))
        m = cl.refresh(600)
        check(m.cls == SUCCESS, "Refresh: %s" % m.describe())

        # -- what must pass to user space
        before = counters(relay.metrics())
        cl.send_raw(chandata(CH4, b"padded") + b"\0\0")     # padding
        got = recv_from(side.peer4, 2.0)
        check(got is not None and got[0] == b"padded", "padded ChannelData "
              "not relayed: %r" % (got,))
        big = bytes(k & 0xFF for k in range(3000))           # fragments
        cl.send_channel(CH4, big)
        got = recv_from(side.peer4, 2.0)
        check(got is not None and got[0] == big, "a fragmented ChannelData "
              "datagram was not relayed intact: %r"
              % (got and len(got[0]),))
        side.peer4.sendto(big, side.relayed4)
        got = cl.recv_raw(2.0)
        check(got is not None and got[0] == chandata(CH4, big),
              "a fragmented peer datagram was not relayed intact")
        cl.send_channel(0x4ABC, b"no such channel")
        check(recv_from(side.peer4, 0.3) is None and
              recv_from(side.peer6, 0.01) is None,
              "ChannelData on an unbound channel was relayed")
        d = delta(before, counters(relay.metrics()))
        check(d[("relay", "packets", "client_to_peer")] == 2 and
              d[("relay", "packets", "peer_to_client")] == 1 and
              d[("relay_xdp", "packets", "client_to_peer")] == 0 and
              d[("relay_xdp", "packets", "peer_to_client")] == 0,
              "padding and fragments must go through user space: [%s]"
              % show(d))
        log("  padded and fragmented datagrams and an unknown channel "
            "passed to user space")

        # -- hairpin: a channel to another allocation of this relay
        other = sides[6]
        cl.bind_ok(0x4002, side.relayed4[:1] + (other.port,))
        other.cl.bind_ok(0x4002, (X4, side.port))
        time.sleep(SETTLE)
        before = counters(relay.metrics())
        cl.send_channel(0x4002, b"hairpin")
        got = other.cl.recv_raw(2.0)
        check(got is not None and got[0] == chandata(0x4002, b"hairpin"),
              "hairpin between two allocations: %r" % (got,))
        d = delta(before, counters(relay.metrics()))
        check(d[("relay_xdp", "packets", "client_to_peer")] == 0 and
              d[("relay", "packets", "client_to_peer")] == 1,
              "a hairpin must go through user space: [%s]" % show(d))
        log("  hairpin between two allocations: user space")

        # -- SIGHUP: the maps are rebuilt and stay right
        relay.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        before = counters(relay.metrics())
        tr, sent = exchange(side, "after SIGHUP", sizes=[10, 700])
        expect_counters("after SIGHUP",
                        delta(before, counters(relay.metrics())), sent,
                        offloaded=True)
        log("  after SIGHUP: still offloaded")

        # -- kill -9 every worker: the channels stay offloaded
        kill_workers(relay)
        time.sleep(0.5)
        before = counters(relay.metrics())
        tr, sent = exchange(side, "after a worker respawn", sizes=[10, 700])
        expect_counters("after a worker respawn",
                        delta(before, counters(relay.metrics())), sent,
                        offloaded=True)
        m = cl.refresh(600)
        check(m.cls == SUCCESS, "Refresh after the respawn: %s"
              % m.describe())
        log("  after kill -9 of both workers: still offloaded")

        # -- a newer allocation with the same username replaces this one
        #    (SPEC §4.1); the old one's channels stop being offloaded
        victim = Side((c, p), relay, 4)
        try:
            time.sleep(SETTLE)
            exchange(victim, "before its replacement", sizes=[8])
            u, pw = victim.cl.username, victim.cl.password
            newer = c.call(TurnClient, victim.server, u, pw, bind=(C4, 0))
            try:
                newer.allocate(extra=[AAF_IPV6])
                time.sleep(0.3)
                before = counters(relay.metrics())
                victim.cl.send_channel(CH4, b"replaced")
                victim.peer4.sendto(b"replaced", victim.relayed4)
                got = recv_from(victim.peer4, 0.3)
                check(got is None, "the peer got %r from a replaced "
                      "allocation" % (got,))
                got = victim.cl.recv_raw(0.2)
                check(got is None, "a replaced allocation's client got %r"
                      % (got,))
                d = delta(before, counters(relay.metrics()))
                check(not any(d.values()), "counters moved for a replaced "
                      "allocation: [%s]" % show(d))
            finally:
                newer.close()
        finally:
            victim.close()
        log("  an allocation replaced by a newer one (same username): no "
            "longer offloaded")

        # -- Refresh 0 stops the offload at once
        m = cl.refresh(0)
        check(m.cls == SUCCESS, "Refresh 0: %s" % m.describe())
        time.sleep(SETTLE)
        before = counters(relay.metrics())
        for ch, peer, relayed in side.channels():
            cl.send_channel(ch, b"after refresh 0")
            peer.sendto(b"to a deleted allocation", relayed)
        for ch, peer, relayed in side.channels():
            got = recv_from(peer, 0.3)
            check(got is None, "channel 0x%04x: the peer got %r after "
                  "Refresh 0" % (ch, got))
        got = cl.recv_raw(0.3)
        check(got is None, "the client got %r after Refresh 0" % (got,))
        d = delta(before, counters(relay.metrics()))
        check(not any(d.values()), "counters moved after Refresh 0: [%s]"
              % show(d))
        log("  Refresh 0: nothing relayed either way, counters still")

        # -- the IPv6 client's channels are unaffected
        before = counters(relay.metrics())
        tr, sent = exchange(sides[6], "IPv6 client after the others' "
                            "Refresh 0", sizes=[64])
        expect_counters("IPv6 client after Refresh 0",
                        delta(before, counters(relay.metrics())), sent,
                        offloaded=True)
    finally:
        for s in sides.values():
            s.close()
    relay.stop()
    check(not xdp_prog_on(x), "the XDP program stayed attached after the "
          "relay exited:\n%s" % x.ip("-d", "link", "show", "eth0").stdout)
    log("  SIGTERM: exit 0, program detached")


def caps_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return None


def phase_user(c, p, x, tmp):
    try:
        pw = pwd.getpwnam("nobody")
        group = grp.getgrgid(pw.pw_gid).gr_name
    except KeyError:
        log("==== no user nobody: privilege drop phase skipped")
        return
    log("==== offload, generic mode, user nobody")
    relay = RelayProc(x, tmp, "xdp-nobody", user=("nobody", group), xdp={
        "interface": "eth0", "mode": "generic",
        "int_ip4": X4, "int_ip6": '"%s"' % X6})
    wait_ready(relay, c)
    require_attached(relay)
    want = (1 << 39) | (1 << 12)        # CAP_BPF, CAP_NET_ADMIN
    got = caps_of(relay.pid)
    check(got == want, "master CapEff %#x after dropping to nobody, expected "
          "exactly CAP_BPF and CAP_NET_ADMIN (%#x)" % (got or 0, want))
    for w in children(relay.pid):
        check(caps_of(w) == 0, "worker %d CapEff %#x, expected none"
              % (w, caps_of(w) or 0))
    side = Side((c, p), relay, 4)
    try:
        time.sleep(SETTLE)
        before = counters(relay.metrics())
        tr, sent = exchange(side, "generic mode, user nobody",
                            sizes=[0, 99, 1400])
        expect_counters("generic mode, user nobody",
                        delta(before, counters(relay.metrics())), sent,
                        offloaded=True)
        m = side.cl.refresh(0)
        check(m.cls == SUCCESS, "Refresh 0: %s" % m.describe())
        time.sleep(SETTLE)
        side.cl.send_channel(CH4, b"gone")
        check(recv_from(side.peer4, 0.3) is None, "relayed after Refresh 0")
    finally:
        side.close()
    relay.stop()
    log("  master keeps CAP_BPF + CAP_NET_ADMIN only, workers none; "
        "offloaded")


def phase_ambient(c, p, x, tmp):
    """Started unprivileged with CAP_BPF and CAP_NET_ADMIN as ambient
    capabilities, as the systemd drop-in of docs/xdp.md does: the program
    loads without CAP_PERFMON or root, and the workers drop both."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log("==== no setpriv: ambient-capabilities phase skipped")
        return
    log("==== offload, native mode, unprivileged with ambient capabilities")
    caps = "+bpf,+net_admin"
    wrapper = [setpriv, "--reuid=nobody", "--regid=%d"
               % pwd.getpwnam("nobody").pw_gid, "--clear-groups",
               "--inh-caps=" + caps, "--ambient-caps=" + caps,
               "--bounding-set=-all," + caps]
    relay = RelayProc(x, tmp, "xdp-ambient", wrapper=wrapper, xdp={
        "interface": "eth0", "int_ip4": X4, "int_ip6": '"%s"' % X6})
    wait_ready(relay, c)
    require_attached(relay)
    want = (1 << 39) | (1 << 12)
    check(caps_of(relay.pid) == want, "master CapEff %#x, expected %#x"
          % (caps_of(relay.pid) or 0, want))
    for w in children(relay.pid):
        check(caps_of(w) == 0, "worker %d CapEff %#x, expected none (the "
              "ambient capabilities are the master's only)"
              % (w, caps_of(w) or 0))
    side = Side((c, p), relay, 6)
    try:
        time.sleep(SETTLE)
        before = counters(relay.metrics())
        tr, sent = exchange(side, "ambient capabilities", sizes=[1, 1000])
        expect_counters("ambient capabilities",
                        delta(before, counters(relay.metrics())), sent,
                        offloaded=True)
    finally:
        side.close()
    relay.stop()
    log("  loaded and attached with CAP_BPF + CAP_NET_ADMIN only; workers "
        "none; offloaded")


def phase_no_interface(c, p, x, tmp):
    log("==== xdp.interface naming no interface")
    relay = RelayProc(x, tmp, "xdp-noif", xdp={"interface": "nosuch0"})
    wait_ready(relay, c)
    m = relay.metrics()
    check(m.get("relay_xdp_attached") == 0.0, "relay_xdp_attached %r"
          % m.get("relay_xdp_attached"))
    warn = [l for l in relay.log_text().splitlines()
            if "WARN" in l and "XDP offload not attached" in l]
    check(warn and "nosuch0" in warn[0], "no warn line naming the "
          "interface; log:\n%s" % relay.log_text()[-2000:])
    side = Side((c, p), relay, 4)
    try:
        before = counters(relay.metrics())
        tr, sent = exchange(side, "without offload", sizes=[5, 500])
        expect_counters("without offload",
                        delta(before, counters(relay.metrics())), sent,
                        offloaded=False)
    finally:
        side.close()
    relay.stop()
    log("  warned (%s), plain path works" % warn[0].split(": ", 1)[-1])


def test():
    reason = netns_helper.probe()
    if reason:
        raise Skip(reason)
    need_binary()
    tmp = tempfile.mkdtemp(prefix="fzr-xdp-")
    os.chmod(tmp, 0o755)
    if not build_has_xdp(tmp):
        raise Skip("the relay was built without --enable-xdp")
    pass_obj = os.path.join(builddir(), "src", "xdp", "xdp_pass.bpf.o")
    if not os.path.exists(pass_obj):
        raise HarnessError("%s is missing (built with --enable-xdp)"
                           % pass_obj)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        try:
            topo, c, p, g, x = build_topology(pass_obj)
        except NetnsUnavailable as e:
            raise Skip(str(e))
        plain = phase_plain(c, p, x, tmp)
        phase_offload(c, p, x, tmp, plain)
        phase_user(c, p, x, tmp)
        phase_ambient(c, p, x, tmp)
        phase_no_interface(c, p, x, tmp)
    finally:
        problems = teardown_all()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
    check(not problems, "teardown: %s" % "; ".join(problems))


if __name__ == "__main__":
    main(test)
