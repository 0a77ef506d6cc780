#!/usr/bin/python3
"""UDP GRO on the relay's sockets (docs/performance.md, issue 7): runs of
datagrams that one sender sends with UDP_SEGMENT (GSO) reach the relay, on
loopback, as one message per run, which the worker must split back into
the original datagrams before the core sees them.

Checks, through the real binary over IPv4 and IPv6 loopback:
- client -> peer: a GSO run of ChannelData (the last one shorter) arrives
  at the peer as the same payloads, one datagram each, in order (SPEC
  §2.11, C47); also a run of 50 x 1204 bytes (a full 64 KiB message);
- peer -> client: a GSO run from the peer arrives at the client as one
  ChannelData per datagram with the right channel and length;
- STUN inside a run: three Binding requests of one size in one GSO send
  get three responses with their own transaction IDs (C1);
- a bad datagram inside a run (ChannelData for an unbound channel) is
  dropped and counted, and the rest of the run is relayed (SPEC §2.11.4).

Whether this kernel coalesces on loopback at all is checked first with a
socket pair of the test's own; the checks above run either way (without
coalescing they test the plain path), and the log says which it was.
"""

import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403

UDP_SEGMENT = 103
UDP_GRO = 104
SOL_UDP = getattr(socket, "SOL_UDP", 17)


def gso_send(sock, datagrams, to):
    """Sends the datagrams (all of one size but the last, which may be
    shorter) as one sendmsg with UDP_SEGMENT."""
    seg = len(datagrams[0])
    for d in datagrams[:-1]:
        assert len(d) == seg
    assert len(datagrams[-1]) <= seg
    sock.sendmsg([b"".join(datagrams)],
                 [(SOL_UDP, UDP_SEGMENT, struct.pack("H", seg))], 0, to)


