#!/usr/bin/python3
"""Hostile input through the real binary on loopback (issue 8 item 2).

One relay: standalone, public_ip4 127.0.0.1 and public_ip6 ::1, listening
on 127.0.0.1 and [::1], 2 workers, the default peer policy plus
`peers.allow: [127.0.0.2/32]` (the one echo peer), limits.error_rate and
error_burst at their defaults.  Everything is sent with this file's own
STUN encoder (raw bytes; relaylib only supplies the socket plumbing and a
response parser).

Each datagram gets the answer SPEC.md prescribes, checked exactly:

* drops (§2.2, §2.3, §2.11.2, §2.8 bad_username): no answer within
  REPLY_WAIT, all of them sent in one batch (one socket per case, so a
  stray answer is attributed) and waited for once; when /metrics is served
  (§10.1), the per-reason deltas of relay_dropped_packets_total must equal
  the batch's expected reasons exactly;
* unauthenticated 400 (§2.3 step 3, §2.5, §2.8): the error type of the
  request's method, "Bad Request", unsigned, SOFTWARE and ERROR-CODE only
  (plus a mirrored FINGERPRINT when the request had one);
* 401/438: REALM and NONCE, signed iff the request had a usable USERNAME,
  with the key derived from that USERNAME (§2.8);
* 403 for every denied peer form of §5.4 in an authenticated ChannelBind
  on a dual-stack allocation, signed, and no channel created;
* a flood of credential-less Allocates from 100 source ports of one IP
  (127.0.0.3): at most W x (burst + rate x elapsed) 401s (§2.12), all
  others dropped rate_limited; Bindings from the same IP are never limited;
* afterwards the master and both workers are the same processes, nothing
  was logged at warn or error, and valid clients (from 127.0.0.1 and from
  the flooded 127.0.0.3) still complete Allocate, ChannelBind and data both
  ways with the UDP echo peer on 127.0.0.2.

Not covered: requests from source port 0 (SPEC §2.2 step 1, C2), which
cannot be sent through the loopback socket API (bind to port 0 picks an
ephemeral port); the core's unit tests cover them.
"""

import os
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403

A_DATA_ATTR = 0x0013
A_MI_SHA256 = 0x001C
A_XOR_RELAYED = 0x0016
CONNECT = 0x00A
REPLY_WAIT = 0.3          # the "no answer" window, waited once per batch
REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           437: "Allocation Mismatch", 438: "Stale Nonce",
           440: "Address Family not Supported",
           443: "Peer Address Family Mismatch",
           508: "Insufficient Capacity"}
DROP_REASONS = ("port_zero", "not_ready", "malformed", "fingerprint",
                "not_request", "rate_limited", "bad_username", "no_channel",
                "no_peer_binding", "too_large", "send_error")

RESULTS = []              # (case, outcome) in order, for the summary


def note(name, outcome):
    RESULTS.append((name, outcome))


# --------------------------------------------------------------------------
# A raw STUN encoder: every length and attribute under the test's control

def attr(t, v, length=None, pad=True):
    n = len(v) if length is None else length
    return struct.pack("!HH", t, n) + (_pad_bytes(v) if pad else v)


def _pad_bytes(v):
    return v + b"\0" * (-len(v) % 4)


def header(t, length, tid, cookie=MAGIC):
    return struct.pack("!HHI", t, length, cookie) + tid


def raw(t, tid, body, length=None, cookie=MAGIC):
    return header(t, len(body) if length is None else length, tid,
                  cookie) + body


def req(method):
    return msg_type(method, REQUEST)


def with_mi(t, tid, before, key, after=b"", mac=None):
    """MESSAGE-INTEGRITY over `before` (RFC 8489 §14.5), then `after`."""
    if mac is None:
        h = header(t, len(before) + 24, tid)
        mac = hmac.new(key, h + before, hashlib.sha1).digest()
    return raw(t, tid, before + attr(A_MESSAGE_INTEGRITY, mac) + after)


def add_fp(msg, xor=FP_XOR, value=None):
    """Append FINGERPRINT (RFC 8489 §14.7) to a complete message."""
    body_len = len(msg) - 20
    m2 = msg[:2] + struct.pack("!H", body_len + 8) + msg[4:]
    if value is None:
        value = struct.pack("!I", (binascii.crc32(m2) & 0xFFFFFFFF) ^ xor)
    body = msg[20:] + attr(A_FINGERPRINT, value)
    return msg[:2] + struct.pack("!H", len(body)) + msg[4:20] + body


def eventually(cond, timeout=1.0):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)


def append_attr(msg, a):
    """msg with attribute a appended and the length field updated."""
    body = msg[20:] + a
    return msg[:2] + struct.pack("!H", len(body)) + msg[4:20] + body


def xpeer(addr, tid):
    return attr(A_XOR_PEER_ADDRESS, encode_xor_address(addr, tid))


def chnum(n, tail=b"\0\0"):
    return attr(A_CHANNEL_NUMBER, struct.pack("!H", n) + tail)


RT_UDP = attr(A_REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
AAF6 = attr(A_ADDITIONAL_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))


# --------------------------------------------------------------------------
# Credentials computed from the secret (SPEC §3.2, §3.3, §3.5), on bytes so
# that NUL bytes and odd salts stay exact

def password_of(secret, expiry, salt):
    d = hashlib.sha256(b"%d:" % expiry + secret + b":" + salt).digest()
    return base64.b64encode(d).rstrip(b"=")


def key_of(secret, expiry, salt, username=None):
    """The long-term key.  `username` is what the key's MD5 covers: the
    canonical `<expiry>:<salt>` unless given (a client's own mistake)."""
    u = username if username is not None else b"%d:" % expiry + salt
    return hashlib.md5(u + b":firezone:" +
                       password_of(secret, expiry, salt)).digest()


class Cred:
    def __init__(self, secret, expiry, salt):
        self.expiry = expiry
        self.salt = salt
        self.user = b"%d:" % expiry + salt
        self.key = key_of(secret, expiry, salt)


# --------------------------------------------------------------------------
# Metrics (SPEC §10.2); None when the endpoint is not served

def scrape(relay):
    url = "http://127.0.0.1:%d/metrics" % relay.health_port
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status != 200:
                return None
            text = r.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return None
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, val = line.rpartition(" ")
        try:
            out[name] = float(val)
        except ValueError:
            pass
    return out


def drops(metrics):
    return {r: int(metrics.get('relay_dropped_packets_total{reason="%s"}'
                               % r, 0)) for r in DROP_REASONS}


def wait_drop_deltas(relay, before, expected, what, timeout=3.0):
    """The drop counters moved by exactly `expected` (reason -> count)
    since `before`.  Returns False when /metrics is not served."""
    if before is None:
        return False
    deadline = time.monotonic() + timeout
    while True:
        m = scrape(relay)
        check(m is not None, "%s: /metrics stopped answering" % what)
        now = drops(m)
        delta = {r: now[r] - before[r] for r in DROP_REASONS}
        want = {r: expected.get(r, 0) for r in DROP_REASONS}
        if delta == want:
            return True
        if time.monotonic() > deadline:
            raise TestFailure("%s: drop counter deltas %s, expected %s"
                              % (what, {r: v for r, v in delta.items() if v},
                                 {r: v for r, v in want.items() if v}))
        time.sleep(0.05)


# --------------------------------------------------------------------------
# Answer checks

