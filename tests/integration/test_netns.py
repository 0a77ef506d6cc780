#!/usr/bin/python3
"""Real topology through network namespaces (SPEC §2.1, §2.11, §4.4, §5.4).

Root only: skipped (exit 77) when not root or when `ip netns` or veth pairs
are unavailable.  For each case this test builds three namespaces of its
own, named fzr-netns-<pid>-{c,r,g}:

    client  ==veth==  relay (dual-stack, the real firezone-relay)  ==veth==  gateway

* There is no route between client and gateway: each has only its own
  link's prefix, the other family is absent (IPv6 disabled, or no IPv4
  address, not even 127.0.0.1), and the relay namespace does not forward.
  This is checked before the relay starts.
* The relay's config sets public_ip4 / public_ip6 to its own veth addresses
  (private addresses that exist only inside these namespaces) and leaves
  peers.allow unset: the default policy allows private ranges (§5.4).
* On the client link the relay also has a decoy address that the kernel
  would pick as the source towards the client (IPv4: the primary address;
  IPv6: the longest matching prefix); the client talks to the public
  address, so a reply that does not honour §2.1 "Sending" shows up.

The client, a Firezone-like TURN client (relaylib.TurnClient, in the client
namespace through setns), sends Allocate with REQUESTED-TRANSPORT 17 and
ADDITIONAL-ADDRESS-FAMILY IPv6 after the 401 nonce dance, and asserts:

* Allocate success, signed: two XOR-RELAYED-ADDRESSes, IPv4 first, equal
  to public_ip4 and public_ip6 with one port in relay.port_min..max (§4.3,
  §4.4, §2.6.2 step 9); XOR-MAPPED-ADDRESS = the client's socket; LIFETIME
  600; the relay holds UDP sockets on that port in both families;
* ChannelBind 0x4000 -> the gateway's address (other family), success;
* each ChannelData payload (0..4000 bytes) arrives at the gateway's plain
  UDP socket as exactly that datagram, from the relayed address of the
  gateway's family, i.e. the XOR-RELAYED-ADDRESS of that family (IP and
  port);
* the gateway replies to that address; the client gets ChannelData
  {0x4000, length = reply size, no padding} from the relay's public address
  of the client's family and listen.port (3478);
* a datagram from another gateway port (no channel bound to it) is not
  relayed (§2.11.3).

Cases: IPv4-only client -> IPv6-only gateway, and the mirror (IPv6-only
client -> IPv4-only gateway), each with the listen sockets on the wildcard
addresses (defaults) and on the public addresses (listen.bind_ip4 /
listen.bind_ip6).  Everything is torn down on exit, on failure and on
SIGTERM/SIGINT: relay killed, `ip netns del`.  A watchdog bounds the run.
"""

import os
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
PORT_MIN, PORT_MAX = 50000, 50999
CHANNEL = 0x4000
WATCHDOG = 55            # seconds for the whole test (automake has none)
AAF_IPV6 = (A_ADDITIONAL_ADDRESS_FAMILY, b"\x02\x00\x00\x00")

_topologies = []
_tmpdirs = []


def canon(ip):
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return socket.inet_ntop(fam, socket.inet_pton(fam, ip))


