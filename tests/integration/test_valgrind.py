#!/usr/bin/python3
"""The relay under valgrind's memcheck (issue 8 item 5).

The master runs as

    valgrind --tool=memcheck --leak-check=full --show-leak-kinds=all
             --errors-for-leak-kinds=definite --error-exitcode=97
             --suppressions=valgrind.supp --num-callers=30
             --log-file=DIR/vg.%p.log  firezone-relay -c relay.yaml

Workers are forked without exec, so valgrind follows them by itself and,
because of the %p, writes one log per process: vg.<master pid>.log and
vg.<worker pid>.log (a respawned worker gets a log of its own; a worker
killed with SIGKILL leaves a log without a summary).  A worker's heap
starts as a copy of the master's, so the blocks the master held at the
fork show up in a worker's log as "still reachable"; they are not leaks.
The test checks that claim: no still-reachable block in a worker's log
has worker_main on its allocation stack (so the worker frees everything
it allocated itself), and reports any that has.

Two relays, one after the other, each with workers: 1:

1. standalone: a Binding; an Allocate; ChannelBinds to two loopback echo
   peers; ChannelData both ways (client -> peer -> echo -> client, sizes
   1-1200, and a peer that starts the exchange); a burst of 300
   datagrams (full recvmmsg/sendmmsg batches); a Refresh;
   CreatePermission; an Allocate replayed with its transaction id (SPEC
   §4.5); error paths (unauthenticated 400/401, a wrong password,
   an unknown comprehension-required attribute, a wrong FINGERPRINT, an
   attribute running past the end, a malformed datagram, a response sent
   to the relay, ChannelData on unbound channels, a ChannelBind to port
   0); a second client live throughout; SIGKILL of the worker, whose
   successor re-adopts both allocations (data, Refresh after its 438);
   a SIGHUP that changes log.level and limits.error_burst; /metrics
   (gauges checked), /healthz, /readyz; Refresh 0 and the 437 after it;
   the stop with one allocation and its channel still live;
2. portal mode (if python3-websockets and openssl exist): the TLS test
   portal of portal_fixture.py; join and init; an allocation with data;
   invalid JSON, an unknown event, a second init, a binary frame, a
   fragmented message, a Ping; then the portal closes the WebSocket
   (Close 1000), drops the TCP connection, refuses one upgrade (503,
   Retry-After: 1) and sends phx_close, each followed by the relay's
   reconnect and join and by data through the relay; a heartbeat and its
   reply; a SIGHUP; /metrics.  This runs the master's OpenSSL and
   libevent bufferevent code, where a leak is most likely.

Each is stopped with SIGTERM (exit 0 expected; 97 would mean memcheck
errors in the master), and every valgrind log, master and each worker,
must be complete ("ERROR SUMMARY" present) and show "ERROR SUMMARY: 0
errors", 0 bytes definitely lost and 0 indirectly lost (or "All heap
blocks were freed").  The log of the worker killed on purpose has no
summary; it must show no error reported before the kill.  "possibly
lost" and "still reachable" are reported, not failed: with
--errors-for-leak-kinds=definite they are not errors.  The suppressions
file is for third-party false positives only, each with a comment; see
valgrind.supp (empty so far).

Skips (77) when valgrind is not installed.  About 25 s.
"""

import glob
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403

HERE = os.path.dirname(os.path.abspath(__file__))
SUPP = os.path.join(os.environ.get("top_srcdir") or
                    os.path.join(HERE, "..", ".."), "tests", "integration",
                    "valgrind.supp")
VG_EXIT = 97
SECRET = "5f0c2d6e8a9b4c1d3e7f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5"


def vg_argv(logdir):
    return ["valgrind", "--tool=memcheck", "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--error-exitcode=%d" % VG_EXIT,
            "--suppressions=%s" % SUPP, "--num-callers=30",
            "--show-leak-kinds=all",
            "--log-file=%s/vg.%%p.log" % logdir]