def kernel_coalesces(host):
    """Whether a GSO send over loopback reaches a UDP_GRO socket as one
    message (Linux >= 5.0)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    rx = socket.socket(fam, socket.SOCK_DGRAM)
    tx = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        rx.setsockopt(SOL_UDP, UDP_GRO, 1)
        rx.bind((host, 0))
        gso_send(tx, [b"x" * 100] * 4, rx.getsockname()[:2])
        rx.settimeout(2.0)
        data, anc, _, _ = rx.recvmsg(65536, socket.CMSG_SPACE(4))
        return len(data) == 400 and any(
            lvl == SOL_UDP and typ == UDP_GRO for lvl, typ, _ in anc)
    except OSError:
        return False
    finally:
        rx.close()
        tx.close()


def recv_n(sock, n, timeout=3.0):
    out = []
    sock.settimeout(timeout)
    try:
        while len(out) < n:
            out.append(sock.recvfrom(70000)[0])
    except socket.timeout:
        pass
    return out


def payload(tag, i, size):
    head = b"%s-%05d:" % (tag, i)
    return (head + bytes((i + k) & 0xff for k in range(size)))[:size]


def metric(relay, name):
    import urllib.request
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics"
                                  % relay.health_port, timeout=5).read()
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run_family(relay, host):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = (host, relay.port)
    u, p = relay.credentials()
    c = TurnClient(server, u, p, bind=(host, 0))
    peer = socket.socket(fam, socket.SOCK_DGRAM)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    peer.bind((host, 0))
    paddr = peer.getsockname()[:2]
    extra = []
    if fam == socket.AF_INET6:
        extra = [(A_REQUESTED_ADDRESS_FAMILY, b"\x02\x00\x00\x00")]
    c.allocate(extra=extra)
    relayed = c.relayed
    check(relayed is not None and relayed[0] == host,
          "relayed address %r, expected %s" % (relayed, host))
    ch = 0x4000
    c.bind_ok(ch, paddr)
    label = "IPv6" if fam == socket.AF_INET6 else "IPv4"

    # client -> peer: 20 x 100 B and a last one of 37 B, in one send.
    sizes = [100] * 20 + [37]
    sent = [payload(b"c2p", i, s) for i, s in enumerate(sizes)]
    frames = [chandata(ch, d) for d in sent]
    # ChannelData over UDP needs no padding: 104 B each, the last 41 B.
    gso_send(c.sock, frames, server)
    got = recv_n(peer, len(sent))
    check(got == sent, "%s c2p GSO run: peer got %d datagrams %s, "
          "expected %d of sizes %s" % (label, len(got),
                                       [len(g) for g in got], len(sent),
                                       sizes))
    log("%s: c2p run of %d ChannelData relayed as %d datagrams, "
        "byte-identical" % (label, len(sent), len(got)))

    # client -> peer: a full 64 KiB message, 50 x 1204 B.
    sent = [payload(b"big", i, 1200) for i in range(50)]
    gso_send(c.sock, [chandata(ch, d) for d in sent], server)
    got = recv_n(peer, len(sent))
    check(got == sent, "%s c2p 50 x 1200 B: peer got %d datagrams of "
          "sizes %s" % (label, len(got), sorted(set(len(g) for g in got))))
    log("%s: c2p run of 50 x 1200 B relayed byte-identical" % label)

    # peer -> client: 30 x 200 B and a last one of 3 B.
    sizes = [200] * 30 + [3]
    sent = [payload(b"p2c", i, s) for i, s in enumerate(sizes)]
    gso_send(peer, sent, relayed)
    got = []
    for _ in sent:
        d = c.recv_data(timeout=3.0)
        if d is None:
            break
        got.append(d[:2])
    want = [(ch, d) for d in sent]
    check(got == want, "%s p2c GSO run: client got %d ChannelData %s, "
          "expected %d" % (label, len(got), [(hex(g[0]), len(g[1]))
                                             for g in got[:5]], len(want)))
    log("%s: p2c run of %d datagrams reached the client as %d ChannelData"
        % (label, len(sent), len(got)))

    # STUN inside a run: three Binding requests of one size.
    tids = [new_tid() for _ in range(3)]
    reqs = [encode(BINDING, REQUEST, t, []) for t in tids]
    gso_send(c.sock, reqs, server)
    seen = []
    for _ in tids:
        got = c.recv_raw(timeout=3.0)
        if got is None:
            break
        m = StunMessage(got[0])
        seen.append(m.tid)
        check(m.type == 0x0101 and m.xaddr(A_XOR_MAPPED_ADDRESS) == c.local,
              "%s: Binding in a GSO run answered %s" % (label, m.describe()))
    check(seen == tids, "%s: Binding run: responses for %d of 3 "
          "transactions, in order %r" % (label, len(seen), seen == tids))
    log("%s: 3 Binding requests in one GSO send, 3 responses" % label)

    # A ChannelData for an unbound channel inside a run: dropped and
    # counted; the rest relayed.
    before = metric(relay, "relay_dropped_packets_total")
    sent = [payload(b"mix", i, 64) for i in range(6)]
    frames = [chandata(ch, d) for d in sent]
    frames[2] = chandata(0x4abc, sent[2])
    gso_send(c.sock, frames, server)
    got = recv_n(peer, 5)
    want = sent[:2] + sent[3:]
    check(got == want, "%s: run with an unbound channel: peer got %d "
          "datagrams, expected the 5 others" % (label, len(got)))
    check(recv_n(peer, 1, timeout=0.3) == [], "%s: the unbound channel's "
          "datagram was relayed" % label)
    after = metric(relay, "relay_dropped_packets_total")
    check(after >= before + 1, "%s: relay_dropped_packets_total %s -> %s, "
          "expected +1" % (label, before, after))
    log("%s: unbound channel inside a run dropped and counted, 5 others "
        "relayed" % label)
    c.close()
    peer.close()


def test():
    coalesce = kernel_coalesces("127.0.0.1")
    log("this kernel %s GSO runs on loopback into UDP_GRO sockets: %s"
        % ("coalesces" if coalesce else "does not coalesce",
           "the relay's GRO split path is exercised" if coalesce else
           "only the plain path is exercised"))
    relay = track(Relay("gro", workers=1, ipv6=True))
    relay.start()
    run_family(relay, "127.0.0.1")
    run_family(relay, "::1")


if __name__ == "__main__":
    main(test)