def fam_of(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


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


def _on_alarm(signum, frame):
    raise TestFailure("watchdog: the test did not finish within %d s"
                      % WATCHDOG)


# --------------------------------------------------------------------------
# Topology


class Case:
    def __init__(self, client_v6, specific_bind):
        self.client_v6 = client_v6
        self.specific_bind = specific_bind
        self.name = "%s-client->%s-gateway, %s binds" % (
            "IPv6" if client_v6 else "IPv4", "IPv4" if client_v6 else "IPv6",
            "specific" if specific_bind else "wildcard")
        if not client_v6:
            # link 1 (client-relay) IPv4, link 2 (relay-gateway) IPv6
            self.client_ip = "10.200.1.10"
            self.decoy_ip = "10.200.1.1"          # added first: primary
            self.pub_client_side = "10.200.1.2"   # public_ip4
            self.pub_gw_side = "fd00:200:2::1"    # public_ip6
            self.gw_ip = "fd00:200:2::10"
            self.plen1, self.plen2 = 24, 64
            self.decoy_plen = 24
        else:
            self.client_ip = "fd00:200:1::10"
            # Linux caps rule 8 (longest matching prefix) at the address's
            # prefix length, so the decoy gets /128 to win it
            self.decoy_ip = "fd00:200:1::11"
            self.pub_client_side = "fd00:200:1::2"  # public_ip6
            self.pub_gw_side = "10.200.2.1"       # public_ip4
            self.gw_ip = "10.200.2.10"
            self.plen1, self.plen2 = 64, 24
            self.decoy_plen = 128
        self.pub4 = self.pub_gw_side if client_v6 else self.pub_client_side
        self.pub6 = self.pub_client_side if client_v6 else self.pub_gw_side


def build(case):
    topo = Topology("fzr-netns")
    _topologies.append(topo)
    v6c = case.client_v6
    c = topo.add_ns("c", ipv6=v6c, ipv4=not v6c)
    r = topo.add_ns("r")
    g = topo.add_ns("g", ipv6=not v6c, ipv4=v6c)
    topo.link(c, "veth-r", r, "veth-c")
    topo.link(r, "veth-g", g, "veth-r")
    Topology.addr(c, "veth-r", "%s/%d" % (case.client_ip, case.plen1))
    Topology.addr(r, "veth-c", "%s/%d" % (case.decoy_ip, case.decoy_plen))
    Topology.addr(r, "veth-c", "%s/%d" % (case.pub_client_side, case.plen1))
    Topology.addr(r, "veth-g", "%s/%d" % (case.pub_gw_side, case.plen2))
    Topology.addr(g, "veth-r", "%s/%d" % (case.gw_ip, case.plen2))
    # the relay namespace must not route between its links
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        r.sysctl(key, 0)
        check(r.sysctl(key) == "0", "%s still on in the relay namespace"
              % key)
    return topo, c, r, g


def check_isolation(case, c, r, g):
    """The client cannot reach the gateway (and back) except via the
    relay, and the decoy really is the kernel's default source."""
    for src_ns, src_ip, dst_ns, dst_ip in ((c, case.client_ip, g, case.gw_ip),
                                           (g, case.gw_ip, c, case.client_ip)):
        rx = dst_ns.socket(fam_of(dst_ip), (dst_ip, 0))
        dst = rx.getsockname()[:2]
        try:
            tx = src_ns.call(socket.socket, fam_of(dst_ip), socket.SOCK_DGRAM)
            try:
                tx.sendto(b"direct", dst)
                sent = True
            except OSError as e:
                sent = False
                log("  isolation: %s -> %s: %s (as expected)"
                    % (src_ns.name, dst_ns.name, e.strerror))
            finally:
                tx.close()
            got = recv_from(rx, 0.2 if sent else 0.0)
            check(got is None, "topology: %s reached %s directly (%r): the "
                  "client and gateway namespaces are not isolated; routes:\n"
                  "%s\n%s" % (src_ns.name, dst, got, src_ns.routes(),
                              dst_ns.routes()))
        finally:
            rx.close()
    probe = r.call(socket.socket, fam_of(case.client_ip), socket.SOCK_DGRAM)
    try:
        probe.connect((case.client_ip, 9))
        src = probe.getsockname()[0]
    finally:
        probe.close()
    log("  relay's default source towards the client: %s (decoy %s, public "
        "%s)" % (src, case.decoy_ip, case.pub_client_side))
    if canon(src) != canon(case.decoy_ip):
        log("  note: the kernel does not pick the decoy here, so the check "
            "of the source of replies (SPEC §2.1 Sending) is weaker")


# --------------------------------------------------------------------------
# The relay in its namespace


def relay_config(case, secret, path):
    lines = ["# generated by tests/integration/test_netns.py",
             "public_ip4: %s" % case.pub4,
             'public_ip6: "%s"' % case.pub6,
             "listen:",
             "  port: %d" % LISTEN_PORT]
    if case.specific_bind:
        lines += ["  bind_ip4: %s" % case.pub4,
                  '  bind_ip6: "%s"' % case.pub6]
    lines += ["relay:",
              "  port_min: %d" % PORT_MIN,
              "  port_max: %d" % PORT_MAX,
              "workers: 2",
              "health:",
              "  listen: 127.0.0.1:8080",
              "auth:",
              "  secret: %s" % secret,
              # peers.allow deliberately unset: private peers are allowed
              # by the default policy (SPEC §5.4)
              "log:",
              "  level: %s" % os.environ.get("RELAY_TEST_LOG_LEVEL", "debug")]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def credentials(cfg):
    r = subprocess.run([RELAY_BIN, "credentials", "-c", cfg, "--ttl", "3600"],
                       capture_output=True, text=True, timeout=10,
                       env=clean_env())
    check(r.returncode == 0, "credentials exited %d: %s"
          % (r.returncode, r.stderr))
    kv = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    check(kv.get("realm") == "firezone", "credentials printed %r" % r.stdout)
    return kv["username"], kv["password"]


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def udp_ports(ns):
    """{(family, local ip, port)} of UDP sockets in the namespace."""
    out = set()
    for fam, path in ((4, "/proc/net/udp"), (6, "/proc/net/udp6")):
        text = netns_helper.run(ns.exec_argv(["cat", path])).stdout
        for line in text.splitlines()[1:]:
            ip_hex, port_hex = line.split()[1].split(":")
            raw = bytes.fromhex(ip_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            ip = socket.inet_ntop(socket.AF_INET if fam == 4 else
                                  socket.AF_INET6, raw)
            out.add((fam, ip, int(port_hex, 16)))
    return out


# --------------------------------------------------------------------------
# One case


def run_case(case):
    log("==== %s" % case.name)
    t0 = time.monotonic()
    topo, c, r, g = build(case)
    check_isolation(case, c, r, g)

    tmp = tempfile.mkdtemp(prefix="fzr-netns-")
    _tmpdirs.append(tmp)
    cfg = os.path.join(tmp, "relay.yaml")
    errlog = os.path.join(tmp, "stderr.log")
    relay_config(case, os.urandom(32).hex(), cfg)
    with open(errlog, "ab") as ef, open(os.path.join(tmp, "stdout.log"),
                                        "ab") as of:
        proc = r.spawn([RELAY_BIN, "-c", cfg], stdout=of, stderr=ef,
                       stdin=subprocess.DEVNULL, cwd=tmp, env=clean_env())
    case.errlog = errlog
    user, password = credentials(cfg)

    server = (case.pub_client_side, LISTEN_PORT)
    cl = c.call(TurnClient, server, user, password,
                bind=(case.client_ip, 0))
    gw = g.socket(fam_of(case.gw_ip), (case.gw_ip, 0))
    gw2 = g.socket(fam_of(case.gw_ip), (case.gw_ip, 0))
    try:
        # ---- ready: a Binding through the client link is answered
        deadline = time.monotonic() + (30.0 if slow_build() else 10.0)
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            ready = cl.binding(timeout=0.2)
            if ready is not None and ready.cls == SUCCESS:
                break
        check(proc.poll() is None, "relay exited with status %r at start; "
              "stderr:\n%s" % (proc.poll(), read_text(errlog)[-4000:]))
        check(ready is not None and ready.cls == SUCCESS,
              "relay did not answer a Binding on %s:%d from the client "
              "namespace" % server)
        check(ready.xaddr(A_XOR_MAPPED_ADDRESS) == cl.local,
              "Binding: XOR-MAPPED-ADDRESS %r, client socket %r"
              % (ready.xaddr(A_XOR_MAPPED_ADDRESS), cl.local))
        log("  relay pid %d ready after %.2f s" % (proc.pid,
                                                     time.monotonic() - t0))

        # ---- Allocate as Firezone does: RT 17 + AAF IPv6 -> dual
        m = cl.allocate(extra=[AAF_IPV6])
        check(cl.stale_nonces == 0, "Allocate: %d 438s" % cl.stale_nonces)
        relayed = m.xaddrs(A_XOR_RELAYED_ADDRESS)
        check(len(relayed) == 2, "Allocate (RT 17 + AAF IPv6) on a dual-stack "
              "relay: %d XOR-RELAYED-ADDRESS, expected 2 (SPEC §4.4): %s"
              % (len(relayed), m.describe()))
        (ip4, port4), (ip6, port6) = relayed
        check(":" not in ip4 and ":" in ip6, "XOR-RELAYED-ADDRESSes %r: "
              "IPv4 must come first (SPEC §2.6.2 step 9)" % (relayed,))
        check(canon(ip4) == canon(case.pub4) and canon(ip6) ==
              canon(case.pub6), "relayed addresses %r, expected public_ip4 "
              "%s and public_ip6 %s" % (relayed, case.pub4, case.pub6))
        check(port4 == port6, "dual allocation on ports %d and %d; SPEC §4.3: "
              "one port for both families" % (port4, port6))
        check(PORT_MIN <= port4 <= PORT_MAX, "relayed port %d outside "
              "%d-%d" % (port4, PORT_MIN, PORT_MAX))
        check(m.xaddr(A_XOR_MAPPED_ADDRESS) == cl.local,
              "Allocate: XOR-MAPPED-ADDRESS %r, client socket %r"
              % (m.xaddr(A_XOR_MAPPED_ADDRESS), cl.local))
        check(m.lifetime() == 600, "LIFETIME %r, expected 600"
              % m.lifetime())
        port = port4
        log("  dual allocation %s:%d + [%s]:%d for client %s"
            % (ip4, port, ip6, port, cl.local))
        socks = udp_ports(r)
        b4 = case.pub4 if case.specific_bind else "0.0.0.0"
        b6 = canon(case.pub6) if case.specific_bind else "::"
        for want in ((4, b4, port), (6, b6, port), (4, b4, LISTEN_PORT),
                     (6, b6, LISTEN_PORT)):
            check(want in socks, "no UDP socket bound to %s:%d (IPv%d) in "
                  "the relay namespace; sockets: %s"
                  % (want[1], want[2], want[0], sorted(socks)))

        relayed_to_gw = (canon(ip6), port) if not case.client_v6 else \
            (canon(ip4), port)
        relay_to_client = (canon(case.pub_client_side), LISTEN_PORT)

        # ---- ChannelBind to the gateway, across families
        gw_addr = gw.getsockname()[:2]
        cl.bind_ok(CHANNEL, gw_addr)
        log("  channel 0x%04x -> %s" % (CHANNEL, (gw_addr,)))

        # ---- data both ways
        sizes = [0, 1, 3, 100, 1200, 4000]
        for i, n in enumerate(sizes):
            payload = bytes((i * 7 + k) & 0xFF for k in range(n))
            cl.send_channel(CHANNEL, payload)
            got = recv_from(gw, 2.0)
            check(got is not None, "gateway got nothing within 2 s for a "
                  "%d-byte ChannelData payload" % n)
            d, src = got
            check(d == payload, "gateway got %d bytes, sent %d (payload "
                  "differs)" % (len(d), n))
            check((canon(src[0]), src[1]) == relayed_to_gw,
                  "gateway got the datagram from %s, expected the relayed "
                  "address %s (the XOR-RELAYED-ADDRESS of its family)"
                  % (src, relayed_to_gw))
            reply = bytes([0xA5 ^ i]) * sizes[-1 - i]
            gw.sendto(reply, src)
            got = cl.recv_raw(2.0)
            check(got is not None, "client got nothing within 2 s for a "
                  "%d-byte reply from the gateway" % len(reply))
            d, src = got
            check((canon(src[0]), src[1]) == relay_to_client,
                  "client got ChannelData from %s, expected the relay's "
                  "public address and listen port %s (SPEC §2.1 Sending)"
                  % (src[:2], relay_to_client))
            check(len(d) == 4 + len(reply), "ChannelData of %d bytes for a "
                  "%d-byte payload (SPEC §2.11.1: never padded)"
                  % (len(d), len(reply)))
            ch, ln = struct.unpack("!HH", d[:4])
            check(ch == CHANNEL and ln == len(reply) and d[4:] == reply,
                  "ChannelData channel 0x%04x length %d, expected 0x%04x "
                  "length %d with the gateway's payload"
                  % (ch, ln, CHANNEL, len(reply)))
        log("  %d datagrams each way ok (payloads 0-%d bytes)"
            % (len(sizes), max(sizes)))

        # ---- an unbound peer port is not relayed
        gw2.sendto(b"not bound", relayed_to_gw)
        got = cl.recv_raw(0.5)
        check(got is None, "client got %r after a datagram from a gateway "
              "port without a channel (SPEC §2.11.3: dropped)" % (got,))
        # and the bound one still is
        gw.sendto(b"still bound", relayed_to_gw)
        got = cl.recv_raw(2.0)
        check(got is not None and got[0] == chandata(CHANNEL, b"still bound"),
              "client got %r for a datagram on the bound channel" % (got,))

        # ---- stop
        check(proc.poll() is None, "relay died during the test (status %r)"
              % proc.poll())
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(5)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "relay exit status %r within 5 s of SIGTERM" % rc)
    finally:
        cl.close()
        gw.close()
        gw2.close()
        problems = topo.teardown()
        if topo in _topologies:
            _topologies.remove(topo)
    check(not problems, "teardown: %s" % "; ".join(problems))
    log("  %s ok in %.2f s" % (case.name, time.monotonic() - t0))


def test():
    reason = netns_helper.probe()
    if reason:
        raise Skip(reason)
    need_binary()
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(WATCHDOG)
    current = None
    try:
        for client_v6 in (False, True):
            for specific in (False, True):
                current = Case(client_v6, specific)
                try:
                    run_case(current)
                except NetnsUnavailable as e:
                    raise Skip(str(e))
                current = None
    except BaseException:
        if current is not None and getattr(current, "errlog", None):
            print("---- relay stderr (%s) ----\n%s" % (
                current.name, read_text(current.errlog)[-6000:]), flush=True)
        raise
    finally:
        signal.alarm(0)
        problems = teardown_all()
        for d in _tmpdirs:
            if not os.environ.get("KEEP_TMP"):
                shutil.rmtree(d, ignore_errors=True)
        if problems:
            print("teardown problems: %s" % "; ".join(problems), flush=True)


if __name__ == "__main__":
    main(test)
