#!/usr/bin/python3
"""The HTTP endpoint on health.listen (SPEC §10.1-§10.3, §10.6) through the
real binary, standalone mode.

SPEC cases: C72 (/healthz, /metrics with every §10.2 metric and every
§10.3 drop reason at 0), the /readyz part of C68 (200 at once in
standalone mode); §10.1's HEAD, 404, 405 and Content-Type rules and
metrics.enabled: false; §10.6's exit 1 when health.listen cannot be
bound; and /metrics after real traffic: allocations, channels, relayed
packets and bytes per direction, the size histogram, responses and drops
by reason, summed over two workers.
"""

import http.client
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403

TEXT = "text/plain; charset=utf-8"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# SPEC §10.2: name -> type.
METRICS = {
    "relay_active_allocations": "gauge",
    "relay_active_channels": "gauge",
    "relay_responses_total": "counter",
    "relay_relayed_bytes_total": "counter",
    "relay_relayed_packets_total": "counter",
    "relay_dropped_packets_total": "counter",
    "relay_packet_size_bytes": "histogram",
    "relay_portal_connected": "gauge",
    "relay_allocations_lost_total": "counter",
    "relay_xdp_attached": "gauge",
    "relay_xdp_relayed_packets_total": "counter",
    "relay_xdp_relayed_bytes_total": "counter",
    "relay_workers": "gauge",
}
# SPEC §10.3.
DROP_REASONS = ["port_zero", "not_ready", "malformed", "fingerprint",
                "not_request", "rate_limited", "bad_username", "no_channel",
                "no_peer_binding", "too_large", "send_error"]


