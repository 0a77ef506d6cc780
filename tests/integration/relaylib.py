"""Harness for the firezone-relay integration tests.

Everything here talks to the real binary over loopback with real sockets:

* free port picking (UDP and TCP, checked by a bind WITHOUT SO_REUSEPORT,
  SPEC §2.1 "Trial bind"), preferring ports outside the kernel's ephemeral
  range;
* a Relay object: temp YAML config, start (``RELAY_BIN -c FILE``), wait
  until a STUN Binding on the listen port is answered, stderr captured to a
  file, credentials through ``RELAY_BIN credentials``, worker pids, the
  process owning a relay port, SIGHUP, stop with an exit-code check, and
  clean-up of leftovers at exit;
* a small TURN client of its own (STUN codec, long-term auth with the
  401/438 nonce dance, MESSAGE-INTEGRITY and FINGERPRINT, Allocate,
  Refresh, ChannelBind, ChannelData), written from the RFCs and SPEC.md and
  independent of the relay's C code;
* a UDP echo peer thread;
* ``main(test)`` which runs a test function and maps the outcome to the
  automake exit codes (0 pass, 1 fail, 77 skip, 99 hard error).

Only the Python standard library is used.
"""

import atexit
import base64
import binascii
import errno
import hashlib
import hmac
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# --------------------------------------------------------------------------
# Outcomes

EXIT_PASS, EXIT_FAIL, EXIT_SKIP, EXIT_HARD = 0, 1, 77, 99


class Skip(Exception):
    """A genuine skip (a tool is missing): exit 77."""


class HarnessError(Exception):
    """The harness could not set up (no free port, ...): exit 99."""


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    """Assert that does not vanish under python -O."""
    if not cond:
        raise TestFailure(msg)


def log(*args):
    print("[%7.3f]" % (time.monotonic() - _T0), *args, flush=True)


_T0 = time.monotonic()

# --------------------------------------------------------------------------
# Environment

RELAY_BIN = os.environ.get("RELAY_BIN")
if not RELAY_BIN:
    _top = os.environ.get("top_builddir") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    RELAY_BIN = os.path.join(os.path.abspath(_top), "src", "firezone-relay")


def relay_version():
    """PACKAGE_VERSION from config.h (what --version and SOFTWARE carry)."""
    for top in (os.environ.get("top_builddir"), os.environ.get("top_srcdir"),
                os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "..", "..")):
        if not top:
            continue
        p = os.path.join(top, "config.h")
        try:
            with open(p) as f:
                m = re.search(r'#define PACKAGE_VERSION "([^"]*)"', f.read())
            if m:
                return m.group(1)
        except OSError:
            pass
    raise HarnessError("cannot find PACKAGE_VERSION in config.h")


