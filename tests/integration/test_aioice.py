#!/usr/bin/python3
"""Python aioice (python3-aioice) as a third-party TURN client of the relay.

1. aioice.Connection with turn_server / turn_username / turn_password /
   turn_transport "udp" gathers a relayed candidate: 127.0.0.1 (public_ip4)
   with a port in the configured range, held by a relay process; closing
   the connection deletes the allocation (aioice sends Refresh 0), after
   which the relay closes the port.
2. aioice.turn.create_turn_endpoint: sendto() binds a channel (aioice draws
   0x4000 upwards) and sends ChannelData to a UDP echo peer on loopback;
   every echo comes back through the relay, attributed to the echo peer,
   and the peer saw every datagram from the relayed address (the same
   port as in XOR-RELAYED-ADDRESS).
3. Two aioice ICE agents, both relay-only, run a full ICE exchange whose
   only path is hairpinned through two allocations of this relay (a peer
   may be another allocation, SPEC §2.11.3), then exchange data.

SPEC: §1 (Allocate, Refresh, ChannelBind, ChannelData), §4.3 (ports), §5.4
(peers.allow for loopback peers).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403

try:
    import asyncio
    import aioice
    from aioice import turn as aioturn
except ImportError as e:  # pragma: no cover
    aioice = None
    IMPORT_ERROR = e


async def gather_relay_candidate(relay, creds):
    conn = aioice.Connection(ice_controlling=True, components=1,
                             turn_server=("127.0.0.1", relay.port),
                             turn_username=creds[0], turn_password=creds[1],
                             turn_transport="udp", use_ipv4=True,
                             use_ipv6=False)
    await asyncio.wait_for(conn.gather_candidates(), 10)
    relays = [c for c in conn.local_candidates if c.type == "relay"]
    check(len(relays) == 1, "aioice gathered %r, expected one relay "
          "candidate" % conn.local_candidates)
    cand = relays[0]
    check(cand.host == "127.0.0.1" and relay.in_range(cand.port),
          "relay candidate %s:%d, expected 127.0.0.1 and a port in %d-%d"
          % (cand.host, cand.port, relay.port_min, relay.port_max))
    check(relay.port_owners(cand.port), "no relay process holds the "
          "relayed port %d" % cand.port)
    check(cand.related_address == "127.0.0.1",
          "related address %r" % cand.related_address)
    log("aioice Connection: relay candidate %s:%d (related %s:%d)"
        % (cand.host, cand.port, cand.related_address, cand.related_port))
    await asyncio.wait_for(conn.close(), 10)
    # aioice deletes the allocation (Refresh 0) on close
    deadline = time.monotonic() + 3.0
    while relay.port_owners(cand.port) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    check(not relay.port_owners(cand.port), "relayed port %d still open 3 s "
          "after aioice deleted the allocation" % cand.port)
    log("aioice Connection closed: relay port %d released" % cand.port)


class Collect(asyncio.DatagramProtocol):
    def __init__(self):
        self.got = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.got.put_nowait((data, addr))


async def turn_endpoint_echo(relay, creds, peer):
    transport, proto = await asyncio.wait_for(aioturn.create_turn_endpoint(
        Collect, server_addr=("127.0.0.1", relay.port),
        username=creds[0], password=creds[1], transport="udp"), 10)
    relayed = tuple(transport.get_extra_info("sockname"))
    check(relayed[0] == "127.0.0.1" and relay.in_range(relayed[1]),
          "aioice relayed address %r" % (relayed,))
    n = 50
    for i in range(n):
        payload = b"aioice-%03d-" % i + os.urandom(i * 10)
        transport.sendto(payload, peer.addr)
        data, addr = await asyncio.wait_for(proto.got.get(), 3)
        check(data == payload, "echo %d: got %r" % (i, data[:40]))
        check(tuple(addr) == tuple(peer.addr), "echo %d attributed to %r, "
              "not the peer %r" % (i, addr, peer.addr))
    check(peer.sources == {relayed: n}, "the echo peer saw %r, expected %d "
          "datagrams from the relayed address %r"
          % (peer.sources, n, relayed))
    log("aioice TURN endpoint: %d datagrams echoed through %r via a bound "
        "channel" % (n, relayed))
    transport.close()
    await asyncio.sleep(0.3)


async def ice_through_relay(relay):
    def agent(controlling):
        u, p = relay.credentials()
        return aioice.Connection(
            ice_controlling=controlling, components=1,
            turn_server=("127.0.0.1", relay.port), turn_username=u,
            turn_password=p, turn_transport="udp", use_ipv4=True,
            use_ipv6=False, transport_policy=aioice.TransportPolicy.RELAY)
    a, b = agent(True), agent(False)
    await asyncio.wait_for(asyncio.gather(a.gather_candidates(),
                                          b.gather_candidates()), 10)
    for x, y in ((a, b), (b, a)):
        check([c.type for c in x.local_candidates] == ["relay"],
              "relay-only agent gathered %r" % x.local_candidates)
        for c in x.local_candidates:
            await y.add_remote_candidate(c)
        await y.add_remote_candidate(None)
        y.remote_username = x.local_username
        y.remote_password = x.local_password
    await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 20)
    for i in range(10):
        msg = b"ice-%d" % i
        await a.send(msg)
        got = await asyncio.wait_for(b.recv(), 3)
        check(got == msg, "ICE a->b got %r" % got)
        await b.send(msg[::-1])
        got = await asyncio.wait_for(a.recv(), 3)
        check(got == msg[::-1], "ICE b->a got %r" % got)
    ra = a.local_candidates[0]
    rb = b.local_candidates[0]
    log("aioice ICE: relay-only agents %s:%d <-> %s:%d connected through "
        "the relay, 20 datagrams exchanged" % (ra.host, ra.port, rb.host,
                                              rb.port))
    await asyncio.gather(a.close(), b.close())


def test():
    if aioice is None:
        raise Skip("python3-aioice not importable: %s" % IMPORT_ERROR)
    relay = track(Relay("aioice", workers=2))
    relay.start()
    peer = EchoPeer()

    async def run():
        await gather_relay_candidate(relay, relay.credentials())
        await turn_endpoint_echo(relay, relay.credentials(), peer)
        await ice_through_relay(relay)

    asyncio.run(asyncio.wait_for(run(), 60))
    peer.stop()
    check(relay.proc.poll() is None, "the relay exited")
    relay.stop()


if __name__ == "__main__":
    main(test)
