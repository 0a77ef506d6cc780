#!/usr/bin/python3
"""The portal connection (SPEC §7) through the real binary, against a real
TLS WebSocket portal (portal_fixture.Portal, python3-websockets) with a
throw-away CA made by the openssl command.

SPEC cases: C55, C56, C58, C59, C60, C61, C62; also the "login failed",
"authentication failed: <detail>" and TLS-verification rows of §7.6, the
upgrade request of §7.3, Ping/Pong, fragments and the 1 MiB cap of §7.3,
the other §7.4 rows (unknown event, invalid JSON, binary, unmatched topic,
phx_close), the join timeout of §7.5 and the Close 1000 of §10.5.

The long cases (C59 about 41 s, C61 about 15 s) run in threads while the
short ones run one after the other, so the whole file takes about 50 s.
Every wait is bounded.
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403
import portal_fixture as pf  # noqa: E402

TOKEN = "tok-Zq9-SECRET-4711.abc"
TOKEN_ENV = "  tok-Zq9-\tSECRET-4711.abc\n"   # the relay strips whitespace
KNOWN_SECRET = hashlib.sha256(b"test_portal C58").hexdigest()

# --------------------------------------------------------------------------
# A relay in portal mode


class PortalRelay(Relay):
    """relaylib.Relay plus a portal: section and FIREZONE_TOKEN."""

    def __init__(self, name, url, ca, secret=None, token_env=TOKEN_ENV):
        extra = {"auth": ["secret: %s" % secret]} if secret else None
        Relay.__init__(self, name=name, workers=1, extra=extra)
        self.url = url
        self.ca = ca
        self.token_env = token_env

    def config_text(self, **kw):
        return Relay.config_text(self, **kw) + (
            "portal:\n  url: %s\n  ca_file: %s\n  name: edge 1\n"
            % (self.url, self.ca))

    def start_portal(self):
        """Starts without waiting for a Binding (the gate is closed until
        init); waits for /healthz instead."""
        self.write_config()
        self.logf = open(self.log_path, "ab")
        self.outf = open(self.out_path, "ab")
        self.start_time = time.monotonic()
        self.proc = spawn([RELAY_BIN, "-c", self.cfg_path], stdout=self.outf,
                          stderr=self.logf, stdin=subprocess.DEVNULL,
                          cwd=self.dir,
                          env=clean_env({"FIREZONE_TOKEN": self.token_env}))
        self.pid = self.proc.pid
        log("%s: started pid %d (listen %d, health %d, portal %s)"
            % (self.name, self.pid, self.port, self.health_port, self.url))
        deadline = time.monotonic() + self.ready_timeout()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self         # an early exit is for the test to judge
            try:
                http_req(self.health_port, "/healthz", timeout=0.5)
                self.track_pids()
                return self
            except OSError:
                time.sleep(0.02)
        raise TestFailure("%s: /healthz not answering" % self.name)

    def wait_exit(self, timeout):
        """(exit status, monotonic time of the exit), polled every 10 ms."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                return rc, time.monotonic()
            time.sleep(0.01)
        raise TestFailure("%s: still running after %.1f s; stderr:\n%s"
                          % (self.name, timeout, self.log_text()[-3000:]))

    def all_output(self):
        try:
            with open(self.out_path, "rb") as f:
                out = f.read().decode("utf-8", "replace")
        except OSError:
            out = ""
        return self.log_text() + out