class VgRelay(Relay):
    """relaylib.Relay run under valgrind, with a fixed secret and, in
    portal mode, a portal: section."""

    def __init__(self, name, portal_url=None, ca=None):
        self.portal_url = portal_url
        self.ca = ca
        self.level = "info"
        Relay.__init__(self, name=name, workers=1, extra=self._extra(200))
        self.killed = set()     # workers killed on purpose (no summary)
        self.vgdir = os.path.join(self.dir, "vg")
        os.mkdir(self.vgdir)

    def _extra(self, burst):
        return {"auth": ["secret: %s" % SECRET],
                "limits": {"error_burst": burst, "max_allocations": 50},
                "log_level": self.level}

    def config_text(self, **kw):
        text = Relay.config_text(self, **kw)
        if self.portal_url:
            text += ("portal:\n  url: %s\n  token: vg-token-42\n"
                     "  ca_file: %s\n" % (self.portal_url, self.ca))
        return text

    def ready_timeout(self):
        return 60.0

    def start(self, wait=True, attempts=3):
        for attempt in range(attempts):
            self.write_config()
            self.logf = open(self.log_path, "ab")
            self.outf = open(self.out_path, "ab")
            self.proc = spawn(vg_argv(self.vgdir) +
                              [RELAY_BIN, "-c", self.cfg_path],
                              stdout=self.outf, stderr=self.logf,
                              stdin=subprocess.DEVNULL, cwd=self.dir,
                              env=clean_env())
            self.pid = self.proc.pid
            log("%s: started pid %d under valgrind (listen %d, health %d)"
                % (self.name, self.pid, self.port, self.health_port))
            if self.wait_ready():
                self.track_pids()
                return self
            rc = self.proc.poll()
            text = self.log_text()
            if rc == 1 and "in use" in text and attempt + 1 < attempts:
                self.pick_ports()
                continue
            raise TestFailure("%s: no Binding answer (exit %r); stderr:\n%s"
                              % (self.name, rc, text[-3000:]))
        raise HarnessError("could not start the relay")

    def vg_reload(self, burst):
        self.level = "warn" if self.level == "info" else "info"
        self.extra = self._extra(burst)
        before = self.log_text().count("SIGHUP: reloading")
        self.reload()
        wait_for(lambda: self.log_text().count("SIGHUP: reloading") > before,
                 20.0, "%s: the SIGHUP reload" % self.name)

    def vg_stop(self, timeout=60.0):
        """SIGTERM, then wait for the master (valgrind's leak check at exit
        takes a while); every worker must be gone too."""
        ws = children(self.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s: still running %.0f s after SIGTERM"
                              % (self.name, timeout))
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and any(pid_alive(w) for w in ws):
            time.sleep(0.05)
        check(not any(pid_alive(w) for w in ws), "%s: workers %r left"
              % (self.name, ws))
        self.proc = None
        return rc