def expect(name, m, method, code, key=None, attrs=None, fp=False):
    """m answers a `method` request: success (code 0) or error `code`,
    signed with `key` or (key None) unsigned; `attrs` the exact attribute
    types without FINGERPRINT; fp: a verifying FINGERPRINT must end it."""
    check(m is not None, "%s: no answer within the timeout, expected %s"
          % (name, "success" if code == 0 else code))
    if code == 0:
        check(m.type == msg_type(method, SUCCESS), "%s: expected a success,"
              " got type 0x%04x: %s" % (name, m.type, m.describe()))
    else:
        check(m.type == msg_type(method, ERROR), "%s: expected error type "
              "0x%04x, got 0x%04x: %s" % (name, msg_type(method, ERROR),
                                          m.type, m.describe()))
        check(m.error() == (code, REASONS[code]), "%s: expected %d %r, got "
              "%s" % (name, code, REASONS[code], m.describe()))
    types = m.types()
    check(types and types[0] == A_SOFTWARE, "%s: SOFTWARE not first: %s"
          % (name, m.describe()))
    if fp:
        check(types[-1] == A_FINGERPRINT and m.fingerprint_ok(),
              "%s: no verifying FINGERPRINT mirrored: %s"
              % (name, m.describe()))
        types = types[:-1]
    else:
        check(A_FINGERPRINT not in types, "%s: FINGERPRINT without one in "
              "the request: %s" % (name, m.describe()))
    if key is not None:
        check(types[-1] == A_MESSAGE_INTEGRITY and m.integrity_ok(key),
              "%s: not signed with the request's key: %s"
              % (name, m.describe()))
    else:
        check(A_MESSAGE_INTEGRITY not in types, "%s: signed, expected "
              "unsigned: %s" % (name, m.describe()))
    if attrs is not None:
        check(types == attrs, "%s: attributes %s, expected %s"
              % (name, m.describe(),
                 [ATTR_NAMES.get(a, hex(a)) for a in attrs]))
    if code in (401, 438):
        check(m.get(A_REALM) == b"firezone", "%s: REALM %r"
              % (name, m.get(A_REALM)))
        check(re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                       r"[0-9a-f]{12}$", m.text(A_NONCE) or ""),
              "%s: NONCE %r is not a lowercase UUID" % (name,
                                                         m.get(A_NONCE)))
    outcome = "success" if code == 0 else "%d" % code
    outcome += " signed" if key is not None else " unsigned"
    if fp:
        outcome += " +FINGERPRINT"
    note(name, outcome)
    return m


U400 = [A_SOFTWARE, A_ERROR_CODE]
U401 = [A_SOFTWARE, A_ERROR_CODE, A_REALM, A_NONCE]
S401 = U401 + [A_MESSAGE_INTEGRITY]
SERR = [A_SOFTWARE, A_ERROR_CODE, A_MESSAGE_INTEGRITY]
SOK = [A_SOFTWARE, A_MESSAGE_INTEGRITY]


class Wire:
    """A client socket sending raw bytes (relaylib.TurnClient's plumbing
    with its retransmission effectively off)."""

    def __init__(self, server, bind=None):
        bind = bind or (("::1", 0) if ":" in server[0] else ("127.0.0.1", 0))
        self.c = TurnClient(server, bind=bind, rto=1.0)
        self.nonce = None

    def ask(self, data, timeout=1.5):
        return self.c.transact_raw(data, data[8:20], timeout)

    def send(self, data):
        self.c.send_raw(data)

    def get_nonce(self):
        """A credential-less Allocate: the unsigned 401 hands this socket
        its nonce (one rate-limit token)."""
        tid = new_tid()
        m = self.ask(raw(req(ALLOCATE), tid, RT_UDP))
        check(m is not None and m.error()[0] == 401 and m.has(A_NONCE),
              "no 401 with a NONCE to a credential-less Allocate: %r" % (m,))
        self.nonce = m.get(A_NONCE)
        return self.nonce

    def close(self):
        self.c.close()


def authd(method, tid, attrs, cred, nonce, realm=b"firezone", key=None,
          user=None, after=b"", fp=False):
    """An authenticated request: attrs, USERNAME, REALM, NONCE, MI."""
    before = attrs + attr(A_USERNAME, cred.user if user is None else user) \
        + attr(A_REALM, realm) + attr(A_NONCE, nonce)
    m = with_mi(req(method), tid, before, cred.key if key is None else key,
                after)
    return add_fp(m) if fp else m


# --------------------------------------------------------------------------