def http_req(port, path, method="GET", timeout=2.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def metrics(port):
    st, _, body = http_req(port, "/metrics")
    check(st == 200, "/metrics status %d" % st)
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def wait_metric(port, key, pred, timeout, what):
    deadline = time.monotonic() + timeout
    v = None
    while time.monotonic() < deadline:
        v = metrics(port).get(key)
        if v is not None and pred(v):
            return v
        time.sleep(0.05)
    raise TestFailure("%s: %s = %r after %.1f s" % (what, key, v, timeout))


def binding(relay, timeout=1.0):
    c = TurnClient(("127.0.0.1", relay.port))
    try:
        return c.binding(timeout=timeout)
    finally:
        c.close()


def wait_binding(relay, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = binding(relay, 0.3)
        if m is not None:
            check(m.cls == SUCCESS, "%s: Binding answered %s"
                  % (what, m.describe()))
            return m
    raise TestFailure("%s: no Binding answer within %.1f s" % (what, timeout))


def no_token(relay, what):
    out = relay.all_output()
    for t in (TOKEN, "tok-Zq9", "SECRET-4711"):
        check(t not in out, "%s: the token (%r) appears in the relay's "
              "output:\n%s" % (what, t, out[-3000:]))


def join_secret(conn):
    d = json.loads(conn.messages[0][1])
    return d["payload"]["stamp_secret"]


def join_text(secret):
    return ('{"topic":"relay","event":"phx_join","payload":'
            '{"stamp_secret":"%s"},"ref":0}' % secret)


class Case(threading.Thread):
    """Runs a long case in the background; join() re-raises its failure."""

    def __init__(self, name, fn, *args):
        threading.Thread.__init__(self, daemon=True, name=name)
        self.fn, self.args, self.exc = fn, args, None
        self.start()

    def run(self):
        try:
            self.fn(*self.args)
        except BaseException as e:      # noqa: B902 - reported by finish()
            self.exc = e

    def finish(self, timeout):
        self.join(timeout)
        check(not self.is_alive(), "%s did not finish within %.0f s"
              % (self.name, timeout))
        if self.exc is not None:
            raise self.exc


TIMINGS = {}

# --------------------------------------------------------------------------
# C58: the upgrade request and the join


def case_c58(certs):
    p = pf.Portal(certs, script=[pf.Behaviour(init=True)])
    try:
        r = track(PortalRelay("c58", p.url(), certs.ca, KNOWN_SECRET))
        r.start_portal()
        c = p.wait_joined(0, 10)
        check(c.messages[0][1] == join_text(KNOWN_SECRET),
              "C58: first message %r, expected %r"
              % (c.messages[0][1], join_text(KNOWN_SECRET)))
        # SPEC §7.2, §7.3: path, query, headers.
        want_path = "/relay/websocket?name=edge+1&ipv4=127.0.0.1&port=%d" \
            % r.port
        check(c.path == want_path, "upgrade target %r, expected %r"
              % (c.path, want_path))
        h = c.headers
        check(h.get("x-authorization") == "Bearer " + TOKEN,
              "X-Authorization %r" % h.get("x-authorization"))
        check(h.get("host") == "localhost:%d" % p.port, "Host %r"
              % h.get("host"))
        check(h.get("upgrade", "").lower() == "websocket" and
              "upgrade" in h.get("connection", "").lower() and
              h.get("sec-websocket-version") == "13",
              "upgrade headers %r" % h)
        check(len(h.get("sec-websocket-key", "")) == 24, "key %r"
              % h.get("sec-websocket-key"))
        check(p.sni == ["localhost"], "SNI %r, expected ['localhost']"
              % p.sni)
        ua = h.get("user-agent", "")
        check(re.match(r"^Linux/\S+ relay/%s \(\S+; \S+\)$"
                       % re.escape(relay_version()), ua),
              "User-Agent %r" % ua)
        # SIGTERM: Close 1000 to the portal, exit 0 (SPEC §10.5).
        r.stop()
        c = p.wait_closed(0, 3)
        check(c.close_code == 1000, "Close code %r on SIGTERM, expected 1000"
              % c.close_code)
        no_token(r, "C58")
        log("C58: join text, upgrade request and Close 1000 OK")
    finally:
        p.stop()


# --------------------------------------------------------------------------
# C55, C56: the relaying gate


def case_c55_c56(certs):
    p = pf.Portal(certs, script=[pf.Behaviour(init=False)],
                  default=pf.Behaviour(reject=pf.reject_503()))
    try:
        r = track(PortalRelay("c55", p.url(), certs.ca))
        r.start_portal()
        c = p.wait_joined(0, 10)
        wait_metric(r.health_port, "relay_portal_connected", lambda v: v == 1,
                    3, "C55 joined")
        check(binding(r, 1.0) is None, "C55: Binding answered before init")
        st, hd, body = http_req(r.health_port, "/readyz")
        check(st == 503 and body == (relay_version() + "\n").encode(),
              "C55: /readyz %d %r before init" % (st, body))
        wait_metric(r.health_port,
                    'relay_dropped_packets_total{reason="not_ready"}',
                    lambda v: v >= 1, 3, "C55 not_ready drop")
        log("C55: joined without init: Binding dropped (not_ready), "
            "/readyz 503")

        p.act(c, "init")
        wait_binding(r, 3, "C56 after init")
        st, _, _ = http_req(r.health_port, "/readyz")
        check(st == 200, "C56: /readyz %d after init" % st)
        p.act(c, "close")
        wait_metric(r.health_port, "relay_portal_connected", lambda v: v == 0,
                    3, "C56 after the close")
        p.wait_conns(2, 5)              # a reconnect attempt, refused
        wait_binding(r, 2, "C56 after the close")
        st, _, _ = http_req(r.health_port, "/readyz")
        check(st == 200, "C56: /readyz %d after the portal closed" % st)
        check(r.proc.poll() is None, "C56: relay exited")
        r.stop()
        log("C56: init opens the gate; still served after the close, "
            "relay_portal_connected 0")
    finally:
        p.stop()


# --------------------------------------------------------------------------
# C60 and the other fatal rows of §7.6


def fatal_case(certs, name, behaviour, expect_log, expect_attempts=1):
    p = pf.Portal(certs, script=[behaviour], default=pf.Behaviour())
    try:
        r = track(PortalRelay(name, p.url("127.0.0.1"), certs.ca))
        r.start_portal()
        c = p.wait_conns(1, 10)
        rc, t_exit = r.wait_exit(10)
        check(rc == 1, "%s: exit status %d, expected 1" % (name, rc))
        text = r.log_text()
        check(expect_log in text, "%s: %r not logged:\n%s"
              % (name, expect_log, text[-2000:]))
        check(len(p.conns) == expect_attempts, "%s: %d attempts, expected "
              "%d" % (name, len(p.conns), expect_attempts))
        check(p.sni == [None] * expect_attempts, "%s: SNI %r sent to an IP "
              "literal" % (name, p.sni))
        no_token(r, name)
        r.proc = None
        return c, t_exit
    finally:
        p.stop()


def case_c60(certs):
    c, t_exit = fatal_case(certs, "c60-401", pf.Behaviour(
        reject=pf.reject_401_invalid_token()), "invalid token")
    lat = t_exit - c.t_request
    TIMINGS["C60 exit after 401"] = lat
    check(lat < 1.0, "C60: exit %.3f s after the 401, expected < 1 s" % lat)
    log("C60: 401 invalid_token -> exit 1 after %.3f s" % lat)

    c, t_exit = fatal_case(certs, "c60-expired", pf.Behaviour(
        init=True, actions=[(0.3, "token_expired")]), "invalid token")
    lat = t_exit - (c.t_joined + 0.3)
    TIMINGS["C60 exit after token_expired"] = lat
    check(lat < 1.0, "C60: exit %.3f s after token_expired" % lat)
    log("C60: disconnect token_expired -> exit 1 after %.3f s" % lat)

    fatal_case(certs, "c60-other401", pf.Behaviour(
        reject=pf.reject_401_other("relay group deleted")),
        "authentication failed: relay group deleted")
    log("§7.6: other 401 -> 'authentication failed: <detail>', exit 1")

    fatal_case(certs, "login-failed", pf.Behaviour(join="error"),
               "login failed")
    log("§7.4: join error reply -> 'login failed', exit 1")


# --------------------------------------------------------------------------
# C62: Retry-After


def case_c62(certs):
    p = pf.Portal(certs, script=[
        pf.Behaviour(init=True, actions=[(0.3, "close")]),
        pf.Behaviour(reject=pf.reject_503(7))],
        default=pf.Behaviour(init=True))
    try:
        r = track(PortalRelay("c62", p.url(), certs.ca))
        r.start_portal()
        p.wait_joined(0, 10)
        p.wait_conns(2, 5)
        c3 = p.wait_conns(3, 12)
        delay = c3.t_request - p.conns[1].t_request
        TIMINGS["C62 retry after Retry-After: 7"] = delay
        check(6.0 <= delay <= 9.0, "C62: next attempt %.2f s after the 503 "
              "with Retry-After: 7, expected 6-9 s" % delay)
        p.wait_joined(2, 5)
        check(r.proc.poll() is None, "C62: relay exited")
        r.stop()
        log("C62: 503 Retry-After: 7 -> next attempt %.2f s later" % delay)
    finally:
        p.stop()


# --------------------------------------------------------------------------
# C61: portal unreachable at start


def case_c61(certs):
    d = pf.DropServer()
    try:
        r = track(PortalRelay("c61", "wss://127.0.0.1:%d" % d.port, certs.ca))
        r.start_portal()
        rc, t_exit = r.wait_exit(30)
        total = t_exit - r.start_time
        TIMINGS["C61 give-up (TCP accepted, then dropped)"] = total
        check(rc == 1, "C61: exit status %d, expected 1" % rc)
        check("max retries reached" in r.log_text(),
              "C61: 'max retries reached' not logged")
        check(12.0 <= total <= 21.0, "C61: exit %.2f s after start, expected"
              " 12-21 s" % total)
        gaps = [b - a for a, b in zip(d.times, d.times[1:])]
        check(len(d.times) >= 10, "C61: only %d attempts" % len(d.times))
        check(all(0.8 <= g <= 1.6 for g in gaps), "C61: attempts not 1 s "
              "apart: %s" % ", ".join("%.2f" % g for g in gaps))
        no_token(r, "C61")
        r.proc = None
        log("C61: %d attempts %.2f-%.2f s apart, exit 1 after %.2f s"
            % (len(d.times), min(gaps), max(gaps), total))
    finally:
        d.stop()


def case_c61_refused(certs):
    port = pick_port("tcp")             # nothing listens there
    r = track(PortalRelay("c61-refused", "wss://127.0.0.1:%d" % port,
                          certs.ca))
    r.start_portal()
    rc, t_exit = r.wait_exit(30)
    total = t_exit - r.start_time
    TIMINGS["C61 give-up (connection refused)"] = total
    check(rc == 1, "C61: exit status %d, expected 1" % rc)
    check(12.0 <= total <= 21.0, "C61 refused: exit after %.2f s" % total)
    n = r.log_text().count("Connection refused")
    check(n >= 10, "C61 refused: %d failed attempts logged" % n)
    r.proc = None
    log("C61 (refused): %d attempts, exit 1 after %.2f s" % (n, total))


# --------------------------------------------------------------------------
# TLS verification


def tls_refused(certs, name, leaf, host, ca, expect):
    p = pf.Portal(certs, leaf=leaf)
    try:
        r = track(PortalRelay(name, p.url(host), ca))
        r.start_portal()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and expect not in r.log_text():
            time.sleep(0.05)
        check(expect in r.log_text(), "%s: %r not logged:\n%s"
              % (name, expect, r.log_text()[-2000:]))
        check(not p.conns, "%s: the upgrade reached a portal whose "
              "certificate does not verify" % name)
        check(r.proc.poll() is None, "%s: a verification failure is "
              "retried, not fatal" % name)
        r.stop()
        no_token(r, name)
    finally:
        p.stop()


def case_tls_verify(certs):
    bad = "certificate verification failed"
    tls_refused(certs, "tls-ca", "server", "localhost", certs.other_ca,
                bad + ": unable to get local issuer certificate")
    tls_refused(certs, "tls-name", "wrong", "localhost", certs.ca,
                bad + ": hostname mismatch")
    tls_refused(certs, "tls-ip", "wrong", "127.0.0.1", certs.ca,
                bad + ": IP address mismatch")
    log("TLS: another CA, a wrong name, a wrong IP: refused and retried")


# --------------------------------------------------------------------------
# §7.3-§7.5 framing and message rows: Ping, fragments, unknown events,
# binary frames, "unmatched topic", phx_close, the 1 MiB cap, join timeout


def case_protocol(certs):
    unmatched = pf.msg("relay", "phx_reply", {
        "status": "error", "response": {"reason": "unmatched topic"}}, None)
    p = pf.Portal(certs, script=[
        pf.Behaviour(init=True, actions=[
            (0.1, "ping"),
            (0.2, ("fragments", ['{"topic":"relay",', '"event":"fz_odd_'
                                 'event",', '"payload":{},"ref":null}'])),
            (0.3, ("text", "not json")),
            (0.4, ("binary", b"\x00\x01")),
            (0.5, ("text", unmatched)),
            (1.0, "phx_close")]),
        pf.Behaviour(actions=[(0.2, ("text", "x" * ((1 << 20) + 1)))]),
        pf.Behaviour(join=None)],
        default=pf.Behaviour())
    try:
        r = track(PortalRelay("proto", p.url(), certs.ca))
        r.start_portal()
        c0 = p.wait_joined(0, 10)
        c1 = p.wait_joined(1, 10)
        check(c0.pongs == 1, "Ping not answered (%d pongs)" % c0.pongs)
        text = r.log_text()
        check("fz_odd_event" in text, "the fragmented message with an "
              "unknown event was not reassembled and warned about")
        check("invalid JSON" in text, "invalid JSON not warned about")
        joins = [json.loads(m) for m in c0.texts()
                 if '"phx_join"' in m]
        check(len(joins) == 2 and joins[1]["ref"] > 0 and
              joins[1]["payload"] == joins[0]["payload"],
              "unmatched topic: joins %r" % joins)
        check("phx_close" in text, "phx_close: no reconnect logged")
        c2 = p.wait_joined(1, 1) and p.wait_conns(3, 10)
        check(c2.t_request - c1.t_joined < 3.0, "no reconnect after a "
              "message over 1 MiB")
        c3 = p.wait_conns(4, 12)
        gap = c3.t_request - c2.t_open
        TIMINGS["join timeout reconnect after"] = gap
        check(4.8 <= gap <= 6.8, "join timeout: reconnect %.2f s after the "
              "upgrade, expected 5 s + back-off" % gap)
        p.wait_joined(3, 5)
        check(not p.errors, "portal errors: %r" % p.errors)
        r.stop()
        log("protocol: Pong, fragments, unknown event, invalid JSON, binary,"
            " unmatched topic rejoin, phx_close, 1 MiB cap, join timeout "
            "(%.2f s)" % gap)
    finally:
        p.stop()


# --------------------------------------------------------------------------
# C59: heartbeats never answered (and C58's heartbeat timing, and
# credentials from the secret the portal received)


def case_c59(certs):
    p = pf.Portal(certs, script=[pf.Behaviour(init=True, hb_reply=False)],
                  default=pf.Behaviour(init=True))
    try:
        r = track(PortalRelay("c59", p.url(), certs.ca))
        r.start_portal()
        c0 = p.wait_joined(0, 10)
        secret = join_secret(c0)
        check(re.match(r"^[0-9a-f]{64}$", secret), "C59: generated secret "
              "%r is not 64 lowercase hex digits" % secret)
        check(c0.messages[0][1] == join_text(secret), "C58: join %r"
              % c0.messages[0][1])

        # A TURN client with credentials derived from the received secret.
        wait_binding(r, 3, "C59 after init")
        expiry = int(time.time()) + 3600
        user = "%d:c59salt" % expiry
        cl = TurnClient(("127.0.0.1", r.port), user,
                        turn_rest_password(expiry, secret, "c59salt"))
        try:
            m = cl.allocate()
            check(m.cls == SUCCESS, "C59: allocate %s" % m.describe())
        finally:
            cl.close()
        bad = TurnClient(("127.0.0.1", r.port), "%d:c59bad" % expiry,
                         turn_rest_password(expiry, "0" * 64, "c59bad"))
        try:
            m = bad.request(ALLOCATE, [transport_udp()])
            check(m.error()[0] == 401, "C59: a wrong secret's password got "
                  "%s" % m.describe())
        finally:
            bad.close()
        log("C59: credentials from the portal's secret allocate; others 401")

        # C58: heartbeats 10, 20, 30 s after the upgrade, refs 1, 2, 3.
        p.wait_messages(0, 4, 35)
        hbs = c0.heartbeats()[:3]
        for i, (t, d) in enumerate(hbs):
            at = t - c0.t_open
            check(d == {"topic": "phoenix", "event": "heartbeat",
                        "payload": {}, "ref": i + 1},
                  "C58: heartbeat %d is %r" % (i + 1, d))
            check(abs(at - 10.0 * (i + 1)) <= 1.5, "C58: heartbeat %d at "
                  "%.2f s, expected %d s" % (i + 1, at, 10 * (i + 1)))
        TIMINGS["C58 heartbeats at"] = [round(t - c0.t_open, 2)
                                        for t, _ in hbs]
        hb_text = c0.messages[1][1]
        check(hb_text == '{"topic":"phoenix","event":"heartbeat",'
              '"payload":{},"ref":1}', "C58: heartbeat text %r" % hb_text)
        log("C58: heartbeats at %s s with refs 1, 2, 3"
            % TIMINGS["C58 heartbeats at"])

        # C59: reconnect between 35 and 50 s.
        c1 = p.wait_conns(2, 55 - (time.monotonic() - c0.t_open))
        gap = c1.t_request - c0.t_open
        TIMINGS["C59 reconnect after"] = gap
        check(35.0 <= gap <= 50.0, "C59: reconnect %.2f s after the upgrade,"
              " expected 35-50 s" % gap)
        c1 = p.wait_joined(1, 10)
        check(c1.messages[0][1] == join_text(secret), "C59: the join after "
              "the reconnect carries another secret")
        r.stop()
        no_token(r, "C59")
        log("C59: reconnect %.2f s after the upgrade; same secret" % gap)
    finally:
        p.stop()


# --------------------------------------------------------------------------


def test():
    if not pf.HAVE_WEBSOCKETS:
        raise Skip("python3-websockets is not installed")
    if shutil.which("openssl") is None:
        raise Skip("the openssl command is not installed")
    need_binary()
    tmp = tempfile.mkdtemp(prefix="fzr-portal-")
    try:
        certs = pf.Certs(tmp)
        t0 = time.monotonic()
        long_cases = [Case("C59", case_c59, certs),
                      Case("C61", case_c61, certs),
                      Case("C61-refused", case_c61_refused, certs),
                      Case("TLS", case_tls_verify, certs),
                      Case("protocol", case_protocol, certs)]
        case_c58(certs)
        case_c55_c56(certs)
        case_c60(certs)
        case_c62(certs)
        for c in long_cases:
            c.finish(max(5.0, 75 - (time.monotonic() - t0)))
        for k in sorted(TIMINGS):
            log("timing: %s: %s" % (k, TIMINGS[k]))
    finally:
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(test)