def sanitized_build():
    """True when the relay binary carries AddressSanitizer (valgrind
    cannot run it, and its quarantine keeps freed memory resident)."""
    try:
        with open(RELAY_BIN, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"libasan.so" in data


def slow_build():
    """True for sanitizer or valgrind builds, where SPEC allows 10 s
    instead of 2 s for a restarted worker to resume (case C70)."""
    if os.environ.get("RELAY_SLOW") or os.environ.get("VALGRIND"):
        return True
    if "valgrind" in os.environ.get("RELAY_WRAPPER", ""):
        return True
    try:
        with open(RELAY_BIN, "rb") as f:
            data = f.read()
    except OSError:
        return False
    if data.startswith(b"#!"):  # a wrapper script
        return True
    return (b"__asan_init" in data or b"libasan.so" in data
            or b"__ubsan_handle" in data or b"__tsan_init" in data)


def need_binary():
    if not os.access(RELAY_BIN, os.X_OK):
        raise HarnessError("relay binary %s not built" % RELAY_BIN)


def clean_env(extra=None):
    """The environment for the relay: none of the variables of SPEC §9.2
    leak in from the caller, so that tests see only their own."""
    env = dict(os.environ)
    for k in ("LISTEN_PORT", "BIND_IP4_ADDR", "BIND_IP6_ADDR",
              "PUBLIC_IP4_ADDR", "PUBLIC_IP6_ADDR", "LOWEST_PORT",
              "HIGHEST_PORT", "FIREZONE_API_URL", "FIREZONE_TOKEN",
              "FIREZONE_NAME", "HEALTH_CHECK_ADDR", "LOG_FORMAT", "RNG_SEED"):
        env.pop(k, None)
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------
# Ports

def ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _windows():
    """Port windows outside the ephemeral range, largest first."""
    lo, hi = ephemeral_range()
    wins = []
    if lo - 1 >= 10000:
        wins.append((10000, lo - 1))
    if hi + 1 <= 65535:
        wins.append((hi + 1, 65535))
    if not wins:
        wins.append((1024, 65535))
    wins.sort(key=lambda w: w[1] - w[0], reverse=True)
    return wins


_taken = set()          # ports this process already handed out
_taken_lock = threading.Lock()


def port_is_free(port, kind="udp", host4="0.0.0.0", check6=True):
    """Bind without SO_REUSEPORT (and without SO_REUSEADDR for UDP).  The
    IPv4 check is on the wildcard address, which conflicts with any IPv4
    bind on the port; the IPv6 one catches dual-stack [::] holders."""
    st = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    s = socket.socket(socket.AF_INET, st)
    try:
        s.bind((host4, port))
        if kind == "tcp":
            s.listen(1)
    except OSError:
        return False
    finally:
        s.close()
    if check6 and socket.has_ipv6:
        s = socket.socket(socket.AF_INET6, st)
        try:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(("::", port))
        except OSError as e:
            if e.errno != errno.EADDRNOTAVAIL and e.errno != errno.EAFNOSUPPORT:
                return False
        finally:
            s.close()
    return True


def pick_port(kind="udp", avoid=(), tries=200):
    for _ in range(tries):
        lo, hi = random.choice(_windows())
        p = random.randint(lo, hi)
        with _taken_lock:
            if p in _taken or p in avoid:
                continue
        if port_is_free(p, kind):
            with _taken_lock:
                _taken.add(p)
            return p
    raise HarnessError("no free %s port found" % kind)


def pick_udp_ports_consecutive(n, avoid=(), tries=200):
    """n consecutive free UDP ports (turnutils_peer uses PORT and PORT+1)."""
    for _ in range(tries):
        lo, hi = random.choice(_windows())
        if hi - lo + 1 < n:
            continue
        start = random.randint(lo, hi - n + 1)
        ports = range(start, start + n)
        with _taken_lock:
            if any(p in _taken or p in avoid for p in ports):
                continue
        if all(port_is_free(p) for p in ports):
            with _taken_lock:
                _taken.update(ports)
            return list(ports)
    raise HarnessError("no %d consecutive free UDP ports found" % n)


def pick_relay_range(n=200, avoid=(), tries=100):
    ports = pick_udp_ports_consecutive(n, avoid=avoid, tries=tries)
    return ports[0], ports[-1]


# --------------------------------------------------------------------------
# STUN codec (RFC 8489 / RFC 8656, SPEC §2.3-§2.10)

MAGIC = 0x2112A442
FP_XOR = 0x5354554E

BINDING, ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = (
    0x001, 0x003, 0x004, 0x006, 0x007, 0x008, 0x009)
REQUEST, INDICATION, SUCCESS, ERROR = 0, 1, 2, 3

A_MAPPED_ADDRESS = 0x0001
A_USERNAME = 0x0006
A_MESSAGE_INTEGRITY = 0x0008
A_ERROR_CODE = 0x0009
A_CHANNEL_NUMBER = 0x000C
A_LIFETIME = 0x000D
A_XOR_PEER_ADDRESS = 0x0012
A_DATA = 0x0013
A_REALM = 0x0014
A_NONCE = 0x0015
A_XOR_RELAYED_ADDRESS = 0x0016
A_REQUESTED_ADDRESS_FAMILY = 0x0017
A_EVEN_PORT = 0x0018
A_REQUESTED_TRANSPORT = 0x0019
A_XOR_MAPPED_ADDRESS = 0x0020
A_ADDITIONAL_ADDRESS_FAMILY = 0x8000
A_SOFTWARE = 0x8022
A_FINGERPRINT = 0x8028

ATTR_NAMES = {v: k[2:] for k, v in globals().items() if k.startswith("A_")}


def msg_type(method, cls):
    return ((method & 0x000F) | ((method & 0x0070) << 1)
            | ((method & 0x0F80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7))


def split_type(t):
    method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)
    cls = ((t >> 4) & 1) | ((t >> 7) & 2)
    return method, cls


def _pad(b):
    return b + b"\0" * (-len(b) % 4)


def _attr(t, v):
    return struct.pack("!HH", t, len(v)) + _pad(v)


def long_term_key(username, realm, password):
    return hashlib.md5(("%s:%s:%s" % (username, realm, password))
                       .encode()).digest()


def turn_rest_password(expiry, secret, salt):
    """SPEC §3.3: Base64-no-pad(SHA-256("<expiry>:<secret>:<salt>"))."""
    d = hashlib.sha256(("%d:%s:%s" % (int(expiry), secret, salt))
                       .encode()).digest()
    return base64.b64encode(d).decode().rstrip("=")


def new_tid():
    return os.urandom(12)


def encode(method, cls, tid, attrs, key=None, fingerprint=False):
    """attrs: list of (type, bytes).  MESSAGE-INTEGRITY (with key) and
    FINGERPRINT are appended as RFC 8489 §14.5/§14.7 describe."""
    body = b"".join(_attr(t, v) for t, v in attrs)
    t = msg_type(method, cls)
    if key is not None:
        hdr = struct.pack("!HHI", t, len(body) + 24, MAGIC) + tid
        mac = hmac.new(key, hdr + body, hashlib.sha1).digest()
        body += _attr(A_MESSAGE_INTEGRITY, mac)
    if fingerprint:
        hdr = struct.pack("!HHI", t, len(body) + 8, MAGIC) + tid
        crc = (binascii.crc32(hdr + body) & 0xFFFFFFFF) ^ FP_XOR
        body += _attr(A_FINGERPRINT, struct.pack("!I", crc))
    return struct.pack("!HHI", t, len(body), MAGIC) + tid + body


class StunMessage:
    def __init__(self, raw):
        self.raw = raw
        if len(raw) < 20:
            raise ValueError("short STUN message")
        t, ln, magic = struct.unpack("!HHI", raw[:8])
        if magic != MAGIC or t & 0xC000:
            raise ValueError("not STUN")
        if ln % 4 or 20 + ln != len(raw):
            raise ValueError("bad STUN length %d for %d bytes" % (ln, len(raw)))
        self.type = t
        self.method, self.cls = split_type(t)
        self.tid = raw[8:20]
        self.attrs = []          # (type, value, offset of the attribute)
        off = 20
        while off < len(raw):
            if off + 4 > len(raw):
                raise ValueError("truncated attribute header")
            at, al = struct.unpack("!HH", raw[off:off + 4])
            if off + 4 + al > len(raw):
                raise ValueError("attribute 0x%04x runs past the end" % at)
            self.attrs.append((at, raw[off + 4:off + 4 + al], off))
            off += 4 + al + (-al % 4)

    def types(self):
        return [a[0] for a in self.attrs]

    def get(self, t):
        for at, v, _ in self.attrs:
            if at == t:
                return v
        return None

    def has(self, t):
        return self.get(t) is not None

    def error(self):
        v = self.get(A_ERROR_CODE)
        if v is None:
            return None, None
        return (v[2] & 7) * 100 + v[3], v[4:].decode("utf-8", "replace")

    def lifetime(self):
        v = self.get(A_LIFETIME)
        return None if v is None else struct.unpack("!I", v)[0]

    def xaddr(self, t):
        v = self.get(t)
        return None if v is None else decode_xor_address(v, self.tid)

    def xaddrs(self, t):
        return [decode_xor_address(v, self.tid)
                for at, v, _ in self.attrs if at == t]

    def text(self, t):
        v = self.get(t)
        return None if v is None else v.decode("utf-8")

    def integrity_ok(self, key):
        """True iff a MESSAGE-INTEGRITY is present and verifies with key."""
        for at, v, off in self.attrs:
            if at == A_MESSAGE_INTEGRITY:
                hdr = struct.pack("!HH", self.type, off - 20 + 24) + \
                    self.raw[4:20]
                mac = hmac.new(key, hdr + self.raw[20:off],
                               hashlib.sha1).digest()
                return hmac.compare_digest(mac, v)
        return False

    def fingerprint_ok(self):
        at, v, off = self.attrs[-1] if self.attrs else (None, None, None)
        if at != A_FINGERPRINT or len(v) != 4:
            return False
        crc = (binascii.crc32(self.raw[:off]) & 0xFFFFFFFF) ^ FP_XOR
        return struct.unpack("!I", v)[0] == crc

    def describe(self):
        names = {1: "Binding", 3: "Allocate", 4: "Refresh", 8:
                 "CreatePermission", 9: "ChannelBind"}
        cl = ["request", "indication", "success", "error"][self.cls]
        s = "%s %s" % (names.get(self.method, hex(self.method)), cl)
        code, reason = self.error()
        if code:
            s += " %d %r" % (code, reason)
        s += " [" + ", ".join(ATTR_NAMES.get(t, "0x%04x" % t)
                              for t in self.types()) + "]"
        return s

    __repr__ = describe


def encode_xor_address(addr, tid):
    host, port = addr[0], addr[1]
    xport = port ^ (MAGIC >> 16)
    if ":" in host:
        raw = socket.inet_pton(socket.AF_INET6, host)
        mask = struct.pack("!I", MAGIC) + tid
        return struct.pack("!BBH", 0, 2, xport) + bytes(
            a ^ b for a, b in zip(raw, mask))
    raw = struct.unpack("!I", socket.inet_aton(host))[0]
    return struct.pack("!BBHI", 0, 1, xport, raw ^ MAGIC)


def decode_xor_address(v, tid):
    fam = v[1]
    port = struct.unpack("!H", v[2:4])[0] ^ (MAGIC >> 16)
    if fam == 1:
        check(len(v) == 8, "IPv4 XOR address of length %d" % len(v))
        ip = struct.unpack("!I", v[4:8])[0] ^ MAGIC
        return (socket.inet_ntoa(struct.pack("!I", ip)), port)
    if fam == 2:
        check(len(v) == 20, "IPv6 XOR address of length %d" % len(v))
        mask = struct.pack("!I", MAGIC) + tid
        raw = bytes(a ^ b for a, b in zip(v[4:20], mask))
        return (socket.inet_ntop(socket.AF_INET6, raw), port)
    raise TestFailure("XOR address with family %d" % fam)


def u32(n):
    return struct.pack("!I", n)


def transport_udp():
    return (A_REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))