def test():
    have6 = True
    try:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s6.bind(("::1", 0))
        s6.close()
    except OSError:
        have6 = False
    if not have6:
        raise Skip("no IPv6 loopback (::1) on this host: the IPv6 peer forms"
                   " and the [::1] listen socket cannot be tested")
    try:
        s = udp_socket("127.0.0.3")
        s.close()
    except OSError:
        raise Skip("cannot bind 127.0.0.3 (the flood's source address)")

    echo = EchoPeer("127.0.0.2")
    echo2 = EchoPeer("127.0.0.2")
    relay = track(Relay("hostile", workers=2, ipv6=True,
                        peers_allow=["127.0.0.2/32"]))
    relay.start()
    workers = relay.wait_workers(2)
    master = relay.pid
    t_start = time.monotonic()
    srv4 = ("127.0.0.1", relay.port)
    srv6 = ("::1", relay.port)
    with open(relay.secret_path, "rb") as f:
        secret = f.read().splitlines()[0]
    now = int(time.time())
    # the secret as read here is the relay's: `credentials` agrees
    u, p = relay.credentials(ttl=3600, extra_args=["--salt", "hostileA"])
    good = Cred(secret, int(u.split(":")[0]), b"hostileA")
    check(u.encode() == good.user and
          long_term_key(u, "firezone", p) == good.key,
          "credentials disagree with the secret file's derivation")
    m0 = scrape(relay)
    if m0 is None:
        log("no /metrics on 127.0.0.1:%d: asserting wire behaviour only"
            % relay.health_port)
    else:
        log("/metrics served: drop reasons are asserted too")
    log("relay master %d, workers %r" % (master, workers))

    # ==================================================================
    # Part A: answered cases, one request at a time
    a = Wire(srv4)                  # the authenticated client socket
    nonce = a.get_nonce()
    note("credential-less Allocate (C11)", "401 unsigned")

    # ---- unknown methods and requests of no TURN method: unsigned 400
    for name, meth in (("Connect 0x00A request with USERNAME+MI (C5)",
                        CONNECT),
                       ("Send 0x006 as a request", SEND),
                       ("Data 0x007 as a request", DATA),
                       ("method 0x0FF request (highest with first byte "
                        "0x03)", 0x0FF),
                       ("method 0x000 request", 0x000),
                       ("method 0x00B (ConnectionBind) request", 0x00B)):
        tid = new_tid()
        expect(name, a.ask(authd(meth, tid, b"", good, nonce)), meth, 400,
               attrs=U400)

    # ---- value rules before MESSAGE-INTEGRITY: unsigned 400 (§2.3 step 3)
    def bad(name, method, attrs_fn, signed=True, fp=False):
        tid = new_tid()
        body = attrs_fn(tid)
        if signed:
            data = authd(method, tid, body, good, nonce, fp=fp)
        else:
            data = raw(req(method), tid, body)
            if fp:
                data = add_fp(data)
        expect(name, a.ask(data), method, 400, attrs=U400, fp=fp)

    bad("Binding with USERNAME of bad UTF-8 (C3 28)", BINDING,
        lambda t: attr(A_USERNAME, b"\xc3\x28abc"), signed=False)
    bad("Binding with XOR-MAPPED-ADDRESS family 0", BINDING,
        lambda t: attr(A_XOR_MAPPED_ADDRESS, b"\0\0\0\0\0\0\0\0"),
        signed=False)
    bad("Binding with a bad attribute and a valid FINGERPRINT", BINDING,
        lambda t: attr(A_SOFTWARE, b"\xff"), signed=False, fp=True)
    bad("Allocate, USERNAME bad UTF-8 before MI", ALLOCATE,
        lambda t: RT_UDP + attr(A_USERNAME, b"1:\x80"))
    bad("Allocate, USERNAME of 513 bytes", ALLOCATE,
        lambda t: RT_UDP + attr(A_USERNAME, b"1" * 513))
    bad("Allocate, REALM with a lone continuation byte", ALLOCATE,
        lambda t: RT_UDP + attr(A_REALM, b"fire\x80zone"), signed=False)
    bad("Allocate, REALM of 128 characters", ALLOCATE,
        lambda t: RT_UDP + attr(A_REALM, b"r" * 128), signed=False)
    bad("Allocate, NONCE with an overlong NUL (C0 80)", ALLOCATE,
        lambda t: RT_UDP + attr(A_NONCE, b"\xc0\x80"), signed=False)
    bad("Allocate, SOFTWARE with a UTF-16 surrogate (ED A0 80)", ALLOCATE,
        lambda t: RT_UDP + attr(A_SOFTWARE, b"\xed\xa0\x80"))
    bad("Allocate, SOFTWARE above U+10FFFF (F4 90 80 80)", ALLOCATE,
        lambda t: RT_UDP + attr(A_SOFTWARE, b"\xf4\x90\x80\x80"))
    bad("Allocate, SOFTWARE ending in a truncated sequence (E2 82)",
        ALLOCATE, lambda t: RT_UDP + attr(A_SOFTWARE, b"ok\xe2\x82"))
    bad("Allocate, MESSAGE-INTEGRITY of 19 bytes", ALLOCATE,
        lambda t: RT_UDP + attr(A_USERNAME, good.user) +
        attr(A_MESSAGE_INTEGRITY, b"\1" * 19), signed=False)
    bad("Allocate, MESSAGE-INTEGRITY of 32 bytes", ALLOCATE,
        lambda t: RT_UDP + attr(A_USERNAME, good.user) +
        attr(A_MESSAGE_INTEGRITY, b"\1" * 32), signed=False)
    bad("ChannelBind, CHANNEL-NUMBER 0x3FFF (C7)", CHANNEL_BIND,
        lambda t: chnum(0x3FFF) + xpeer(echo.addr, t))
    bad("ChannelBind, CHANNEL-NUMBER 0xFFFF", CHANNEL_BIND,
        lambda t: chnum(0xFFFF) + xpeer(echo.addr, t))
    bad("ChannelBind, CHANNEL-NUMBER 0x8000", CHANNEL_BIND,
        lambda t: chnum(0x8000) + xpeer(echo.addr, t))
    bad("ChannelBind, CHANNEL-NUMBER 0x0000", CHANNEL_BIND,
        lambda t: chnum(0x0000) + xpeer(echo.addr, t))
    bad("ChannelBind, CHANNEL-NUMBER of 2 bytes", CHANNEL_BIND,
        lambda t: attr(A_CHANNEL_NUMBER, b"\x40\x00") + xpeer(echo.addr, t))
    bad("ChannelBind, duplicate CHANNEL-NUMBER 0x4000 then 0x3FFF",
        CHANNEL_BIND, lambda t: chnum(0x4000) + chnum(0x3FFF) +
        xpeer(echo.addr, t))
    bad("ChannelBind, XOR-PEER-ADDRESS family 3", CHANNEL_BIND,
        lambda t: chnum(0x4000) + attr(A_XOR_PEER_ADDRESS,
                                       b"\0\3\0\1\0\0\0\0"))
    bad("ChannelBind, XOR-PEER-ADDRESS IPv4 of 20 bytes", CHANNEL_BIND,
        lambda t: chnum(0x4000) + attr(A_XOR_PEER_ADDRESS,
                                       b"\0\1\0\1" + b"\0" * 16))
    bad("ChannelBind, XOR-PEER-ADDRESS IPv6 of 8 bytes", CHANNEL_BIND,
        lambda t: chnum(0x4000) + attr(A_XOR_PEER_ADDRESS,
                                       b"\0\2\0\1\0\0\0\0"))
    bad("ChannelBind, XOR-PEER-ADDRESS of 0 bytes", CHANNEL_BIND,
        lambda t: chnum(0x4000) + attr(A_XOR_PEER_ADDRESS, b""))
    bad("ChannelBind without CHANNEL-NUMBER", CHANNEL_BIND,
        lambda t: xpeer(echo.addr, t))
    bad("ChannelBind without XOR-PEER-ADDRESS", CHANNEL_BIND,
        lambda t: chnum(0x4000))
    bad("Refresh, LIFETIME of 8 bytes", REFRESH,
        lambda t: attr(A_LIFETIME, b"\0" * 8))
    bad("Refresh, LIFETIME of 0 bytes", REFRESH,
        lambda t: attr(A_LIFETIME, b""))
    bad("Allocate, REQUESTED-TRANSPORT of 2 bytes", ALLOCATE,
        lambda t: attr(A_REQUESTED_TRANSPORT, b"\x11\0"))
    bad("Allocate, REQUESTED-ADDRESS-FAMILY 0x03", ALLOCATE,
        lambda t: RT_UDP + attr(A_REQUESTED_ADDRESS_FAMILY, b"\3\0\0\0"))
    bad("Allocate, ADDITIONAL-ADDRESS-FAMILY of 8 bytes", ALLOCATE,
        lambda t: RT_UDP + attr(A_ADDITIONAL_ADDRESS_FAMILY, b"\2" + b"\0"
                                * 7))
    bad("Allocate, ERROR-CODE class 7 in a request", ALLOCATE,
        lambda t: RT_UDP + attr(A_ERROR_CODE, b"\0\0\7\0x"))
    bad("Allocate, ERROR-CODE of 2 bytes", ALLOCATE,
        lambda t: RT_UDP + attr(A_ERROR_CODE, b"\0\0"))
    bad("Allocate, ERROR-CODE number 100", ALLOCATE,
        lambda t: RT_UDP + attr(A_ERROR_CODE, b"\0\0\4\x64"))
    bad("Allocate, XOR-RELAYED-ADDRESS of 12 bytes", ALLOCATE,
        lambda t: RT_UDP + attr(A_XOR_RELAYED, b"\0\1" + b"\0" * 10))
    bad("Allocate, duplicate USERNAME: valid, then bad UTF-8", ALLOCATE,
        lambda t: RT_UDP + attr(A_USERNAME, good.user) +
        attr(A_USERNAME, b"\xfe"), signed=False)
    bad("Allocate without REQUESTED-TRANSPORT, auth'd (C7)", ALLOCATE,
        lambda t: b"")
    bad("CreatePermission with a bad XOR-PEER-ADDRESS, auth'd",
        CREATE_PERMISSION, lambda t: attr(A_XOR_PEER_ADDRESS, b"\0\1\0"))
    # C7: the 400s above consumed no nonce use: the same nonce still works
    tid = new_tid()
    expect("CreatePermission after the 400s: the nonce still works (C47)",
           a.ask(authd(CREATE_PERMISSION, tid, b"", good, nonce)),
           CREATE_PERMISSION, 0, key=good.key, attrs=SOK)

    # ---- authentication (§3.6): 401 and 438, signed iff USERNAME
    tid = new_tid()
    expect("Allocate with USERNAME, REALM, MI, no NONCE (C12)",
           a.ask(with_mi(req(ALLOCATE), tid, RT_UDP + attr(
               A_USERNAME, good.user) + attr(A_REALM, b"firezone"),
               good.key)), ALLOCATE, 401, key=good.key, attrs=S401)
    tid = new_tid()
    expect("Allocate with only MESSAGE-INTEGRITY-SHA256 (C10)",
           a.ask(raw(req(ALLOCATE), tid, RT_UDP + attr(A_USERNAME, good.user)
                     + attr(A_REALM, b"firezone") + attr(A_NONCE, nonce) +
                     attr(A_MI_SHA256, b"\x55" * 32))),
           ALLOCATE, 401, key=good.key, attrs=S401)
    tid = new_tid()
    expect("Allocate with NONCE 'not-a-uuid' (C16)",
           a.ask(authd(ALLOCATE, tid, RT_UDP, good, b"not-a-uuid")),
           ALLOCATE, 401, key=good.key, attrs=S401)
    tid = new_tid()
    expect("Allocate with a 33-hex-digit NONCE",
           a.ask(authd(ALLOCATE, tid, RT_UDP, good, b"0" * 33)),
           ALLOCATE, 401, key=good.key, attrs=S401)
    stale = b"12345678-9abc-def0-1234-56789abcdef0"
    tid = new_tid()
    m = expect("Refresh with a stale (never issued) nonce",
               a.ask(authd(REFRESH, tid, b"", good, stale)),
               REFRESH, 438, key=good.key, attrs=S401)
    check(m.get(A_NONCE) == nonce, "438 carries %r, not the socket's current"
          " nonce %r" % (m.get(A_NONCE), nonce))
    b_ = Wire(srv4)
    tid = new_tid()
    m = expect("nonce of socket A used on socket B (C14)",
               b_.ask(authd(REFRESH, tid, b"", good, nonce)),
               REFRESH, 438, key=good.key, attrs=S401)
    check(m.get(A_NONCE) != nonce, "C14: socket B's 438 carries socket A's "
          "nonce")
    b_.close()
    expired = Cred(secret, now - 10, b"expiredsalt")
    tid = new_tid()
    expect("Allocate with an expired username (C18)",
           a.ask(authd(ALLOCATE, tid, RT_UDP, expired, nonce)),
           ALLOCATE, 401, key=expired.key, attrs=S401)
    tid = new_tid()
    expect("Allocate with MI from a wrong password (C19)",
           a.ask(authd(ALLOCATE, tid, RT_UDP, good, nonce,
                       key=hashlib.md5(b"wrong").digest())),
           ALLOCATE, 401, key=good.key, attrs=S401)
    lz = Cred(secret, now + 3600, b"lz")
    lz_raw_user = b"0" + lz.user
    tid = new_tid()
    expect("Allocate with a leading-zero expiry, client key over the raw "
           "username (§3.5)",
           a.ask(authd(ALLOCATE, tid, RT_UDP, lz, nonce, user=lz_raw_user,
                       key=key_of(secret, lz.expiry, b"lz", lz_raw_user))),
           ALLOCATE, 401, key=lz.key, attrs=S401)
    tid = new_tid()
    expect("Refresh with USERNAME after MI (misplaced; not used)",
           a.ask(with_mi(req(REFRESH), tid, attr(A_REALM, b"firezone") +
                         attr(A_NONCE, nonce), good.key,
                         after=attr(A_USERNAME, good.user))),
           REFRESH, 401, attrs=U401)
    tid = new_tid()
    before = attr(A_USERNAME, good.user) + attr(A_REALM, b"firezone") + \
        attr(A_NONCE, nonce)
    expect("CreatePermission with a garbage MI, then a valid one",
           a.ask(raw(req(CREATE_PERMISSION), tid, before +
                     attr(A_MESSAGE_INTEGRITY, b"\0" * 20) +
                     attr(A_MESSAGE_INTEGRITY, hmac.new(
                         good.key, header(req(CREATE_PERMISSION),
                                          len(before) + 48, tid) + before +
                         attr(A_MESSAGE_INTEGRITY, b"\0" * 20),
                         hashlib.sha1).digest()))),
           CREATE_PERMISSION, 401, key=good.key, attrs=S401)
    tid = new_tid()
    expect("CreatePermission with a valid MI, then a duplicate garbage MI "
           "and a bad-UTF-8 USERNAME after it",
           a.ask(with_mi(req(CREATE_PERMISSION), tid, before, good.key,
                         after=attr(A_MESSAGE_INTEGRITY, b"\0" * 20) +
                         attr(A_USERNAME, b"\xff\xfe"))),
           CREATE_PERMISSION, 0, key=good.key, attrs=SOK)
    nul = Cred(secret, now + 3600, b"sa\0lt")
    tid = new_tid()
    expect("CreatePermission, USERNAME with a NUL byte in the salt",
           a.ask(authd(CREATE_PERMISSION, tid, b"", nul, nonce)),
           CREATE_PERMISSION, 0, key=nul.key, attrs=SOK)
    tid = new_tid()
    expect("CreatePermission, NUL-salt USERNAME, MI keyed as if the salt "
           "ended at the NUL",
           a.ask(authd(CREATE_PERMISSION, tid, b"", nul, nonce,
                       key=key_of(secret, nul.expiry, b"sa"))),
           CREATE_PERMISSION, 401, key=nul.key, attrs=S401)
    tid = new_tid()
    expect("CreatePermission, REALM with NUL bytes (never compared)",
           a.ask(authd(CREATE_PERMISSION, tid, b"", good, nonce,
                       realm=b"fire\0zone\0")),
           CREATE_PERMISSION, 0, key=good.key, attrs=SOK)
    braced = b"{" + nonce.upper() + b"}"
    tid = new_tid()
    expect("CreatePermission, NONCE as an upper-case {UUID} (§3.7)",
           a.ask(authd(CREATE_PERMISSION, tid, b"", good, braced)),
           CREATE_PERMISSION, 0, key=good.key, attrs=SOK)
    tid = new_tid()
    expect("CreatePermission, NONCE as urn:uuid:<UUID>",
           a.ask(authd(CREATE_PERMISSION, tid, b"", good,
                       b"urn:uuid:" + nonce)),
           CREATE_PERMISSION, 0, key=good.key, attrs=SOK)
    tid = new_tid()
    expect("CreatePermission, NONCE as 32 bare hex digits",
           a.ask(authd(CREATE_PERMISSION, tid, b"", good,
                       nonce.replace(b"-", b""))),
           CREATE_PERMISSION, 0, key=good.key, attrs=SOK)
    tid = new_tid()
    expect("Binding with EVEN-PORT, 0x7FFF, 0x0000, garbage MI (C6)",
           a.ask(raw(req(BINDING), tid, attr(A_EVEN_PORT, b"\x80") +
                     attr(0x7FFF, b"x" * 7) + attr(0x0000, b"") +
                     attr(A_MESSAGE_INTEGRITY, b"\0" * 20))),
           BINDING, 0, attrs=[A_SOFTWARE, A_XOR_MAPPED_ADDRESS])
    big = attr(0x7FFE, b"B" * (65504 - 20 - 4))
    tid = new_tid()
    expect("Binding of 65,504 bytes (the largest aligned STUN message in an"
           " IPv4 UDP datagram)",
           a.ask(raw(req(BINDING), tid, big)), BINDING, 0,
           attrs=[A_SOFTWARE, A_XOR_MAPPED_ADDRESS])
    # allocation-level errors on fresh sockets (no allocation yet)
    f = Wire(srv4)
    n_f = f.get_nonce()
    tid = new_tid()
    expect("Allocate with REQUESTED-TRANSPORT 6 (C25)",
           f.ask(authd(ALLOCATE, tid, attr(A_REQUESTED_TRANSPORT,
                                            b"\6\0\0\0"), good, n_f)),
           ALLOCATE, 400, key=good.key, attrs=SERR)
    tid = new_tid()
    expect("Allocate with RAF and AAF (C33)",
           f.ask(authd(ALLOCATE, tid, RT_UDP + attr(
               A_REQUESTED_ADDRESS_FAMILY, b"\1\0\0\0") + AAF6, good, n_f)),
           ALLOCATE, 400, key=good.key, attrs=SERR)
    tid = new_tid()
    expect("Allocate with AAF IPv4 (C33)",
           f.ask(authd(ALLOCATE, tid, RT_UDP + attr(
               A_ADDITIONAL_ADDRESS_FAMILY, b"\1\0\0\0"), good, n_f)),
           ALLOCATE, 400, key=good.key, attrs=SERR)
    tid = new_tid()
    expect("Allocate, REQUESTED-TRANSPORT 6 then 17 (first used)",
           f.ask(authd(ALLOCATE, tid, attr(A_REQUESTED_TRANSPORT,
                                            b"\6\0\0\0") + RT_UDP, good,
                       n_f)),
           ALLOCATE, 400, key=good.key, attrs=SERR)
    maxu64 = Cred(secret, 2 ** 64 - 1, b"forever")
    tid = new_tid()
    expect("CreatePermission, expiry 2^64-1 (the largest parsable)",
           f.ask(authd(CREATE_PERMISSION, tid, b"", maxu64, n_f)),
           CREATE_PERMISSION, 0, key=maxu64.key, attrs=SOK)
    one = Cred(secret, 1, b"zeros")
    tid = new_tid()
    expect("CreatePermission, expiry '00000000000000000001' (20 digits, "
           "expired): 401 signed with the canonical '1:' key",
           f.ask(authd(CREATE_PERMISSION, tid, b"", one, n_f,
                       user=b"00000000000000000001:zeros")),
           CREATE_PERMISSION, 401, key=one.key, attrs=S401)
    tid = new_tid()
    expect("Refresh without an allocation (C30)",
           f.ask(authd(REFRESH, tid, b"", good, n_f)), REFRESH, 437,
           key=good.key, attrs=SERR)
    tid = new_tid()
    expect("ChannelBind without an allocation (C41)",
           f.ask(authd(CHANNEL_BIND, tid, chnum(0x4000) +
                       xpeer(echo.addr, tid), good, n_f)),
           CHANNEL_BIND, 437, key=good.key, attrs=SERR)
    # an IPv4-only allocation: IPv6 peer -> 443; a second Allocate -> 437
    v4only = Cred(secret, now + 3600, b"v4only")
    tid = new_tid()
    expect("Allocate, IPv4 only", f.ask(authd(ALLOCATE, tid, RT_UDP + attr(
        A_LIFETIME, u32(60)), v4only, n_f)), ALLOCATE, 0, key=v4only.key,
        attrs=[A_SOFTWARE, A_XOR_RELAYED_ADDRESS, A_XOR_MAPPED_ADDRESS,
               A_LIFETIME, A_MESSAGE_INTEGRITY])
    tid = new_tid()
    expect("ChannelBind to an IPv6 peer on an IPv4-only allocation (C40)",
           f.ask(authd(CHANNEL_BIND, tid, chnum(0x4000) +
                       xpeer(("::ffff:127.0.0.2", 5000), tid), v4only,
                       n_f)), CHANNEL_BIND, 443, key=v4only.key, attrs=SERR)
    tid = new_tid()
    expect("second Allocate on an allocated socket (C22)",
           f.ask(authd(ALLOCATE, tid, RT_UDP, v4only, n_f)), ALLOCATE, 437,
           key=v4only.key, attrs=SERR)
    tid = new_tid()
    expect("Refresh 0 of the IPv4-only allocation",
           f.ask(authd(REFRESH, tid, attr(A_LIFETIME, u32(0)), v4only,
                       n_f)), REFRESH, 0, key=v4only.key,
           attrs=[A_SOFTWARE, A_LIFETIME, A_MESSAGE_INTEGRITY])
    f.close()

    # ==================================================================
    # Part B: every forbidden peer form in an authenticated ChannelBind on
    # a dual-stack allocation -> 403 signed, nothing created
    d = Wire(srv4)
    n_d = d.get_nonce()
    dual = Cred(secret, now + 3600, b"dualpeer")
    tid = new_tid()
    m = expect("dual-stack Allocate (AAF IPv6)",
               d.ask(authd(ALLOCATE, tid, RT_UDP + AAF6, dual, n_d)),
               ALLOCATE, 0, key=dual.key)
    ras = m.xaddrs(A_XOR_RELAYED_ADDRESS)
    check(len(ras) == 2 and ras[0][0] == "127.0.0.1" and ras[1][0] == "::1"
          and ras[0][1] == ras[1][1] and relay.in_range(ras[0][1]),
          "dual relayed addresses %r" % (ras,))
    rport = ras[0][1]
    lp = relay.port
    denied = [
        ("127.0.0.1", 5000), ("127.255.255.254", 5000),
        ("::ffff:127.0.0.1", 5000),
        ("0:0:0:0:0:ffff:7f00:1", 5001),      # the same 16 bytes, spelled
        ("64:ff9b::7f00:1", 5000), ("::127.0.0.1", 5000),
        ("::1", 5000), ("::", 5000), ("fe80::1", 5000),
        ("febf:ffff::1", 5000), ("ff02::1", 5000), ("ff0e::1", 5000),
        ("169.254.1.1", 5000), ("::ffff:169.254.1.1", 5000),
        ("64:ff9b::a9fe:101", 5000), ("224.0.0.1", 5000),
        ("239.255.255.250", 1900), ("::ffff:224.0.0.1", 5000),
        ("240.0.0.1", 5000), ("255.255.255.255", 5000),
        ("0.0.0.0", 5000), ("0.1.2.3", 5000), ("::ffff:0.0.0.0", 5000),
        ("127.0.0.2", 0), ("::ffff:127.0.0.2", 0),     # port 0 beats allow
        ("127.0.0.1", lp), ("::1", lp), ("::ffff:127.0.0.1", lp),
        ("127.0.0.1", rport), ("::1", rport),   # own relay port: loopback
    ]
    chans = []
    for i, peer in enumerate(denied):
        ch = 0x4100 + i
        chans.append(ch)
        tid = new_tid()
        expect("ChannelBind to denied peer [%s]:%d" % peer,
               d.ask(authd(CHANNEL_BIND, tid, chnum(ch) + xpeer(peer, tid),
                           dual, n_d)), CHANNEL_BIND, 403, key=dual.key,
               attrs=SERR)
    # the allowed controls: 127.0.0.2 (peers.allow) and its mapped form
    tid = new_tid()
    expect("ChannelBind to the allowed echo peer 127.0.0.2",
           d.ask(authd(CHANNEL_BIND, tid, chnum(0x4000) +
                       xpeer(echo.addr, tid), dual, n_d)), CHANNEL_BIND, 0,
           key=dual.key, attrs=SOK)
    tid = new_tid()
    expect("ChannelBind to ::ffff:127.0.0.2 (embedded form allowed, §5.4)",
           d.ask(authd(CHANNEL_BIND, tid, chnum(0x4001) + xpeer(
               ("::ffff:127.0.0.2", echo.addr[1]), tid), dual, n_d)),
           CHANNEL_BIND, 0, key=dual.key, attrs=SOK)
    for ch, peer in ((0x5000, ("127.0.0.2", 1)), (0x7FFF, echo2.addr)):
        tid = new_tid()
        expect("ChannelBind with CHANNEL-NUMBER 0x%04X (RFC 5766 range, "
               "§2.2)" % ch,
               d.ask(authd(CHANNEL_BIND, tid, chnum(ch) + xpeer(peer, tid),
                           dual, n_d)), CHANNEL_BIND, 0, key=dual.key,
               attrs=SOK)
    # repeated attributes: the FIRST occurrence is used (§2.4), so a denied
    # peer cannot hide behind an allowed one, nor the other way round
    tid = new_tid()
    expect("ChannelBind, XOR-PEER-ADDRESS denied 127.0.0.1 then allowed "
           "127.0.0.2",
           d.ask(authd(CHANNEL_BIND, tid, chnum(0x5001) +
                       xpeer(("127.0.0.1", 4), tid) +
                       xpeer(("127.0.0.2", 4), tid), dual, n_d)),
           CHANNEL_BIND, 403, key=dual.key, attrs=SERR)
    tid = new_tid()
    expect("ChannelBind, XOR-PEER-ADDRESS allowed 127.0.0.2 then denied "
           "127.0.0.1",
           d.ask(authd(CHANNEL_BIND, tid, chnum(0x5001) +
                       xpeer(("127.0.0.2", 4), tid) +
                       xpeer(("127.0.0.1", 4), tid), dual, n_d)),
           CHANNEL_BIND, 0, key=dual.key, attrs=SOK)
    tid = new_tid()
    expect("ChannelBind 0x5001 to 127.0.0.2:4 alone: a refresh, so the "
           "first peer was bound",
           d.ask(authd(CHANNEL_BIND, tid, chnum(0x5001) +
                       xpeer(("127.0.0.2", 4), tid), dual, n_d)),
           CHANNEL_BIND, 0, key=dual.key, attrs=SOK)
    tid = new_tid()
    expect("ChannelBind, CHANNEL-NUMBER 0x5002 then 0x5003",
           d.ask(authd(CHANNEL_BIND, tid, chnum(0x5002) + chnum(0x5003) +
                       xpeer(("127.0.0.2", 5), tid), dual, n_d)),
           CHANNEL_BIND, 0, key=dual.key, attrs=SOK)
    tid = new_tid()
    expect("ChannelBind 0x5003 to that peer: 400, the peer is bound under "
           "the first number",
           d.ask(authd(CHANNEL_BIND, tid, chnum(0x5003) +
                       xpeer(("127.0.0.2", 5), tid), dual, n_d)),
           CHANNEL_BIND, 400, key=dual.key, attrs=SERR)
    tid = new_tid()
    xp = bytearray(encode_xor_address(("127.0.0.2", 6), tid))
    xp[0] = 0xFF
    expect("ChannelBind, XOR-PEER-ADDRESS with byte 0 = 0xFF (ignored)",
           d.ask(authd(CHANNEL_BIND, tid, chnum(0x5004) + attr(
               A_XOR_PEER_ADDRESS, bytes(xp)), dual, n_d)),
           CHANNEL_BIND, 0, key=dual.key, attrs=SOK)
    tid = new_tid()
    expect("ChannelBind of the bound peer under another number (C42)",
           d.ask(authd(CHANNEL_BIND, tid, chnum(0x4002) +
                       xpeer(echo.addr, tid), dual, n_d)), CHANNEL_BIND,
           400, key=dual.key, attrs=SERR)
    mm = scrape(relay)
    if mm is not None:
        check(mm.get("relay_active_channels") == 7, "after %d 403s and 7 "
              "binds, relay_active_channels = %r" % (len(denied),
                                                     mm.get(
                                                         "relay_active_"
                                                         "channels")))
    # an IPv6 client: the listen sockets as peers from the other family
    e = Wire(srv6)
    n_e = e.get_nonce()
    dual6 = Cred(secret, now + 3600, b"dual6")
    tid = new_tid()
    expect("dual-stack Allocate from an IPv6 client",
           e.ask(authd(ALLOCATE, tid, RT_UDP + AAF6, dual6, n_e)),
           ALLOCATE, 0, key=dual6.key)
    for i, peer in enumerate([("127.0.0.1", lp), ("::1", lp),
                              ("::ffff:127.0.0.1", lp), ("fe80::1", 5000)]):
        tid = new_tid()
        expect("IPv6 client: ChannelBind to denied peer [%s]:%d" % peer,
               e.ask(authd(CHANNEL_BIND, tid, chnum(0x5000 + i) +
                           xpeer(peer, tid), dual6, n_e)), CHANNEL_BIND,
               403, key=dual6.key, attrs=SERR)
    log("part A+B: %d answered cases checked" % len(RESULTS))

    # ==================================================================
    # Part C: the no-answer batch, one socket per case, one wait
    n_bu = Wire(srv4)
    n_bu_nonce = n_bu.get_nonce()           # for the nonce-passing case
    before_m = scrape(relay)
    before = drops(before_m) if before_m is not None else None
    echo_before = echo.count
    T = new_tid
    bind_req = lambda tid: raw(req(BINDING), tid, b"")  # noqa: E731
    bad_user = lambda user, nonce_=None, meth=ALLOCATE: (  # noqa: E731
        lambda tid: with_mi(req(meth), tid, (RT_UDP if meth == ALLOCATE
                                             else b"") +
                            attr(A_USERNAME, user) +
                            attr(A_REALM, b"firezone") +
                            (attr(A_NONCE, nonce_) if nonce_ else b""),
                            good.key))
    batch = [
        # (name, server, datagram or fn(tid), drop reason[, socket])
        ("empty datagram (C3)", srv4, b"", "malformed"),
        ("empty datagram over IPv6", srv6, b"", "malformed"),
        ("1 byte 0x00", srv4, b"\0", "malformed"),
        ("19-byte STUN header", srv4, lambda t: bind_req(t)[:19],
         "malformed"),
        ("STUN with cookie 0x2112A443", srv4,
         lambda t: raw(req(BINDING), t, b"", cookie=MAGIC + 1), "malformed"),
        ("RFC 3489 Binding (cookie 0)", srv4,
         lambda t: raw(req(BINDING), t, b"", cookie=0), "malformed"),
        ("length 4 too large (C3)", srv4,
         lambda t: raw(req(BINDING), t, b"", length=4), "malformed"),
        ("length 2 (not a multiple of 4)", srv4,
         lambda t: raw(req(BINDING), t, b"ab", length=2), "malformed"),
        ("4 trailing bytes (C3)", srv4,
         lambda t: raw(req(BINDING), t, b"", length=0) + b"\0\0\0\0",
         "malformed"),
        ("length 0xFFFC on a 24-byte datagram", srv4,
         lambda t: raw(req(ALLOCATE), t, RT_UDP, length=0xFFFC),
         "malformed"),
        ("attribute length 100 with 4 bytes left", srv4,
         lambda t: raw(req(ALLOCATE), t, attr(A_USERNAME, b"abcd",
                                              length=100)), "malformed"),
        ("attribute length 0xFFFF", srv4,
         lambda t: raw(req(BINDING), t, attr(A_SOFTWARE, b"abcd",
                                             length=0xFFFF)), "malformed"),
        ("attribute header with its value missing", srv4,
         lambda t: raw(req(BINDING), t, attr(A_SOFTWARE, b"abcd") +
                       struct.pack("!HH", A_SOFTWARE, 1)), "malformed"),
        ("65,507-byte STUN with an unaligned length", srv4,
         lambda t: raw(req(BINDING), t, b"\0" * (65507 - 20)), "malformed"),
        ("first byte 0x04", srv4,
         lambda t: b"\x04" + bind_req(t)[1:], "malformed"),
        ("first byte 0x3F", srv4, b"\x3f\x00\x00\x04ping", "malformed"),
        ("ChannelData 0x8000 (first byte 0x80)", srv4,
         chandata(0x8000, b"ping"), "malformed"),
        ("ChannelData 0xC000 (first byte 0xC0, C3)", srv4,
         chandata(0xC000, b"ping"), "malformed"),
        ("ChannelData 0xFFFF (first byte 0xFF)", srv4,
         chandata(0xFFFF, b"ping"), "malformed"),
        ("ChannelData 0x8000 over IPv6", srv6, chandata(0x8000, b"ping"),
         "malformed"),
        ("ChannelData of 3 bytes", srv4, b"\x40\x00\x00", "malformed"),
        ("ChannelData length 9 with 5 bytes (C38)", srv4,
         b"\x40\x00\x00\x09hello", "malformed"),
        ("ChannelData length 0xFFFF with 4 bytes", srv4,
         b"\x40\x00\xff\xffabcd", "malformed"),
        ("ChannelData 0x7FFF claiming 65,504 of 65,503 bytes", srv4,
         b"\x7f\xff\xff\xe0" + b"x" * 65503, "malformed"),
        ("ChannelData 0x4000 'ping', no allocation", srv4,
         chandata(0x4000, b"ping"), "no_channel"),
        ("ChannelData 0x7FFF of length 0, no allocation", srv4,
         chandata(0x7FFF, b""), "no_channel"),
        ("ChannelData 0x5000 with 4 padding bytes", srv4,
         chandata(0x5000, b"ab") + b"\0\0\0\0", "no_channel"),
        ("ChannelData 0x4000 of 65,503 bytes, no allocation", srv4,
         chandata(0x4000, b"z" * 65503), "no_channel"),
        ("Binding with a wrong FINGERPRINT (C8)", srv4,
         lambda t: add_fp(bind_req(t), value=b"\xde\xad\xbe\xef"),
         "fingerprint"),
        ("Binding with FINGERPRINT not last (C8)", srv4,
         lambda t: append_attr(add_fp(bind_req(t)), attr(A_SOFTWARE,
                                                         b"late")),
         "fingerprint"),
        ("method 0xFFF request (first byte 0x3E)", srv4,
         lambda t: raw(req(0xFFF), t, b""), "malformed"),
        ("Binding with two FINGERPRINTs", srv4,
         lambda t: add_fp(add_fp(bind_req(t))), "fingerprint"),
        ("Binding with an 8-byte FINGERPRINT", srv4,
         lambda t: raw(req(BINDING), t, attr(A_FINGERPRINT, b"\0" * 8)),
         "fingerprint"),
        ("Binding with FINGERPRINT without the XOR", srv4,
         lambda t: add_fp(bind_req(t), xor=0), "fingerprint"),
        ("auth'd Allocate with MI after FINGERPRINT", srv4,
         lambda t: _mi_after_fp(t, good, nonce), "fingerprint"),
        ("Send indication with a wrong FINGERPRINT", srv4,
         lambda t: add_fp(raw(msg_type(SEND, INDICATION), t, b""),
                          value=b"\0\0\0\0"), "fingerprint"),
        ("Send indication 0x0016 to the echo peer (C4)", srv4,
         lambda t: raw(msg_type(SEND, INDICATION), t, xpeer(echo.addr, t) +
                       attr(A_DATA_ATTR, b"leak?")), "not_request"),
        ("Data indication 0x0017", srv4,
         lambda t: raw(msg_type(DATA, INDICATION), t, xpeer(echo.addr, t) +
                       attr(A_DATA_ATTR, b"leak?")), "not_request"),
        ("Binding indication 0x0011", srv4,
         lambda t: raw(msg_type(BINDING, INDICATION), t, b""),
         "not_request"),
        ("CreatePermission indication", srv4,
         lambda t: raw(msg_type(CREATE_PERMISSION, INDICATION), t,
                       xpeer(echo.addr, t)), "not_request"),
        ("indication with bad attributes (no reflection, §2.3 b)", srv4,
         lambda t: raw(msg_type(SEND, INDICATION), t, attr(
             A_USERNAME, b"\xff") + chnum(0x3FFF)), "not_request"),
        ("Binding success 0x0101 (C4)", srv4,
         lambda t: raw(msg_type(BINDING, SUCCESS), t, attr(
             A_XOR_MAPPED_ADDRESS, encode_xor_address(echo.addr, t))),
         "not_request"),
        ("Allocate success 0x0103 naming the echo peer", srv4,
         lambda t: raw(msg_type(ALLOCATE, SUCCESS), t, attr(
             A_XOR_RELAYED, encode_xor_address(echo.addr, t))),
         "not_request"),
        ("ChannelBind success 0x0109", srv4,
         lambda t: raw(msg_type(CHANNEL_BIND, SUCCESS), t, b""),
         "not_request"),
        ("Allocate error 0x0113 (401)", srv4,
         lambda t: raw(msg_type(ALLOCATE, ERROR), t, attr(
             A_ERROR_CODE, b"\0\0\4\1Unauthorized")), "not_request"),
        ("Refresh error with a malformed ERROR-CODE", srv4,
         lambda t: raw(msg_type(REFRESH, ERROR), t, attr(
             A_ERROR_CODE, b"\0\0\7\x99")), "not_request"),
        ("error response signed with the user's key", srv4,
         lambda t: with_mi(msg_type(ALLOCATE, ERROR), t, attr(
             A_ERROR_CODE, b"\0\0\4\x26Stale Nonce") + attr(
             A_USERNAME, good.user), good.key), "not_request"),
        ("Allocate, USERNAME 'foobar' + MI, no NONCE (C13)", srv4,
         bad_user(b"foobar"), "bad_username"),
        ("Allocate, USERNAME '123:a:b' (3 parts)", srv4,
         bad_user(b"123:a:b"), "bad_username"),
        ("Allocate, USERNAME '-5:x' (signed expiry)", srv4,
         bad_user(b"-5:x"), "bad_username"),
        ("Allocate, USERNAME with a 21-digit expiry", srv4,
         bad_user(b"123456789012345678901:x"), "bad_username"),
        ("Allocate, USERNAME expiry 2^64 (overflow)", srv4,
         bad_user(b"18446744073709551616:x"), "bad_username"),
        ("Allocate, USERNAME ':salt' (empty expiry)", srv4,
         bad_user(b":salt"), "bad_username"),
        ("Allocate, USERNAME of 4 NUL bytes", srv4,
         bad_user(b"\0\0\0\0"), "bad_username"),
        ("Allocate, USERNAME ' 123:x' (leading space)", srv4,
         bad_user(b" 123:x"), "bad_username"),
        ("Allocate, USERNAME with full-width digits", srv4,
         bad_user("１２３:x".encode()), "bad_username"),
        ("Allocate, USERNAME '1234' (no colon)", srv4,
         bad_user(b"1234"), "bad_username"),
        ("Allocate, unparsable USERNAME + a stale NONCE (unsignable 438)",
         srv4, bad_user(b"foobar", stale), "bad_username"),
        ("Refresh, unparsable USERNAME + the socket's own NONCE", srv4,
         bad_user(b"nope", n_bu_nonce, REFRESH), "bad_username", n_bu),
        ("Refresh, unparsable USERNAME, no MI (unsignable 401)", srv4,
         lambda t: raw(req(REFRESH), t, attr(A_USERNAME, b"x")),
         "bad_username"),
        ("ChannelBind, unparsable USERNAME, no NONCE", srv4,
         lambda t: with_mi(req(CHANNEL_BIND), t, chnum(0x4000) +
                           xpeer(echo.addr, t) + attr(A_USERNAME, b"u"),
                           good.key), "bad_username"),
        ("Allocate from IPv6, USERNAME 'foobar' + MI", srv6,
         bad_user(b"foobar"), "bad_username"),
    ]
    expected = {}
    sent = []
    t_batch = time.monotonic()
    for entry in batch:
        name, server, data, reason = entry[:4]
        w = entry[4] if len(entry) > 4 else Wire(server)
        tid = T()
        dg = data(tid) if callable(data) else data
        w.send(dg)
        sent.append((name, w, reason))
        expected[reason] = expected.get(reason, 0) + 1
    t_sent = time.monotonic() - t_batch
    time.sleep(REPLY_WAIT)
    answered = []
    for name, w, reason in sent:
        got = w.c.recv_raw(0)
        if got is not None:
            try:
                what = StunMessage(got[0]).describe()
            except ValueError:
                what = repr(got[0][:40])
            answered.append("%s -> %s" % (name, what))
    check(not answered, "answers to datagrams that must be dropped:\n  "
          + "\n  ".join(answered))
    check(echo.count == echo_before, "the echo peer received %d datagrams "
          "from the no-answer batch" % (echo.count - echo_before))
    with_metrics = wait_drop_deltas(relay, before, expected,
                                    "no-answer batch")
    for name, w, reason in sent:
        note(name, "no answer" + (", drop %s" % reason if with_metrics
                                  else ""))
        if w is not n_bu:
            w.close()
    n_bu.close()
    log("part C: %d datagrams, no answer within %.0f ms of the batch (sent "
        "in %.0f ms); drops %s%s" % (len(sent), REPLY_WAIT * 1000,
                                     t_sent * 1000,
                                     expected,
                                     " confirmed by /metrics" if with_metrics
                                     else " (wire only)"))

    # ==================================================================
    # Part D: rate limit (§2.12): credential-less Allocates from 100
    # source ports of 127.0.0.3
    W = len(workers)
    burst, rate = 200, 100
    flood_socks = [udp_socket("127.0.0.3") for _ in range(100)]
    m_before = scrape(relay)
    per_sock = 10
    n_sent = 0
    answers = 0
    bad_answers = []
    t0 = time.monotonic()
    t_last = t0

    def drain_flood(wait):
        nonlocal answers, t_last
        while True:
            r, _, _ = select.select(flood_socks, [], [], wait)
            if not r:
                return
            for s in r:
                d_, _ = s.recvfrom(2048)
                t_last = time.monotonic()
                try:
                    mm_ = StunMessage(d_)
                    if mm_.error()[0] != 401 or mm_.types() != U401:
                        bad_answers.append(mm_.describe())
                except ValueError:
                    bad_answers.append(repr(d_[:20]))
                answers += 1

    for rnd in range(per_sock):
        for s in flood_socks:
            tid = new_tid()
            s.sendto(raw(req(ALLOCATE), tid, RT_UDP), srv4)
            n_sent += 1
        drain_flood(0)
        time.sleep(0.002)
    drain_flood(REPLY_WAIT)
    elapsed = t_last - t0
    bound = W * (burst + rate * elapsed) + W
    log("flood: %d credential-less Allocates from 100 ports of 127.0.0.3, "
        "%d answered within %.3f s (bound %d = %d workers x (%d + %d/s x "
        "%.3f s) + %d)" % (n_sent, answers, elapsed, bound, W, burst, rate,
                           elapsed, W))
    check(not bad_answers, "flood answers other than an unsigned 401: %r"
          % bad_answers[:5])
    check(answers <= bound, "rate limit: %d answers to one IP, more than "
          "%d workers x (%d + %d x %.3f s)" % (answers, W, burst, rate,
                                               elapsed))
    check(answers >= burst, "rate limit: only %d answers, fewer than one "
          "worker's burst (%d)" % (answers, burst))
    note("flood of %d credential-less Allocates from one IP" % n_sent,
         "%d x 401 (<= %d), rest dropped" % (answers, int(bound)))
    if m_before is not None:
        deadline = time.monotonic() + 3.0
        while True:
            mm = scrape(relay)
            rl = drops(mm)["rate_limited"] - drops(m_before)["rate_limited"]
            other = {r: drops(mm)[r] - drops(m_before)[r]
                     for r in DROP_REASONS if r != "rate_limited"}
            if rl == n_sent - answers or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        check(rl == n_sent - answers and not any(other.values()),
              "flood: rate_limited +%d (other drops %r), expected +%d "
              "(sent %d, answered %d)" % (rl, other, n_sent - answers,
                                         n_sent, answers))
        log("flood: /metrics rate_limited +%d = sent - answered" % rl)
    # Bindings from the same (exhausted) IP are never limited
    tids = set()
    for i in range(300):
        tid = new_tid()
        tids.add(tid)
        flood_socks[i % len(flood_socks)].sendto(raw(req(BINDING), tid, b""),
                                                 srv4)
        if i % 50 == 49:
            time.sleep(0.002)
    ok = 0
    deadline = time.monotonic() + 2.0
    while ok < 300 and time.monotonic() < deadline:
        r, _, _ = select.select(flood_socks, [], [], 0.2)
        for s in r:
            d_, _ = s.recvfrom(2048)
            if len(d_) >= 20 and d_[8:20] in tids and \
                    struct.unpack("!H", d_[:2])[0] == 0x0101:
                ok += 1
    check(ok == 300, "Bindings from the rate-limited IP: %d of 300 answered"
          % ok)
    note("300 Bindings from the rate-limited IP (C53)", "300 successes")
    for s in flood_socks:
        s.close()

    # ==================================================================
    # Part E: the relay survived, and still serves
    check(relay.proc.poll() is None, "the relay master exited")
    now_workers = relay.worker_pids()
    check(now_workers == workers, "workers changed: %r -> %r (a worker died"
          " and was restarted?)" % (workers, now_workers))
    check(all(pid_alive(p) for p in [master] + workers),
          "master or a worker is not alive")
    bad_lines = [l for l in relay.log_text().splitlines()
                 if " WARN " in l or " ERROR " in l]
    check(not bad_lines, "warnings or errors logged under hostile input:\n"
          + "\n".join(bad_lines[:20]))

    # the dual allocation of part B relays through its one good channel,
    # and lying ChannelData lengths on a bound channel do not leak
    d.send(chandata(0x4000, b"hello-after"))
    got = d.c.recv_data(2.0)
    check(got is not None and got[:2] == (0x4000, b"hello-after"),
          "dual client: echo through 0x4000 after the attack: %r" % (got,))
    d.send(chandata(0x7FFF, b"via-7fff"))
    got = d.c.recv_data(2.0)
    check(got is not None and got[:2] == (0x7FFF, b"via-7fff"),
          "dual client: echo through 0x7FFF: %r" % (got,))
    note("data through channel 0x7FFF", "relayed both ways")
    before_m = scrape(relay)
    before = drops(before_m) if before_m is not None else None
    ec = echo.count
    d.send(b"\x40\x00\x00\x09hello")                  # length lies: drop
    d.send(b"\x40\x00\xff\xff" + b"x" * 100)           # length lies: drop
    d.send(b"\x40\x00\x00")                            # 3 bytes: drop
    for ch in chans[:5]:                               # 403'd numbers
        d.send(chandata(ch, b"denied"))
    d.send(chandata(0x4002, b"never-bound"))
    unbound_peer = udp_socket("127.0.0.2")
    for dg in (b"", raw(req(ALLOCATE), new_tid(), RT_UDP),
               chandata(0x4000, b"spoof")):
        unbound_peer.sendto(dg, ("127.0.0.1", rport))
    unbound_peer.close()
    d.send(chandata(0x4000, b"len4") + b"\0\0\0\0")          # padded
    got = d.c.recv_data(2.0)
    check(got is not None and got[:2] == (0x4000, b"len4"),
          "ChannelData with padding after 'len4': echo %r, expected exactly "
          "the 4 bytes (C38)" % (got,))
    d.send(chandata(0x4000, b""))
    got = d.c.recv_data(2.0)
    check(got is not None and got[:2] == (0x4000, b""),
          "zero-length ChannelData: echo %r" % (got,))
    check(d.c.recv_raw(0.1) is None, "a lying or denied datagram leaked to "
          "the client")
    eventually(lambda: echo.count >= ec + 2)
    time.sleep(0.05)
    check(echo.count == ec + 2, "echo peer got %d datagrams, expected 2 "
          "(the padded and the empty one)" % (echo.count - ec))
    exp2 = {"malformed": 3, "no_channel": 6, "no_peer_binding": 3}
    wm = wait_drop_deltas(relay, before, exp2, "bound-channel lies")
    for name in ("ChannelData length 9 with 5 bytes on a bound channel",
                 "ChannelData length 0xFFFF on a bound channel",
                 "ChannelData of 3 bytes on a bound channel"):
        note(name, "no answer, nothing relayed" + (", drop malformed"
                                                   if wm else ""))
    note("ChannelData on 5 numbers whose ChannelBind got 403, and on an "
         "unbound one", "nothing relayed" + (", drop no_channel x6"
                                             if wm else ""))
    note("empty, STUN and ChannelData datagrams from an unbound peer to "
         "the relay port", "nothing relayed" + (", drop no_peer_binding x3"
                                                if wm else ""))
    note("ChannelData length 4 + 4 padding bytes (C38)",
         "exactly 4 bytes relayed")
    d.close()
    e.close()

    # fresh valid clients, from 127.0.0.1 and from the flooded 127.0.0.3
    time.sleep(0.05)     # > 1 token back in every bucket of 127.0.0.3
    for src in ("127.0.0.1", "127.0.0.3"):
        c = TurnClient(srv4, *relay.credentials(), bind=(src, 0))
        m, relayed = allocate_checked(relay, c, extra=[
            (A_ADDITIONAL_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))])
        c.bind_ok(0x4000, echo.addr)
        for payload in (b"after the storm", b"x" * 1200):
            c.send_channel(0x4000, payload)
            got = c.recv_data(2.0)
            check(got is not None and got[:2] == (0x4000, payload),
                  "valid client from %s: echo %r" % (src, got and got[:2]))
        # the echo thread counts a datagram just after echoing it
        eventually(lambda: echo.sources.get(relayed, 0) >= 2)
        check(echo.sources.get(relayed, 0) >= 2, "the echo peer saw no data "
              "from the relayed address %r" % (relayed,))
        m = c.refresh(0)
        check(m.cls == SUCCESS, "Refresh 0: %s" % m.describe())
        c.close()
        note("valid client from %s after everything" % src,
             "Allocate, ChannelBind, data both ways")
    check(relay.worker_pids() == workers and relay.proc.poll() is None,
          "relay processes changed at the end")
    a.close()

    elapsed_total = time.monotonic() - t_start
    log("%d cases in %.1f s:" % (len(RESULTS), elapsed_total))
    for i, (name, outcome) in enumerate(RESULTS, 1):
        print("  %3d. %s: %s" % (i, name, outcome))
    print("  skipped: requests from source port 0 (cannot be sent over the "
          "loopback socket API)")
    check(len(RESULTS) >= 60, "only %d cases" % len(RESULTS))
    relay.stop()
    echo.stop()
    echo2.stop()


def _mi_after_fp(tid, cred, nonce):
    """An auth'd Allocate whose FINGERPRINT comes before MESSAGE-INTEGRITY."""
    body = RT_UDP + attr(A_USERNAME, cred.user) + attr(A_REALM, b"firezone")\
        + attr(A_NONCE, nonce)
    m = add_fp(raw(req(ALLOCATE), tid, body))
    return with_mi(req(ALLOCATE), tid, m[20:], cred.key)


if __name__ == "__main__":
    main(test)