def proc_age(pid):
    """Seconds since pid started (None if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
    except OSError:
        return None
    start = int(st[st.rfind(")") + 2:].split()[19])
    return up - start / os.sysconf("SC_CLK_TCK")


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise TestFailure("%s: not within %.0f s" % (what, timeout))


def http_get(port, path, timeout=10.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def scrape(relay):
    st, body = http_get(relay.health_port, "/metrics")
    check(st == 200, "/metrics status %d" % st)
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def creds(salt):
    expiry = int(time.time()) + 3600
    return "%d:%s" % (expiry, salt), turn_rest_password(expiry, SECRET, salt)


def client(relay, salt, **kw):
    u, p = creds(salt)
    kw.setdefault("rto", 0.5)
    return TurnClient(("127.0.0.1", relay.port), u, p, **kw)


def alloc(r, c):
    m = c.allocate(timeout=15)
    ra = m.xaddr(A_XOR_RELAYED_ADDRESS)
    check(ra is not None and ra[0] == "127.0.0.1" and r.in_range(ra[1]),
          "XOR-RELAYED-ADDRESS %r" % (ra,))
    return ra


def recv_chan(c, timeout):
    """The next ChannelData, skipping late duplicate STUN responses (a
    request retransmitted while valgrind was slow gets two answers)."""
    deadline = time.monotonic() + timeout
    while True:
        got = c.recv_data(max(0.0, deadline - time.monotonic()))
        if got is None or got[0] is not None:
            return got
        d = got[1]
        check(len(d) >= 20 and d[0] < 4, "unexpected datagram %r" % d[:32])


def echo(c, ch, payload, timeout=10.0):
    c.send_channel(ch, payload)
    got = recv_chan(c, timeout)
    check(got is not None and got[:2] == (ch, payload),
          "channel 0x%04x: sent %r, got %r" % (ch, payload[:16], got))


# --------------------------------------------------------------------------
# Scenarios

def scenario_standalone(r):
    peers = [EchoPeer(), EchoPeer()]
    try:
        m = TurnClient(("127.0.0.1", r.port)).binding(timeout=10)
        check(m is not None and m.cls == SUCCESS, "Binding: %r" % m)
        c = client(r, "vgone", fingerprint=True)
        ra = alloc(r, c)
        c.bind_ok(0x4000, peers[0].addr, timeout=15)
        c.bind_ok(0x7ffe, peers[1].addr, timeout=15)
        for size in (1, 100, 1200):
            echo(c, 0x4000, b"a" * size)
            echo(c, 0x7ffe, b"b" * size)
        # a peer that starts the exchange
        ps = udp_socket()
        try:
            c.bind_ok(0x4001, ps.getsockname()[:2], timeout=15)
            ps.sendto(b"from the peer", ra)
            got = recv_chan(c, 10)
            check(got is not None and got[:2] == (0x4001, b"from the peer"),
                  "peer -> client: %r" % (got,))
            c.send_channel(0x4001, b"to the peer")
            got = recv_from(ps, 10)
            check(got == (b"to the peer", ra), "client -> peer: %r" % (got,))
        finally:
            ps.close()
        m = c.refresh(600, timeout=15)
        check(m.cls == SUCCESS, "Refresh: %s" % m.describe())
        m = c.request(CREATE_PERMISSION, lambda tid: [
            (A_XOR_PEER_ADDRESS, encode_xor_address(peers[0].addr, tid))],
            timeout=15)
        check(m.cls == SUCCESS, "CreatePermission: %s" % m.describe())

        # error paths
        bad = TurnClient(("127.0.0.1", r.port), rto=0.5)
        try:
            m = bad.request(ALLOCATE, [], auth=False, timeout=15)
            check(m.error()[0] in (400, 401), "Allocate without "
                  "REQUESTED-TRANSPORT: %s" % m.describe())
            bad.username, bad.password = creds("vgbad")[0], "wrong" * 8
            m = bad.request(ALLOCATE, [transport_udp()], timeout=15)
            check(m.error()[0] == 401, "wrong password: %s" % m.describe())
            bad.send_raw(b"\x01\x02\x03")               # malformed
            bad.send_raw(chandata(0x4abc, b"unbound"))   # no channel
            tid = new_tid()
            fp = bytearray(encode(BINDING, REQUEST, tid, [],
                                  fingerprint=True))
            fp[-1] ^= 1                                  # bad FINGERPRINT
            bad.send_raw(bytes(fp))
            bad.send_raw(encode(BINDING, REQUEST, new_tid(), [])[:20] +
                         b"\x00\x06\x00\x40abcd")       # runs past the end
            m = bad.request(ALLOCATE, [transport_udp(), (0x7777, b"x")],
                            auth=False, timeout=15)     # unknown attribute
            check(m.cls == 3, "Allocate with 0x7777: %s" % m.describe())
            bad.send_raw(encode(ALLOCATE, 2, new_tid(), []))  # a response
        finally:
            bad.close()
        m = c.channel_bind(0x4002, ("127.0.0.1", 0), timeout=15)
        check(m.error()[0] in (400, 403), "ChannelBind to port 0: %s"
              % m.describe())
        c.send_channel(0x4999, b"no such channel")

        # a second client stays live until the stop
        c2 = client(r, "vgtwo")
        alloc(r, c2)
        c2.bind_ok(0x4000, peers[0].addr, timeout=15)
        echo(c2, 0x4000, b"still here")

        # a burst: many datagrams per batch, both ways
        for i in range(300):
            c.send_channel(0x4000 if i % 2 else 0x7ffe, b"%04d" % i * 50)
        got = 0
        while got < 300:
            g = recv_chan(c, 10)
            check(g is not None, "burst: %d of 300 echoed" % got)
            got += 1
        # an Allocate replayed with its transaction id (SPEC §4.5)
        c3 = client(r, "vgthree")
        m = c3.allocate(timeout=15)
        m2 = c3.request(ALLOCATE, c3.alloc_attrs, tid=m.tid, timeout=15)
        check(m2.cls == SUCCESS and m2.xaddr(A_XOR_RELAYED_ADDRESS) ==
              m.xaddr(A_XOR_RELAYED_ADDRESS), "replay: %s" % m2.describe())
        check(c3.refresh(0, timeout=15).cls == SUCCESS, "c3 Refresh 0")
        c3.close()

        # SIGKILL the worker: its successor re-adopts both allocations
        # (re-binds their relay ports) and serves on
        old = r.worker_pids()
        check(len(old) == 1, "workers %r" % old)
        wait_for(lambda: (proc_age(old[0]) or 0) > 1.2, 10,
                 "worker older than the respawn throttle")
        os.kill(old[0], signal.SIGKILL)
        r.killed.add(old[0])
        new = r.wait_workers(1, exclude=set(old), timeout=30)
        log("%s: killed worker %d, new worker %d" % (r.name, old[0], new[0]))
        deadline = time.monotonic() + 30
        while True:
            c2.send_channel(0x4000, b"after the kill")
            got = recv_chan(c2, 1.0)
            if got is not None:
                check(got[:2] == (0x4000, b"after the kill"),
                      "after the kill: %r" % (got,))
                break
            check(time.monotonic() < deadline, "no relaying 30 s after the "
                  "kill")
        m = c2.refresh(600, timeout=15)
        check(m.cls == SUCCESS, "Refresh after the kill: %s" % m.describe())
        echo(c, 0x7ffe, b"after the kill too")

        # SIGHUP and a scrape while both are live
        r.vg_reload(burst=300)
        echo(c, 0x4000, b"after the reload")
        mt = scrape(r)
        check(mt.get("relay_active_allocations") == 2 and
              mt.get("relay_active_channels") == 4,
              "gauges %r" % {k: v for k, v in mt.items()
                             if k.startswith("relay_active")})
        for path in ("/healthz", "/readyz"):
            st, _ = http_get(r.health_port, path)
            check(st == 200, "%s: %d" % (path, st))

        # Refresh 0, then 437
        m = c.refresh(0, timeout=15)
        check(m.cls == SUCCESS, "Refresh 0: %s" % m.describe())
        m = c.refresh(600, timeout=15)
        check(m.error()[0] == 437, "Refresh after Refresh 0: %s"
              % m.describe())
        wait_for(lambda: scrape(r).get("relay_active_allocations") == 1,
                 10, "relay_active_allocations 1 after Refresh 0")
        c.close()
        c2.close()
        log("%s: scenario done" % r.name)
    finally:
        for p in peers:
            p.stop()


def scenario_portal(r, portal):
    import portal_fixture as pf
    check(portal.conns and portal.conns[0].t_joined is not None,
          "the relay never joined")
    peer = EchoPeer()
    try:
        c = client(r, "vgportal")
        alloc(r, c)
        c.bind_ok(0x4321, peer.addr, timeout=15)
        echo(c, 0x4321, b"portal mode")
        conn = portal.conns[-1]
        for act in (("text", "not json"),
                    ("text", '{"topic":"relay","event":"surprise",'
                             '"payload":{"a":[1,2]},"ref":"7"}'),
                    ("text", '{"topic":"relay","event":"init","payload":{},'
                             '"ref":null}'),
                    ("binary", b"\x00\x01\x02"),
                    ("fragments", ['{"topic":"phoenix",', '"event":"phx_'
                                   'reply","payload":{},"ref":99}']),
                    "ping"):
            portal.act(conn, act, timeout=10)
        for act in ("close", "abort", "refuse", "phx_close"):
            conn = portal.conns[-1]
            n = len(portal.conns)
            if act == "refuse":
                # one refused upgrade (503 Retry-After: 1), then back
                portal.set_default(pf.Behaviour(
                    reject=pf.reject_503(retry_after=1)))
                portal.act(conn, "abort", timeout=10)
                c503 = portal.wait_conns(n + 1, 30)
                portal.set_default(pf.Behaviour(init=True))
                check(c503.rejected == 503, "attempt %d not refused" % n)
                n += 1
            else:
                portal.act(conn, act, timeout=10)
            portal.wait_joined(n, 30)
            echo(c, 0x4321, b"after %s" % act.encode())
            log("%s: portal %s, rejoined (attempt %d)" % (r.name, act, n))
        # a heartbeat and its reply on the last connection (10 s after it)
        n = len(portal.conns) - 1
        portal.wait_for(lambda cs: cs[n].heartbeats(), 20,
                        "a heartbeat on attempt %d" % n)
        r.vg_reload(burst=250)
        mt = scrape(r)
        check(mt.get("relay_portal_connected") == 1, "not connected: %r"
              % mt.get("relay_portal_connected"))
        m = c.refresh(0, timeout=15)
        check(m.cls == SUCCESS, "Refresh 0: %s" % m.describe())
        c.close()
        log("%s: scenario done" % r.name)
    finally:
        peer.stop()


# --------------------------------------------------------------------------
# The logs

def read_logs(r, master_pid):
    """{pid: text} for every vg.<pid>.log; checks each one."""
    out = {}
    for path in sorted(glob.glob(os.path.join(r.vgdir, "vg.*.log"))):
        pid = int(re.search(r"vg\.(\d+)\.log$", path).group(1))
        with open(path, errors="replace") as f:
            out[pid] = f.read()
    return out


def summary(text):
    def num(pat):
        m = re.search(pat + r": ([\d,]+) bytes in ([\d,]+) blocks", text)
        return int(m.group(1).replace(",", "")) if m else 0
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    return {"errors": int(m.group(1)) if m else None,
            "definitely": num("definitely lost"),
            "indirectly": num("indirectly lost"),
            "possibly": num("possibly lost"),
            "reachable": num("still reachable"),
            "freed_all": "All heap blocks were freed" in text,
            "complete": m is not None}


def loss_records(text, kind):
    """The stacks of the loss records of one kind ("still reachable",
    "possibly lost", ...), each as a list of lines."""
    out, cur = [], None
    for line in text.splitlines():
        body = line.split("== ", 1)[1] if "== " in line else line
        if "are %s in loss record" % kind in body:
            cur = [body]
            out.append(cur)
        elif cur is not None:
            if not body.strip():
                cur = None
            else:
                cur.append(body.strip())
    return out


def judge(r, rc, master_pid, workers, results):
    logs = read_logs(r, master_pid)
    check(master_pid in logs, "%s: no valgrind log of the master (%d): %r"
          % (r.name, master_pid, sorted(logs)))
    extra = set(logs) - {master_pid} - set(workers)
    check(not extra, "%s: valgrind logs of unknown processes %r (workers "
          "seen %r)" % (r.name, sorted(extra), workers))
    check(set(workers) <= set(logs), "%s: no valgrind log for workers %r"
          % (r.name, sorted(set(workers) - set(logs))))
    bad = []
    for pid, text in sorted(logs.items()):
        s = summary(text)
        if pid == master_pid:
            role = "master"
        elif pid in r.killed:
            role = "killed worker"
        else:
            role = "worker"
        results.append((r.name, role, pid, s))
        if role == "killed worker":
            # SIGKILL leaves no summary; errors found before it would be
            # in the log with their stacks.
            errs = [l for l in text.splitlines() if "   at 0x" in l or
                    "by 0x" in l]
            log("%s %s %d: no summary (SIGKILL), %s"
                % (r.name, role, pid, "errors reported before the kill"
                   if errs else "no error reported before the kill"))
            if errs:
                bad.append((role, pid, text))
            continue
        own = [rec for rec in loss_records(text, "still reachable")
               if role == "worker" and any("worker_main" in l for l in rec)]
        log("%s %s %d: %s errors; definitely lost %d B, indirectly %d B, "
            "possibly %d B, still reachable %d B%s%s"
            % (r.name, role, pid, s["errors"], s["definitely"],
               s["indirectly"], s["possibly"], s["reachable"],
               ", all heap blocks freed" if s["freed_all"] else "",
               " (all of it inherited from the master: no block allocated "
               "after the fork)" if role == "worker" and s["reachable"] and
               not own else ""))
        for rec in own:
            log("  still reachable, allocated by the worker: %s"
                % " / ".join(rec[:8]))
        for rec in loss_records(text, "possibly lost"):
            log("  possibly lost: %s" % " / ".join(rec[:10]))
        if not s["complete"] or s["errors"] != 0 or s["definitely"] != 0 \
                or s["indirectly"] != 0:
            bad.append((role, pid, text))
    for role, pid, text in bad:
        print("---- valgrind log of the %s %d ----\n%s" % (role, pid, text))
    check(not bad, "%s: valgrind found problems in %s" % (
        r.name, ", ".join("%s %d" % (role, pid) for role, pid, _ in bad)))
    check(rc == 0, "%s: exit status %d after SIGTERM (%d = memcheck errors "
          "in the master)" % (r.name, rc, VG_EXIT))


def run_one(name, scenario, results, portal=None, certs=None):
    r = track(VgRelay(name, portal.url() if portal else None,
                      certs.ca if certs else None))
    r.start()
    master = r.pid
    workers = set(r.wait_workers(1, timeout=30))
    t0 = time.monotonic()
    scenario(r, portal) if portal else scenario(r)
    workers |= set(r.worker_pids()) | r.killed
    check(len(workers) == 1 + len(r.killed), "%s: workers %r, killed %r: "
          "one restarted unasked?" % (name, workers, r.killed))
    rc = r.vg_stop()
    log("%s: scenario %.1f s, stopped with status %d" % (
        name, time.monotonic() - t0, rc))
    judge(r, rc, master, sorted(workers), results)


def test():
    if shutil.which("valgrind") is None:
        raise Skip("valgrind is not installed")
    if sanitized_build():
        raise Skip("the relay is built with AddressSanitizer, which "
                   "valgrind cannot run; the plain build's make check "
                   "runs this test")
    check(os.path.exists(SUPP), "no suppressions file %s" % SUPP)
    need_binary()
    results = []
    run_one("vg-standalone", scenario_standalone, results)
    try:
        import portal_fixture as pf
        have = pf.HAVE_WEBSOCKETS and shutil.which("openssl")
    except ImportError:
        have = False
    if not have:
        log("portal mode skipped: python3-websockets or openssl missing")
    else:
        import tempfile
        tmp = tempfile.mkdtemp(prefix="fzr-vg-portal-")
        try:
            certs = pf.Certs(tmp)
            portal = pf.Portal(certs, default=pf.Behaviour(init=True))
            try:
                run_one("vg-portal", scenario_portal, results, portal, certs)
            finally:
                portal.stop()
        finally:
            if not os.environ.get("KEEP_TMP"):
                shutil.rmtree(tmp, ignore_errors=True)
    log("valgrind: %d process logs clean: %s" % (len(results), ", ".join(
        "%s %s" % (n, role) for n, role, _, _ in results)))


if __name__ == "__main__":
    main(test)
