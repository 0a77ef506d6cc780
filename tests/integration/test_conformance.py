#!/usr/bin/python3
"""Basic TURN conformance through the real binary, with the harness's own
TURN client (relaylib.TurnClient), over loopback.

SPEC cases: C1, C5, C8 (partly), C9, C11, C12, C15, C22, C23, C29, C30,
C37, C39, C41, C42, C47, C48, C50, C73 (same socket, same nonce), and the
§5.4 step 1 rule (a relay listen socket is never a peer, even when
peers.allow names its address).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403


def expect_error(m, code, reason, signed_key=None, attrs=None):
    check(m is not None, "no response, expected %d" % code)
    got = m.error()
    check(got == (code, reason), "expected %d %r, got %s"
          % (code, reason, m.describe()))
    check(m.cls == ERROR, "error class expected: %s" % m.describe())
    if signed_key is not None:
        check(m.integrity_ok(signed_key), "%d not signed with the request's"
              " key: %s" % (code, m.describe()))
        t = m.types()
        if t[-1] == A_FINGERPRINT:
            check(m.fingerprint_ok(), "bad FINGERPRINT: %s" % m.describe())
            t = t[:-1]
        check(t[-1] == A_MESSAGE_INTEGRITY, "MESSAGE-INTEGRITY not last "
              "(FINGERPRINT aside): %s" % m.describe())
    if attrs is not None:
        check(m.types() == attrs, "attributes %s, expected %s"
              % (m.describe(), [ATTR_NAMES.get(a) for a in attrs]))


def test():
    software = ("firezone-relay; rev=%s" % relay_version()).encode()
    relay = track(Relay("conformance", workers=1))
    relay.start()
    user, pw = relay.credentials()
    key = long_term_key(user, "firezone", pw)
    server = ("127.0.0.1", relay.port)

    # ---- C1: Binding
    c = TurnClient(server, user, pw)
    m = c.binding()
    check(m is not None, "C1: no Binding response")
    check(m.type == 0x0101, "C1: type 0x%04x" % m.type)
    check(m.types() == [A_SOFTWARE, A_XOR_MAPPED_ADDRESS],
          "C1: attributes %s" % m.describe())
    check(m.get(A_SOFTWARE) == software, "C1: SOFTWARE %r, expected %r"
          % (m.get(A_SOFTWARE), software))
    check(m.xaddr(A_XOR_MAPPED_ADDRESS) == c.local,
          "C1: XOR-MAPPED-ADDRESS %r, client %r"
          % (m.xaddr(A_XOR_MAPPED_ADDRESS), c.local))
    log("C1 ok: Binding answered with SOFTWARE and XOR-MAPPED-ADDRESS")

    # ---- C8 (partly): Binding with FINGERPRINT -> success ending in one
    tid = new_tid()
    m = c.transact_raw(encode(BINDING, REQUEST, tid, [], fingerprint=True),
                       tid, 1.0)
    check(m is not None and m.cls == SUCCESS, "C8: no success: %r" % m)
    check(m.types()[-1] == A_FINGERPRINT and m.fingerprint_ok(),
          "C8: response does not end in a verifying FINGERPRINT: %s"
          % m.describe())
    # a wrong FINGERPRINT: nothing sent
    raw = bytearray(encode(BINDING, REQUEST, tid, [], fingerprint=True))
    raw[-1] ^= 0xFF
    c.send_raw(bytes(raw))
    got = c.recv_raw(0.3)
    check(got is None, "C8: answer to a Binding with a wrong FINGERPRINT: %r"
          % (got,))
    log("C8 ok: FINGERPRINT mirrored and verified")

    # ---- C11: Allocate without credentials
    tid = new_tid()
    m = c.transact_raw(encode(ALLOCATE, REQUEST, tid, [transport_udp()]),
                       tid)
    expect_error(m, 401, "Unauthorized",
                 attrs=[A_SOFTWARE, A_ERROR_CODE, A_REALM, A_NONCE])
    check(m.get(A_REALM) == b"firezone", "C11: REALM %r" % m.get(A_REALM))
    nonce = m.text(A_NONCE)
    check(UUID_RE.match(nonce), "C11: NONCE %r is not a lowercase UUID"
          % nonce)
    log("C11 ok: unsigned 401 with REALM firezone and NONCE %s" % nonce)

    # ---- C12: USERNAME, REALM, MESSAGE-INTEGRITY but no NONCE
    tid = new_tid()
    m = c.transact_raw(encode(ALLOCATE, REQUEST, tid, [
        transport_udp(), (A_USERNAME, user.encode()),
        (A_REALM, b"firezone")], key=key), tid)
    expect_error(m, 401, "Unauthorized", signed_key=key,
                 attrs=[A_SOFTWARE, A_ERROR_CODE, A_REALM, A_NONCE,
                        A_MESSAGE_INTEGRITY])
    check(m.text(A_NONCE) == nonce, "C73: second 401 on the same socket "
          "carries nonce %r, first had %r" % (m.text(A_NONCE), nonce))
    log("C12 ok: 401 signed with the username's key, same nonce (C73)")

    # ---- C5: unknown method with USERNAME and MESSAGE-INTEGRITY
    tid = new_tid()
    m = c.transact_raw(encode(0x00A, REQUEST, tid, [
        (A_USERNAME, user.encode())], key=key), tid)
    expect_error(m, 400, "Bad Request", attrs=[A_SOFTWARE, A_ERROR_CODE])
    check(m.type == msg_type(0x00A, ERROR), "C5: type 0x%04x" % m.type)
    log("C5 ok: unknown method -> unsigned 400")

    # ---- C47: CreatePermission without an allocation
    c.nonce, c.realm, c.key = nonce, "firezone", key
    m = c.request(CREATE_PERMISSION, [])
    check(m.cls == SUCCESS and m.types() == [A_SOFTWARE, A_MESSAGE_INTEGRITY]
          and m.integrity_ok(key), "C47: %s" % m.describe())
    # ---- C30: Refresh without an allocation; C41: ChannelBind without one
    expect_error(c.refresh(), 437, "Allocation Mismatch", signed_key=key)
    expect_error(c.channel_bind(0x4000, ("127.0.0.1", 5000)), 437,
                 "Allocation Mismatch", signed_key=key)
    log("C47, C30, C41 ok")

    # ---- C15: the authenticated Allocate
    m, relayed = allocate_checked(relay, c)
    check(m.types() == [A_SOFTWARE, A_XOR_RELAYED_ADDRESS,
                        A_XOR_MAPPED_ADDRESS, A_LIFETIME,
                        A_MESSAGE_INTEGRITY], "C15: %s" % m.describe())
    check(m.get(A_SOFTWARE) == software, "C15: SOFTWARE %r"
          % m.get(A_SOFTWARE))
    check(m.lifetime() == 600, "C15: LIFETIME %r" % m.lifetime())
    check(m.xaddr(A_XOR_MAPPED_ADDRESS) == c.local, "C15: mapped %r"
          % (m.xaddr(A_XOR_MAPPED_ADDRESS),))
    rport = relayed[1]
    owners = relay.port_owners(rport)
    check(owners, "C15: no relay process holds a UDP socket on 127.0.0.1:%d"
          % rport)
    log("C15 ok: relayed 127.0.0.1:%d (range %d-%d), socket held by %r"
        % (rport, relay.port_min, relay.port_max, sorted(owners)))

    # ---- C23: replay of the creating Allocate -> the same success
    m = c.request(ALLOCATE, c.alloc_attrs, tid=c.alloc_tid)
    check(m.cls == SUCCESS and m.integrity_ok(key),
          "C23: replay answered %s" % m.describe())
    check(m.xaddr(A_XOR_RELAYED_ADDRESS) == relayed and m.lifetime() == 600,
          "C23: replay relayed %r lifetime %r" % (
              m.xaddr(A_XOR_RELAYED_ADDRESS), m.lifetime()))
    # ---- C22: another Allocate on the same socket -> 437
    m = c.request(ALLOCATE, [transport_udp()])
    expect_error(m, 437, "Allocation Mismatch", signed_key=key)
    log("C23, C22 ok")

    # ---- C37: ChannelBind and data both ways
    peer = udp_socket()
    paddr = peer.getsockname()[:2]
    m = c.bind_ok(0x4000, paddr)
    check(m.types() == [A_SOFTWARE, A_MESSAGE_INTEGRITY], "C37: %s"
          % m.describe())
    c.send_channel(0x4000, b"ping")
    got = recv_from(peer, 2.0)
    check(got == (b"ping", relayed), "C37: peer got %r, expected "
          "(b'ping', %r)" % (got, relayed))
    peer.sendto(b"pong", relayed)
    got = c.recv_raw(2.0)
    check(got is not None, "C37: client got no ChannelData for the pong")
    check(got[0] == b"\x40\x00\x00\x04pong" and got[1] == server,
          "C37: client got %r, expected 40 00 00 04 'pong' from %r"
          % (got, server))
    # more data, various sizes, both ways, in order
    sizes = [0, 1, 3, 4, 5, 100, 499, 1200, 1400, 8000]
    for i, n in enumerate(sizes):
        payload = bytes([i]) * n
        c.send_channel(0x4000, payload)
        got = recv_from(peer, 2.0)
        check(got == (payload, relayed), "C37: %d-byte payload to the peer:"
              " got %r" % (n, None if got is None else (len(got[0]), got[1])))
        peer.sendto(payload, relayed)
        got = c.recv_data(2.0)
        check(got is not None and got[:2] == (0x4000, payload),
              "C37: %d-byte payload to the client: got %r"
              % (n, None if got is None else (got[0], len(got[1]))))
    log("C37 ok: data both ways, %d sizes, relayed from 127.0.0.1:%d"
        % (len(sizes) + 1, rport))

    # ---- C39: ChannelData on an unbound channel, data from an unbound peer
    peer2 = udp_socket()
    p2addr = peer2.getsockname()[:2]
    c.send_channel(0x4001, b"unbound-channel")
    peer2.sendto(b"unbound-peer", relayed)
    c.send_channel(0x4000, b"marker-1")
    got = recv_from(peer, 2.0)
    check(got == (b"marker-1", relayed), "C39: peer's next datagram %r, "
          "expected the marker (the unbound channel leaked?)" % (got,))
    check(recv_from(peer2, 0.2) is None, "C39: the unbound peer got data")
    peer.sendto(b"marker-2", relayed)
    got = c.recv_raw(2.0)
    check(got is not None and got[0] == chandata(0x4000, b"marker-2"),
          "C39: client's next datagram %r, expected the marker (data from "
          "the unbound peer, or a Data indication, leaked?)" % (got,))
    log("C39 ok: unbound channel and unbound peer dropped")

    # ---- C42: conflicting binds on the same client
    expect_error(c.channel_bind(0x4001, paddr), 400, "Bad Request",
                 signed_key=key)
    expect_error(c.channel_bind(0x4000, p2addr), 400, "Bad Request",
                 signed_key=key)
    # a second, distinct channel still works
    c.bind_ok(0x7FFF, p2addr)
    c.send_channel(0x7FFF, b"to-peer2")
    got = recv_from(peer2, 2.0)
    check(got == (b"to-peer2", relayed), "channel 0x7FFF: peer2 got %r"
          % (got,))
    log("C42 ok; channel 0x7FFF (RFC 5766 range) relays")

    # ---- §5.4 step 1: the relay's own listen socket is never a peer,
    # even with peers.allow covering 127.0.0.0/8; port 0 is never a peer.
    for p in (("127.0.0.1", relay.port), ("127.0.0.1", 0)):
        expect_error(c.channel_bind(0x4010, p), 403, "Forbidden",
                     signed_key=key)
    log("§5.4 ok: listen socket and port 0 denied despite peers.allow")

    # ---- C29: Refresh 0 deletes; a later Refresh gets 437
    m = c.refresh(0)
    check(m.cls == SUCCESS and m.lifetime() == 0 and m.integrity_ok(key)
          and m.types() == [A_SOFTWARE, A_LIFETIME, A_MESSAGE_INTEGRITY],
          "C29: Refresh 0 answered %s" % m.describe())
    deadline = time.monotonic() + 2.0
    while relay.port_owners(rport) and time.monotonic() < deadline:
        time.sleep(0.02)
    check(not relay.port_owners(rport), "C29: relay socket 127.0.0.1:%d "
          "still open 2 s after Refresh 0" % rport)
    c.send_channel(0x4000, b"after-delete")
    check(recv_from(peer, 0.3) is None, "C29: data relayed after deletion")
    peer.sendto(b"after-delete", relayed)
    check(c.recv_raw(0.3) is None, "C29: data from the peer after deletion")
    expect_error(c.refresh(), 437, "Allocation Mismatch", signed_key=key)
    log("C29 ok: Refresh 0 closed the socket, later Refresh 437")
    c.close()
    peer.close()
    peer2.close()

    # ---- C48 / C50 / C9: default peer policy, dual-stack if ::1 works
    ipv6 = socket.has_ipv6
    try:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s6.bind(("::1", 0))
        s6.close()
    except OSError:
        ipv6 = False
    r2 = track(Relay("conformance-default-policy", workers=1,
                     peers_allow=False, ipv6=ipv6))
    r2.start()
    u2, p2 = r2.credentials()
    c2 = TurnClient(("127.0.0.1", r2.port), u2, p2, fingerprint=True)
    extra = [(A_ADDITIONAL_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))] \
        if ipv6 else []
    m, relayed2 = allocate_checked(r2, c2, extra=extra)
    # C9: FINGERPRINT requested -> MESSAGE-INTEGRITY then FINGERPRINT
    check(m.types()[-2:] == [A_MESSAGE_INTEGRITY, A_FINGERPRINT]
          and m.fingerprint_ok(), "C9: %s" % m.describe())
    if ipv6:
        ras = m.xaddrs(A_XOR_RELAYED_ADDRESS)
        check(ras == [relayed2, ("::1", relayed2[1])],
              "C32: relayed addresses %r, expected IPv4 then [::1] on the "
              "same port" % (ras,))
    denied = [("127.0.0.1", 5000), ("0.0.0.0", 5000), ("169.254.1.1", 5000),
              ("224.0.0.1", 5000), ("255.255.255.255", 5000),
              ("203.0.113.9", 0), ("127.0.0.1", r2.port),
              ("127.0.0.1", relayed2[1])]
    if ipv6:
        denied += [("::1", 5000), ("fe80::1", 5000), ("ff02::1", 5000),
                   ("::ffff:127.0.0.1", 5000), ("64:ff9b::a9fe:101", 5000),
                   ("::1", r2.port)]
    key2 = None
    for p in denied:
        m = c2.channel_bind(0x4000, p)
        key2 = c2.key
        expect_error(m, 403, "Forbidden", signed_key=key2)
    # nothing was created: the same number binds to an allowed peer
    c2.bind_ok(0x4000, ("10.1.2.3", 5000))
    if ipv6:
        c2.bind_ok(0x4001, ("fd00::1", 5000))
    log("C48 ok: %d denied peers got 403; C50 ok: private peers allowed%s"
        % (len(denied), " (dual-stack)" if ipv6 else " (IPv4 only: no ::1)"))
    c2.close()
    r2.stop()
    relay.stop()


if __name__ == "__main__":
    main(test)