def http_req(port, path, method="GET", timeout=2.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def raw_req(port, text, timeout=2.0):
    """Sends a raw request, reads until the server closes: (status line,
    headers dict, bytes after the head)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(text.encode())
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, sep, rest = data.partition(b"\r\n\r\n")
    check(sep, "no complete response head in %r" % data[:300])
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return lines[0], hdrs, rest


def parse_metrics(body):
    series, help_, type_ = {}, {}, {}
    for line in body.decode().splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            help_[name] = line
        elif line.startswith("# TYPE "):
            _, _, name, t = line.split()
            type_[name] = t
        elif line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            series[k] = float(v)
    return series, help_, type_


def metrics(port):
    st, hd, body = http_req(port, "/metrics")
    check(st == 200, "/metrics: status %d" % st)
    check(hd.get("content-type") == METRICS_TYPE, "/metrics Content-Type %r"
          % hd.get("content-type"))
    return parse_metrics(body)


class HttpRelay(Relay):
    """relaylib.Relay with extra top-level YAML text."""

    def __init__(self, name, tail="", **kw):
        Relay.__init__(self, name=name, **kw)
        self.tail = tail

    def config_text(self, **kw):
        return Relay.config_text(self, **kw) + self.tail


# --------------------------------------------------------------------------


def case_endpoints():
    r = track(HttpRelay("http", workers=2))
    r.start(wait=False)
    version = relay_version()
    body_v = (version + "\n").encode()

    # C68: /readyz is 200 from the first moment HTTP answers.
    deadline = time.monotonic() + r.ready_timeout()
    first = None
    while time.monotonic() < deadline and first is None:
        check(r.proc.poll() is None, "relay exited: %s" % r.log_text())
        try:
            first = http_req(r.health_port, "/readyz", timeout=0.5)
        except OSError:
            time.sleep(0.01)
    check(first is not None, "/readyz never answered")
    check(first[0] == 200 and first[2] == body_v, "C68: first /readyz "
          "answer %d %r, expected 200 %r" % (first[0], first[2], body_v))
    check(first[1].get("content-type") == TEXT, "/readyz Content-Type %r"
          % first[1].get("content-type"))
    log("C68: /readyz 200 at once in standalone mode")
    check(r.wait_ready(), "relay does not answer Bindings")
    r.track_pids()

    # C72: /healthz and /metrics.
    st, hd, body = http_req(r.health_port, "/healthz")
    check(st == 200 and body == body_v, "C72: /healthz %d %r" % (st, body))
    check(hd.get("content-type") == TEXT, "/healthz Content-Type %r"
          % hd.get("content-type"))
    deadline = time.monotonic() + 3
    while True:
        series, helps, types = metrics(r.health_port)
        if series.get("relay_workers") == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for name, t in METRICS.items():
        check(name in helps, "C72: no # HELP for %s" % name)
        check(types.get(name) == t, "C72: # TYPE %s is %r, expected %r"
              % (name, types.get(name), t))
        check(any(k == name or k.startswith(name + "{") or
                  k.startswith(name + "_") for k in series),
              "C72: no series for %s" % name)
    for reason in DROP_REASONS:
        k = 'relay_dropped_packets_total{reason="%s"}' % reason
        check(series.get(k) == 0, "C72: %s = %r, expected 0"
              % (k, series.get(k)))
    for d in ("client_to_peer", "peer_to_client"):
        for m in ("relay_relayed_bytes_total", "relay_relayed_packets_total",
                  "relay_xdp_relayed_packets_total",
                  "relay_xdp_relayed_bytes_total"):
            k = '%s{direction="%s"}' % (m, d)
            check(series.get(k) == 0, "C72: %s = %r" % (k, series.get(k)))
    for k, want in (("relay_workers", 2), ("relay_portal_connected", 0),
                    ("relay_xdp_attached", 0),
                    ("relay_active_allocations", 0),
                    ("relay_active_channels", 0),
                    ("relay_allocations_lost_total", 0),
                    ('relay_packet_size_bytes_bucket{le="+Inf"}', 0)):
        check(series.get(k) == want, "C72: %s = %r, expected %r"
              % (k, series.get(k), want))
    log("C72: /healthz 200 %r; /metrics has all %d metrics and %d drop "
        "reasons at 0" % (body, len(METRICS), len(DROP_REASONS)))

    # HEAD: the same status and headers, no body (raw, HTTP/1.0 closes).
    for path, code in (("/healthz", 200), ("/readyz", 200),
                       ("/metrics", 200), ("/nope", 404)):
        line, hd, rest = raw_req(r.health_port,
                                 "HEAD %s HTTP/1.0\r\n\r\n" % path)
        check(line.split()[1] == str(code), "HEAD %s: %r" % (path, line))
        check(rest == b"", "HEAD %s: %d body bytes" % (path, len(rest)))
        check(hd.get("content-type") in (TEXT, METRICS_TYPE),
              "HEAD %s Content-Type %r" % (path, hd.get("content-type")))
    line, hd, rest = raw_req(r.health_port, "HEAD /healthz HTTP/1.0\r\n\r\n")
    check(hd.get("content-length") == str(len(body_v)), "HEAD /healthz "
          "Content-Length %r" % hd.get("content-length"))
    line, hd, rest = raw_req(r.health_port, "GET /healthz HTTP/1.0\r\n\r\n")
    check(line.split()[1] == "200" and rest == body_v, "HTTP/1.0 GET: %r %r"
          % (line, rest))

    # Other methods 405, other paths 404, every reply typed.
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        st, hd, _ = http_req(r.health_port, "/healthz", method)
        check(st == 405, "%s /healthz: %d, expected 405" % (method, st))
        check(hd.get("content-type") == TEXT, "405 Content-Type %r"
              % hd.get("content-type"))
    for path in ("/nope", "/", "/healthz/x", "/metricsx"):
        st, hd, _ = http_req(r.health_port, path)
        check(st == 404, "GET %s: %d, expected 404" % (path, st))
        check(hd.get("content-type") == TEXT, "404 Content-Type %r"
              % hd.get("content-type"))
    st, _, body = http_req(r.health_port, "/healthz?probe=1")
    check(st == 200 and body == body_v, "GET /healthz?probe=1: %d" % st)
    log("HEAD without body; POST/PUT/DELETE/OPTIONS/PATCH 405; /nope 404")
    r.stop()


def case_metrics_disabled():
    r = track(HttpRelay("nometrics", workers=1,
                        tail="metrics:\n  enabled: false\n"))
    r.start()
    st, hd, _ = http_req(r.health_port, "/metrics")
    check(st == 404, "metrics.enabled false: /metrics %d, expected 404" % st)
    check(hd.get("content-type") == TEXT, "404 Content-Type %r"
          % hd.get("content-type"))
    st, _, _ = http_req(r.health_port, "/healthz")
    check(st == 200, "metrics.enabled false: /healthz %d" % st)
    r.stop()
    log("metrics.enabled false: /metrics 404, /healthz 200")


def case_bind_failure():
    r = track(HttpRelay("busy", workers=1))
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", r.health_port))
        holder.listen(1)
        r.start(wait=False)
        try:
            rc = r.proc.wait(10)
        except subprocess.TimeoutExpired:
            raise TestFailure("relay kept running with health.listen taken")
        check(rc == 1, "health.listen taken: exit %d, expected 1" % rc)
        text = r.log_text()
        check("health.listen" in text and "in use" in text,
              "health.listen taken: no clear error:\n%s" % text)
        r.proc = None
    finally:
        holder.close()
    log("health.listen taken: exit 1, logged")


# --------------------------------------------------------------------------
# /metrics after real traffic


SIZES = [50, 150, 700, 1200, 1600]      # one per histogram region
N_CLIENTS = 4


def hist_expect(sizes, times):
    """Cumulative buckets le=100..1500 and +Inf for sizes, each times."""
    out = {}
    for le in range(100, 1600, 100):
        out['relay_packet_size_bytes_bucket{le="%d"}' % le] = \
            times * sum(1 for s in sizes if s <= le)
    out['relay_packet_size_bytes_bucket{le="+Inf"}'] = times * len(sizes)
    out["relay_packet_size_bytes_count"] = times * len(sizes)
    out["relay_packet_size_bytes_sum"] = times * sum(sizes)
    return out


def wait_series(port, want, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        series, _, _ = metrics(port)
        bad = {k: (series.get(k), v) for k, v in want.items()
               if series.get(k) != v}
        if not bad:
            return series
        if time.monotonic() > deadline:
            raise TestFailure("%s: (got, expected) %r" % (what, bad))
        time.sleep(0.05)


def case_metrics_traffic():
    r = track(HttpRelay("traffic", workers=2))
    r.start()
    peer = EchoPeer()
    clients = []
    try:
        for i in range(N_CLIENTS):
            c = r.client()
            clients.append(c)
            allocate_checked(r, c)
            c.bind_ok(0x4000, peer.addr)
        for c in clients:
            for n in SIZES:
                payload = os.urandom(n)
                c.send_channel(0x4000, payload)
                got = c.recv_data(3.0)
                check(got is not None and got[0] == 0x4000 and
                      got[1] == payload, "echo of %d bytes not relayed "
                      "back: %r" % (n, got and got[:2]))
        nb = N_CLIENTS * sum(SIZES)
        np_ = N_CLIENTS * len(SIZES)
        want = {
            "relay_active_allocations": N_CLIENTS,
            "relay_active_channels": N_CLIENTS,
            'relay_relayed_packets_total{direction="client_to_peer"}': np_,
            'relay_relayed_packets_total{direction="peer_to_client"}': np_,
            'relay_relayed_bytes_total{direction="client_to_peer"}': nb,
            'relay_relayed_bytes_total{direction="peer_to_client"}': nb,
            'relay_responses_total{message_type="allocate",'
            'response_class="success"}': N_CLIENTS,
            'relay_responses_total{message_type="allocate",'
            'response_class="error",error_code="401"}': N_CLIENTS,
            'relay_responses_total{message_type="channelbind",'
            'response_class="success"}': N_CLIENTS,
            "relay_workers": 2,
        }
        want.update(hist_expect(SIZES, 2 * N_CLIENTS))
        for reason in DROP_REASONS:
            want['relay_dropped_packets_total{reason="%s"}' % reason] = 0
        wait_series(r.health_port, want, 3, "after traffic")
        log("metrics after traffic: %d allocations, %d channels, %d packets "
            "and %d bytes each way, histogram, responses, no drops"
            % (N_CLIENTS, N_CLIENTS, np_, nb))

        # Drops by reason.
        c = clients[0]
        for _ in range(3):
            c.send_channel(0x4001, b"nobody")           # unbound channel
        stranger = udp_socket()
        for _ in range(2):
            stranger.sendto(b"who", tuple(c.relayed))   # no binding
        stranger.close()
        c.send_raw(b"\xc0" + b"\0" * 19)                # unknown first byte
        want_drop = {
            'relay_dropped_packets_total{reason="no_channel"}': 3,
            'relay_dropped_packets_total{reason="no_peer_binding"}': 2,
            'relay_dropped_packets_total{reason="malformed"}': 1,
            'relay_relayed_packets_total{direction="client_to_peer"}': np_,
            'relay_relayed_packets_total{direction="peer_to_client"}': np_,
        }
        wait_series(r.health_port, want_drop, 3, "drops")
        log("drops: no_channel 3, no_peer_binding 2, malformed 1")

        # Deleting an allocation lowers the gauges.
        m = clients[1].refresh(lifetime=0)
        check(m.cls == SUCCESS, "Refresh 0: %s" % m.describe())
        wait_series(r.health_port, {
            "relay_active_allocations": N_CLIENTS - 1,
            "relay_active_channels": N_CLIENTS - 1}, 3, "after a delete")
        log("gauges follow a deleted allocation")
    finally:
        for c in clients:
            c.close()
        peer._stop = True       # EchoPeer's loop flag; its thread is daemon
    r.stop()


def test():
    need_binary()
    case_endpoints()
    case_metrics_disabled()
    case_bind_failure()
    case_metrics_traffic()


if __name__ == "__main__":
    main(test)