def chandata(ch, payload):
    return struct.pack("!HH", ch, len(payload)) + payload


def parse_chandata(d):
    if len(d) < 4 or not 0x40 <= d[0] <= 0x7F:
        return None
    ch, ln = struct.unpack("!HH", d[:4])
    if ln > len(d) - 4:
        return None
    return ch, d[4:4 + ln]


UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                     r"[0-9a-f]{12}$")


# --------------------------------------------------------------------------
# TURN client

class TurnError(Exception):
    def __init__(self, resp):
        self.resp = resp
        self.code, self.reason = resp.error()
        Exception.__init__(self, "%s" % resp.describe())


class TurnClient:
    """A TURN-over-UDP client on its own socket (one client socket).

    Responses are matched by transaction id; ChannelData and anything else
    that arrives meanwhile is queued for recv_data()/recv_raw()."""

    def __init__(self, server, username=None, password=None,
                 bind=("127.0.0.1", 0), rto=0.25, fingerprint=False):
        self.server = server
        self.username = username
        self.password = password
        fam = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(bind)
        self.rto = rto
        self.fingerprint = fingerprint
        self.realm = None
        self.nonce = None
        self.key = None
        self.queue = []          # (data, addr) not yet consumed
        self.lock = threading.Lock()
        self.last_response = None
        self.stale_nonces = 0

    @property
    def local(self):
        return self.sock.getsockname()[:2]

    def close(self):
        self.sock.close()

    # -- raw I/O
    def send_raw(self, data):
        self.sock.sendto(data, self.server)

    def _recv(self, timeout):
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return None
        return self.sock.recvfrom(70000)

    def recv_raw(self, timeout=1.0):
        """Next datagram (data, addr), queued first."""
        with self.lock:
            if self.queue:
                return self.queue.pop(0)
        got = self._recv(timeout)
        return got

    def recv_data(self, timeout=1.0):
        """Next ChannelData as (channel, payload, addr); other datagrams
        are returned as (None, raw, addr)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.recv_raw(max(0.0, deadline - time.monotonic()))
            if got is None:
                return None
            d, a = got
            cd = parse_chandata(d)
            if cd is not None:
                return cd[0], cd[1], a
            return None, d, a

    def drain(self, timeout=0.05):
        out = []
        while True:
            got = self.recv_raw(timeout)
            if got is None:
                return out
            out.append(got)

    def send_channel(self, ch, payload):
        self.send_raw(chandata(ch, payload))

    # -- transactions
    def transact_raw(self, data, tid, timeout=3.0):
        """Send a request and wait for the response with its transaction id,
        retransmitting every rto (doubling, capped at 1 s)."""
        deadline = time.monotonic() + timeout
        rto = self.rto
        self.send_raw(data)
        next_tx = time.monotonic() + rto
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            got = self._recv(min(deadline, next_tx) - now)
            if got is None:
                if time.monotonic() >= next_tx and time.monotonic() < deadline:
                    self.send_raw(data)
                    rto = min(rto * 2, 1.0)
                    next_tx = time.monotonic() + rto
                continue
            d, a = got
            if len(d) >= 20 and d[0] < 4 and d[8:20] == tid:
                m = StunMessage(d)
                check(a[:2] == tuple(self.server[:2]),
                      "response from %s, not from the listen socket %s"
                      % (a, self.server))
                return m
            with self.lock:
                self.queue.append((d, a))

    def build(self, method, attrs, tid, auth=True, fingerprint=None):
        attrs = list(attrs(tid) if callable(attrs) else attrs)
        key = None
        if auth and self.nonce is not None:
            attrs += [(A_USERNAME, self.username.encode()),
                      (A_REALM, self.realm.encode()),
                      (A_NONCE, self.nonce.encode())]
            key = self.key
        fp = self.fingerprint if fingerprint is None else fingerprint
        return encode(method, REQUEST, tid, attrs, key=key, fingerprint=fp)

    def request(self, method, attrs=(), auth=True, tid=None, timeout=3.0,
                fingerprint=None):
        """Run one request with the long-term credential mechanism: a 401
        carrying NONCE to a request without NONCE, and a 438, are answered
        by a retry with the new nonce.  attrs is a list of (type, value) or
        a function of the transaction id returning one.  Returns the final
        response (success or error); a timeout fails the test."""
        tries = 0
        while True:
            tries += 1
            t = tid if tid is not None else new_tid()
            had_nonce = self.nonce is not None and auth
            data = self.build(method, attrs, t, auth, fingerprint)
            m = self.transact_raw(data, t, timeout)
            if m is None:
                raise TestFailure("no response to %s within %.1f s (server %s,"
                                  " client %s)" % (method_name(method),
                                                   timeout, self.server,
                                                   self.local))
            self.last_response = m
            code, _ = m.error()
            if auth and code == 401 and not had_nonce and tries < 4 and \
                    m.has(A_NONCE) and self.username is not None:
                self._take_nonce(m)
                continue
            if auth and code == 438 and tries < 4 and m.has(A_NONCE):
                self.stale_nonces += 1
                self._take_nonce(m)
                continue
            return m

    def _take_nonce(self, m):
        self.nonce = m.text(A_NONCE)
        self.realm = m.text(A_REALM) or self.realm or "firezone"
        self.key = long_term_key(self.username, self.realm, self.password)

    def ok(self, method, attrs=(), **kw):
        """request() that must succeed with a verifying MESSAGE-INTEGRITY."""
        m = self.request(method, attrs, **kw)
        if m.cls != SUCCESS:
            raise TurnError(m)
        check(m.integrity_ok(self.key),
              "%s success without a valid MESSAGE-INTEGRITY: %s"
              % (method_name(method), m.describe()))
        return m

    # -- TURN methods
    def binding(self, timeout=1.0):
        tid = new_tid()
        return self.transact_raw(encode(BINDING, REQUEST, tid, []), tid,
                                 timeout)

    def allocate(self, lifetime=None, extra=(), tid=None, **kw):
        attrs = [transport_udp()] + list(extra)
        if lifetime is not None:
            attrs.append((A_LIFETIME, u32(lifetime)))
        m = self.ok(ALLOCATE, attrs, tid=tid, **kw)
        self.alloc_tid = m.tid
        self.alloc_attrs = attrs
        self.relayed = m.xaddr(A_XOR_RELAYED_ADDRESS)
        return m

    def refresh(self, lifetime=None, **kw):
        attrs = [] if lifetime is None else [(A_LIFETIME, u32(lifetime))]
        return self.request(REFRESH, attrs, **kw)

    def channel_bind(self, ch, peer, **kw):
        """The ChannelBind response (success or error)."""
        return self.request(CHANNEL_BIND, lambda tid: [
            (A_CHANNEL_NUMBER, struct.pack("!HH", ch, 0)),
            (A_XOR_PEER_ADDRESS, encode_xor_address(peer, tid))], **kw)

    def bind_ok(self, ch, peer, **kw):
        m = self.channel_bind(ch, peer, **kw)
        if m.cls != SUCCESS:
            raise TurnError(m)
        check(m.integrity_ok(self.key), "ChannelBind success without a "
              "valid MESSAGE-INTEGRITY: %s" % m.describe())
        return m


def method_name(m):
    return {1: "Binding", 3: "Allocate", 4: "Refresh", 8: "CreatePermission",
            9: "ChannelBind"}.get(m, hex(m))


# --------------------------------------------------------------------------
# Peers

class EchoPeer(threading.Thread):
    """UDP echo server on loopback; records (source address, payload)."""

    def __init__(self, host="127.0.0.1", port=0):
        threading.Thread.__init__(self, daemon=True)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind((host, port))
        self.addr = self.sock.getsockname()[:2]
        self.sources = {}        # source address -> datagrams echoed
        self.count = 0
        self._halt = False
        self.start()

    def run(self):
        while not self._halt:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            try:
                d, a = self.sock.recvfrom(70000)
            except OSError:
                continue
            # Record before echoing: a test that got the echo back may look
            # at `sources` at once.
            src = a[:2]
            self.sources[src] = self.sources.get(src, 0) + 1
            self.count += 1
            try:
                self.sock.sendto(d, a)
            except OSError:
                pass

    def stop(self):
        self._halt = True
        self.join(2)
        self.sock.close()


def udp_socket(host="127.0.0.1", port=0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, port))
    return s


def recv_from(sock, timeout=1.0):
    r, _, _ = select.select([sock], [], [], timeout)
    if not r:
        return None
    d, a = sock.recvfrom(70000)
    return d, a[:2]


# --------------------------------------------------------------------------
# Processes

_procs = []      # Popen objects to kill at exit
_pids = set()    # extra pids (relay workers) to kill at exit


def _cleanup():
    for p in list(_procs):
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
    for pid in list(_pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for p in list(_procs):
        try:
            p.wait(2)
        except Exception:
            pass


atexit.register(_cleanup)


def _on_term(signum, frame):
    _cleanup()
    os._exit(EXIT_HARD)


signal.signal(signal.SIGTERM, _on_term)


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    _procs.append(p)
    return p


def children(pid):
    """Pids whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...
        rest = st[st.rfind(")") + 2:].split()
        if len(rest) > 1 and int(rest[1]) == pid and \
                rest[0] not in ("Z", "X"):
            out.append(int(d))
    return sorted(out)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(")") + 2:].split()[0] not in ("Z", "X")


