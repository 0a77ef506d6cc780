"""A test portal for the firezone-relay integration tests (SPEC §7).

A real WebSocket server over TLS, built on Debian's python3-websockets
(10.x, the "legacy" asyncio API), running its own asyncio loop in a
thread, plus:

* Certs: a throw-away CA and a server certificate (SAN DNS:localhost and
  IP:127.0.0.1) made at test time with the ``openssl`` command, plus a
  certificate of the same CA for other names and an unrelated CA, to see
  that the relay checks the chain, the name and the IP address;
* Portal: scriptable per connection attempt through Behaviour objects:
  accept and reply ``phx_reply`` ok (or error) to the join ref, send or
  withhold ``init``, answer or ignore heartbeats, timed actions after the
  join (close, ``disconnect``/``token_expired``, ``phx_close``, any text),
  or refuse the upgrade with any status, headers and body (401
  problem+json, 503 with Retry-After, ...).  Every attempt that reaches
  the HTTP upgrade is recorded with its time, path and headers, and every
  message received with its time;
* DropServer: a TCP listener that accepts and closes at once (an
  unreachable portal whose attempts can still be timed).

Import it from a script run by /usr/bin/python3: Debian's modules (here
websockets) are installed for that interpreter only.
"""

import asyncio
import http
import json
import os
import socket
import ssl
import subprocess
import threading
import time

try:
    import websockets
    import websockets.legacy.server as ws_server
    HAVE_WEBSOCKETS = True
except ImportError:            # the caller turns this into a skip
    HAVE_WEBSOCKETS = False


# --------------------------------------------------------------------------
# Certificates