def udp_inodes(port, ip="127.0.0.1"):
    """Inodes of UDP sockets bound to ip:port (IPv4 /proc/net/udp)."""
    want_ip = "%08X" % struct.unpack("<I", socket.inet_aton(ip))[0]
    want = "%s:%04X" % (want_ip, port)
    out = set()
    for path in ("/proc/net/udp",):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1] == want:
                        out.add(int(parts[9]))
        except OSError:
            pass
    return out


def udp6_inodes(port, ip="::1"):
    raw = socket.inet_pton(socket.AF_INET6, ip)
    want_ip = "".join("%08X" % struct.unpack("<I", raw[i:i + 4])[0]
                      for i in range(0, 16, 4))
    want = "%s:%04X" % (want_ip, port)
    out = set()
    try:
        with open("/proc/net/udp6") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want:
                    out.add(int(parts[9]))
    except OSError:
        pass
    return out


def socket_holders(inodes, pids):
    """Which of pids hold one of the socket inodes."""
    want = {"socket:[%d]" % i for i in inodes}
    out = set()
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in want:
                    out.add(pid)
                    break
            except OSError:
                continue
    return out


# --------------------------------------------------------------------------
# The relay

class Relay:
    """One firezone-relay process tree with its own temp directory."""

    def __init__(self, name="relay", workers=1, peers_allow=True,
                 extra=None, secret_file=True, relay_ports=200,
                 ipv6=False, keep_secret_dir_missing=False):
        need_binary()
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="fzr-it-%s-" % name)
        self.workers = workers
        self.peers_allow = peers_allow
        self.extra = extra or {}
        self.ipv6 = ipv6
        self.relay_ports = relay_ports
        self.cfg_path = os.path.join(self.dir, "relay.yaml")
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.out_path = os.path.join(self.dir, "stdout.log")
        self.secret_path = os.path.join(self.dir, "state", "secret") \
            if secret_file else None
        self.proc = None
        self.known_pids = set()
        self.pick_ports()

    def pick_ports(self):
        self.port_min, self.port_max = pick_relay_range(self.relay_ports)
        rng = range(self.port_min, self.port_max + 1)
        self.port = pick_port("udp", avoid=rng)
        self.health_port = pick_port("tcp", avoid=rng)

    # -- config
    def config_text(self, peers_allow=None, extra=None):
        allow = self.peers_allow if peers_allow is None else peers_allow
        extra = dict(self.extra if extra is None else extra)
        lines = ["# generated by tests/integration/relaylib.py",
                 "public_ip4: 127.0.0.1"]
        if self.ipv6:
            lines.append('public_ip6: "::1"')
        lines += ["listen:", "  bind_ip4: 127.0.0.1"]
        if self.ipv6:
            lines.append('  bind_ip6: "::1"')
        lines += ["  port: %d" % self.port,
                  "relay:",
                  "  port_min: %d" % self.port_min,
                  "  port_max: %d" % self.port_max,
                  "workers: %d" % self.workers,
                  "health:",
                  "  listen: 127.0.0.1:%d" % self.health_port]
        auth = extra.pop("auth", None)
        if auth is not None:
            lines += ["auth:"] + ["  %s" % l for l in auth]
        elif self.secret_path:
            lines += ["auth:", "  secret_file: %s" % self.secret_path]
        if allow is True:
            lines += ["peers:", '  allow: [127.0.0.0/8, "::1/128"]']
        elif allow:
            lines += ["peers:", "  allow: [%s]" % ", ".join(
                '"%s"' % a for a in allow)]
        limits = {"max_allocations": 1000}
        limits.update(extra.pop("limits", {}))
        lines.append("limits:")
        lines += ["  %s: %s" % (k, v) for k, v in limits.items()]
        lines += ["log:", "  level: %s" % extra.pop(
            "log_level", os.environ.get("RELAY_TEST_LOG_LEVEL", "info"))]
        for k, v in extra.items():
            lines.append("%s: %s" % (k, v))
        return "\n".join(lines) + "\n"

    def write_config(self, **kw):
        tmp = self.cfg_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.config_text(**kw))
        os.rename(tmp, self.cfg_path)

    # -- process
    def start(self, wait=True, attempts=3):
        """Start the relay and wait until it answers a Binding.  If it exits
        at start because a port was taken meanwhile (a race with another
        program), pick new ports and retry."""
        for attempt in range(attempts):
            self.write_config()
            self.logf = open(self.log_path, "ab")
            self.outf = open(self.out_path, "ab")
            self.start_time = time.monotonic()
            self.proc = spawn([RELAY_BIN, "-c", self.cfg_path],
                              stdout=self.outf, stderr=self.logf,
                              stdin=subprocess.DEVNULL, cwd=self.dir,
                              env=clean_env())
            self.pid = self.proc.pid
            log("%s: started pid %d (listen 127.0.0.1:%d, relay %d-%d, "
                "%d workers, dir %s)" % (self.name, self.pid, self.port,
                                         self.port_min, self.port_max,
                                         self.workers, self.dir))
            if not wait:
                return self
            ok = self.wait_ready()
            if ok:
                self.track_pids()
                return self
            rc = self.proc.poll()
            text = self.log_text()
            if rc == 1 and re.search(r"(?i)address already in use|in use",
                                     text) and attempt + 1 < attempts:
                log("%s: a port was taken meanwhile, retrying with others"
                    % self.name)
                self.pick_ports()
                continue
            raise TestFailure("%s did not answer a Binding on 127.0.0.1:%d "
                              "(exit status %r); stderr:\n%s"
                              % (self.name, self.port, rc, text[-4000:]))
        raise HarnessError("could not start the relay")

    def ready_timeout(self):
        return 30.0 if slow_build() else 10.0

    def wait_ready(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.ready_timeout())
        c = TurnClient(("127.0.0.1", self.port))
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                m = c.binding(timeout=0.2)
                if m is not None and m.cls == SUCCESS:
                    return True
            return False
        finally:
            c.close()

    def track_pids(self):
        if self.proc and self.proc.poll() is None:
            self.known_pids.add(self.pid)
            for p in children(self.pid):
                self.known_pids.add(p)
                _pids.add(p)

    def worker_pids(self):
        ws = children(self.pid)
        for p in ws:
            self.known_pids.add(p)
            _pids.add(p)
        return ws

    def wait_workers(self, n=None, timeout=5.0, exclude=()):
        """Wait until n workers run (none of them in exclude)."""
        n = self.workers if n is None else n
        deadline = time.monotonic() + timeout
        ws = []
        while time.monotonic() < deadline:
            ws = [p for p in self.worker_pids() if p not in exclude]
            if len(ws) >= n:
                return ws
            time.sleep(0.02)
        raise TestFailure("%s: %d workers expected, found %r within %.1f s"
                          % (self.name, n, ws, timeout))

    def port_owners(self, port, ip="127.0.0.1"):
        """Relay processes holding a UDP socket bound to ip:port."""
        inodes = udp_inodes(port, ip) if ":" not in ip else \
            udp6_inodes(port, ip)
        if not inodes:
            return set()
        return socket_holders(inodes, [self.pid] + children(self.pid))

    def signal(self, sig):
        os.kill(self.pid, sig)

    def reload(self, **kw):
        self.write_config(**kw)
        self.signal(signal.SIGHUP)

    def stop(self, timeout=5.0, expect_rc=0):
        """SIGTERM; the master must exit with expect_rc within timeout
        (SPEC §10.5), and no worker may stay behind."""
        if self.proc is None:
            return None
        ws = children(self.pid)
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(2)
            raise TestFailure("%s: no exit within %.1f s of SIGTERM; "
                              "stderr:\n%s" % (self.name, timeout,
                                               self.log_text()[-3000:]))
        took = time.monotonic() - t0
        log("%s: exit status %d %.2f s after SIGTERM" % (self.name, rc, took))
        check(rc == expect_rc, "%s: exit status %d after SIGTERM, expected %d;"
              " stderr:\n%s" % (self.name, rc, expect_rc,
                                self.log_text()[-3000:]))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(pid_alive(w) for w in ws):
            time.sleep(0.02)
        left = [w for w in ws if pid_alive(w)]
        check(not left, "%s: workers %r still alive after the master "
              "exited" % (self.name, left))
        self.proc = None
        return took

    def kill_all(self):
        for pid in [self.pid] + (children(self.pid) if self.proc else []):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.proc:
            try:
                self.proc.wait(2)
            except Exception:
                pass
        self.proc = None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def credentials(self, ttl=3600, extra_args=()):
        """username, password via `RELAY_BIN credentials -c FILE`."""
        r = subprocess.run([RELAY_BIN, "credentials", "-c", self.cfg_path,
                            "--ttl", str(ttl)] + list(extra_args),
                           capture_output=True, text=True, timeout=10,
                           env=clean_env(), cwd=self.dir)
        check(r.returncode == 0, "credentials exited %d: %s"
              % (r.returncode, r.stderr))
        kv = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
        check(set(kv) == {"username", "password", "realm"},
              "credentials printed %r" % r.stdout)
        check(kv["realm"] == "firezone", "realm %r" % kv["realm"])
        return kv["username"], kv["password"]

    def client(self, creds=None, **kw):
        """A TurnClient for this relay.  Without creds it gets credentials
        of its own (a fresh salt): clients sharing a USERNAME replace each
        other's allocation (SPEC §2.6.2 step 7)."""
        u, p = creds if creds else self.credentials()
        return TurnClient(("127.0.0.1", self.port), u, p, **kw)

    def in_range(self, port):
        return self.port_min <= port <= self.port_max

    def cleanup(self, keep=False):
        if self.proc is not None:
            self.kill_all()
        if not keep and not os.environ.get("KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)


def allocate_checked(relay, client, lifetime=None, extra=()):
    """Allocate and check the relayed address: public_ip4 and a port in the
    configured range, held by a UDP socket of the relay."""
    m = client.allocate(lifetime=lifetime, extra=extra)
    ra = m.xaddr(A_XOR_RELAYED_ADDRESS)
    check(ra is not None and ra[0] == "127.0.0.1",
          "XOR-RELAYED-ADDRESS %r, expected public_ip4 127.0.0.1" % (ra,))
    check(relay.in_range(ra[1]), "relayed port %d outside %d-%d"
          % (ra[1], relay.port_min, relay.port_max))
    return m, ra


# --------------------------------------------------------------------------
# Test runner

_relays = []


def track(relay):
    _relays.append(relay)
    return relay


class Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise Timeout("the test ran longer than its %s s watchdog"
                  % os.environ.get("TEST_TIMEOUT", "150"))


def main(test):
    """Run test() and exit with the automake code for its outcome.  A
    watchdog (TEST_TIMEOUT seconds, default 150) fails a hung test."""
    rc = EXIT_PASS
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(os.environ.get("TEST_TIMEOUT", "150")))
    try:
        test()
        log("PASS")
    except Skip as e:
        print("SKIP: %s" % e, flush=True)
        rc = EXIT_SKIP
    except HarnessError as e:
        print("HARNESS ERROR: %s" % e, flush=True)
        traceback.print_exc(file=sys.stdout)
        rc = EXIT_HARD
    except BaseException as e:
        traceback.print_exc(file=sys.stdout)
        print("FAIL: %s" % e, flush=True)
        rc = EXIT_FAIL
    signal.alarm(0)
    failed = rc != EXIT_PASS
    for r in _relays:
        if failed:
            print("---- %s stderr (%s) ----" % (r.name, r.log_path))
            print(r.log_text()[-6000:])
        try:
            r.cleanup(keep=failed)
        except Exception:
            pass
    sys.stdout.flush()
    _cleanup()
    os._exit(rc)