class Certs:
    """ca.pem, server.pem and server.key in directory d; wrong.pem/.key
    (same CA, SAN DNS:other.invalid and IP:192.0.2.77); other-ca.pem."""

    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, "ca.pem")
        self.cert = os.path.join(d, "server.pem")
        self.key = os.path.join(d, "server.key")
        self.other_ca = os.path.join(d, "other-ca.pem")
        self._make()

    def _run(self, *args):
        r = subprocess.run(["openssl"] + list(args), cwd=self.dir,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (args[0], r.stderr))

    def _ca(self, name, cn):
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", name + ".key", "-out", name + ".pem",
                  "-days", "2", "-subj", "/CN=" + cn,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def _leaf(self, name, cn, san):
        with open(os.path.join(self.dir, name + ".cnf"), "w") as f:
            f.write("subjectAltName=%s\n"
                    "basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n" % san)
        self._run("req", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", name + ".key", "-out", name + ".csr",
                  "-subj", "/CN=" + cn)
        self._run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                  "-CAkey", "ca.key", "-CAcreateserial", "-out",
                  name + ".pem", "-days", "2", "-extfile", name + ".cnf")

    def _make(self):
        self._ca("ca", "firezone-relay test CA")
        self._ca("other-ca", "unrelated test CA")
        self._leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1")
        self._leaf("wrong", "other.invalid", "DNS:other.invalid,"
                   "IP:192.0.2.77")

    def server_context(self, leaf="server", on_sni=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(os.path.join(self.dir, leaf + ".pem"),
                            os.path.join(self.dir, leaf + ".key"))
        if on_sni is not None:
            ctx.sni_callback = lambda sock, name, c: on_sni(name)
        return ctx


# --------------------------------------------------------------------------
# Behaviour of one connection attempt

class Behaviour:
    """What the portal does with one connection attempt.

    reject:   (status, [(header, value)...], body bytes) answers the
              upgrade instead of accepting it;
    join:     "ok", "error" or None (no reply) to the phx_join;
    init:     send init right after the join reply;
    hb_reply: answer heartbeats with phx_reply ok;
    actions:  [(delay after the join reply, action)], action one of
              "close" (WebSocket Close 1000), "abort" (TCP dropped),
              "token_expired", "phx_close", "init", "ping" (the Pong is
              counted in Conn.pongs), ("text", str), ("binary", bytes) or
              ("fragments", [str, ...]) (one text message in several
              frames)."""

    def __init__(self, reject=None, join="ok", init=False, hb_reply=True,
                 actions=()):
        self.reject = reject
        self.join = join
        self.init = init
        self.hb_reply = hb_reply
        self.actions = list(actions)


def reject_401_invalid_token():
    body = json.dumps({"type": "about:blank", "title": "Unauthorized",
                       "status": 401, "code": "invalid_token",
                       "detail": "the token is not valid"}).encode()
    return (401, [("Content-Type", "application/problem+json")], body)


def reject_401_other(detail="relay group deleted"):
    body = json.dumps({"title": "Unauthorized", "status": 401,
                       "code": "group_deleted", "detail": detail}).encode()
    return (401, [("Content-Type", "application/problem+json")], body)


def reject_503(retry_after=None):
    h = [("Retry-After", str(retry_after))] if retry_after is not None else []
    return (503, h, b"try later\n")


def msg(topic, event, payload, ref):
    return json.dumps({"topic": topic, "event": event, "payload": payload,
                       "ref": ref}, separators=(",", ":"))


# --------------------------------------------------------------------------
# Records

class Conn:
    """One attempt that reached the HTTP upgrade."""

    def __init__(self, index, path, headers):
        self.index = index
        self.t_request = time.monotonic()
        self.path = path
        self.headers = headers          # dict, lower-case names
        self.rejected = None            # status when the upgrade was refused
        self.t_open = None              # upgrade accepted
        self.t_joined = None            # join reply sent
        self.t_closed = None
        self.close_code = None          # code of the client's Close, if any
        self.messages = []              # (monotonic time, text)
        self.pongs = 0
        self.ws = None

    def texts(self):
        return [m for _, m in self.messages]

    def heartbeats(self):
        out = []
        for t, m in self.messages:
            try:
                d = json.loads(m)
            except ValueError:
                continue
            if d.get("event") == "heartbeat":
                out.append((t, d))
        return out


# --------------------------------------------------------------------------
# The server

class Portal:
    """A TLS WebSocket portal on host:port (port 0: picked by the kernel).
    script: Behaviour per attempt, in order; then default.  leaf: the
    certificate served ("server" or "wrong").  The SNI of every TLS
    handshake (None when absent) is appended to self.sni."""

    def __init__(self, certs, host="127.0.0.1", port=0, script=(),
                 default=None, tls=True, leaf="server"):
        if not HAVE_WEBSOCKETS:
            raise RuntimeError("python3-websockets is not installed")
        self.certs = certs
        self.host = host
        self.script = list(script)
        self.default = default or Behaviour()
        self.tls = tls
        self.leaf = leaf
        self.sni = []
        self.conns = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.errors = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, port))         # no SO_REUSEPORT (ARCHITECTURE §3)
        sock.listen(16)
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        started = threading.Event()
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(started), self.loop)
        if not started.wait(10):
            raise RuntimeError("test portal did not start")

    def url(self, host=None):
        return "%s://%s:%d" % ("wss" if self.tls else "ws",
                               host or "localhost", self.port)

    # -- loop thread
    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _serve(self, started):
        portal = self

        class Proto(ws_server.WebSocketServerProtocol):
            async def process_request(self, path, headers):
                return portal._on_request(self, path, headers)

        self.server = await websockets.serve(
            self._handler, sock=self.sock,
            ssl=self.certs.server_context(self.leaf, self.sni.append)
            if self.tls else None,
            create_protocol=Proto, ping_interval=None, compression=None,
            max_size=4 << 20)
        started.set()

    def _on_request(self, proto, path, headers):
        with self.cond:
            c = Conn(len(self.conns), path,
                     {k.lower(): v for k, v in headers.raw_items()})
            b = self.script[c.index] if c.index < len(self.script) \
                else self.default
            proto.fz_conn, proto.fz_beh = c, b
            self.conns.append(c)
            if b.reject is not None:
                c.rejected = b.reject[0]
                c.t_closed = time.monotonic()
            self.cond.notify_all()
        if b.reject is not None:
            status, hdrs, body = b.reject
            return (http.HTTPStatus(status), hdrs, body)
        return None

    async def _handler(self, ws):
        c, b = ws.fz_conn, ws.fz_beh
        c.ws = ws
        with self.cond:
            c.t_open = time.monotonic()
            self.cond.notify_all()
        actions = None
        try:
            async for text in ws:
                if isinstance(text, bytes):
                    text = text.decode("utf-8", "replace")
                with self.cond:
                    c.messages.append((time.monotonic(), text))
                    self.cond.notify_all()
                try:
                    d = json.loads(text)
                except ValueError:
                    continue
                ev, ref = d.get("event"), d.get("ref")
                if ev == "phx_join" and b.join is not None:
                    await ws.send(msg("relay", "phx_reply",
                                      {"status": b.join, "response": {}} if
                                      b.join == "ok" else
                                      {"status": "error", "response":
                                       {"reason": "invalid stamp"}}, ref))
                    with self.cond:
                        c.t_joined = time.monotonic()
                        self.cond.notify_all()
                    if b.init:
                        await ws.send(msg("relay", "init", {}, None))
                    if actions is None and b.actions:
                        actions = asyncio.ensure_future(
                            self._actions(ws, b.actions))
                elif ev == "heartbeat" and b.hb_reply:
                    await ws.send(msg("phoenix", "phx_reply",
                                      {"status": "ok", "response": {}}, ref))
        except websockets.ConnectionClosed:
            pass
        finally:
            if actions is not None:
                actions.cancel()
            with self.cond:
                c.t_closed = time.monotonic()
                rcvd = getattr(ws, "close_rcvd", None)
                c.close_code = rcvd.code if rcvd is not None else None
                self.cond.notify_all()

    async def _actions(self, ws, actions):
        t0 = time.monotonic()
        try:
            for delay, act in actions:
                await asyncio.sleep(max(0.0, t0 + delay - time.monotonic()))
                await self._act(ws, act)
        except websockets.ConnectionClosed:
            pass
        except Exception as e:          # reported through self.errors
            with self.cond:
                self.errors.append(e)

    async def _act(self, ws, act):
        if act == "close":
            await ws.close(1000)
        elif act == "abort":
            ws.transport.abort()
        elif act == "token_expired":
            await ws.send(msg("relay", "disconnect",
                              {"reason": "token_expired"}, None))
        elif act == "phx_close":
            await ws.send(msg("relay", "phx_close", {}, None))
        elif act == "init":
            await ws.send(msg("relay", "init", {}, None))
        elif act == "ping":
            await asyncio.wait_for(await ws.ping(), 3)
            with self.cond:
                ws.fz_conn.pongs += 1
                self.cond.notify_all()
        elif isinstance(act, tuple) and act[0] in ("text", "binary"):
            await ws.send(act[1])
        elif isinstance(act, tuple) and act[0] == "fragments":
            await ws.send(iter(act[1]))
        else:
            raise ValueError("unknown action %r" % (act,))

    # -- test thread
    def act(self, conn, act, timeout=5.0):
        """Runs an action on an open connection from the test thread."""
        f = asyncio.run_coroutine_threadsafe(self._act(conn.ws, act),
                                             self.loop)
        f.result(timeout)

    def wait_for(self, pred, timeout, what):
        """Waits until pred(conns) is true (evaluated under the lock)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                r = pred(self.conns)
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("portal: %s not within %.1f s "
                                         "(%d attempts seen)"
                                         % (what, timeout, len(self.conns)))
                self.cond.wait(min(left, 0.1))

    def wait_conns(self, n, timeout):
        return self.wait_for(lambda cs: cs[n - 1] if len(cs) >= n else None,
                             timeout, "%d attempts" % n)

    def wait_joined(self, index, timeout):
        return self.wait_for(
            lambda cs: cs[index] if len(cs) > index and
            cs[index].t_joined is not None else None,
            timeout, "join on attempt %d" % index)

    def wait_closed(self, index, timeout):
        return self.wait_for(
            lambda cs: cs[index] if len(cs) > index and
            cs[index].t_closed is not None else None,
            timeout, "end of attempt %d" % index)

    def wait_messages(self, index, n, timeout):
        return self.wait_for(
            lambda cs: cs[index] if len(cs) > index and
            len(cs[index].messages) >= n else None,
            timeout, "%d messages on attempt %d" % (n, index))

    def set_default(self, b):
        with self.cond:
            self.default = b

    def stop(self):
        async def _close():
            if self.server is not None:
                self.server.close()
                await self.server.wait_closed()
        try:
            asyncio.run_coroutine_threadsafe(_close(), self.loop).result(5)
        except Exception as e:
            self.errors.append(e)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class DropServer(threading.Thread):
    """Accepts TCP connections and closes them at once, recording when."""

    def __init__(self, host="127.0.0.1"):
        threading.Thread.__init__(self, daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.times = []
        self._quit = False
        self.start()

    def run(self):
        while not self._quit:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.times.append(time.monotonic())
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()

    def stop(self):
        self._quit = True
        self.join(2)
        self.sock.close()
