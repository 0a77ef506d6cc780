"""bench/run --xdp: the XDP offload of ChannelData against the user-space
path and coturn, in network namespaces (issue 10; docs/xdp.md,
docs/performance.md "XDP offload").

Root only, and a build configured with --enable-xdp; anything else is a
clear message and exit status 1 (this is a manual benchmark, not a
test).

Topology: three namespaces of this run, fzr-xb-<pid>-{e,g,x}:

    ends e ==veth== g (router) ==veth== x (the relay, one interface)
          xb-e0   xb-ge      xb-gx    xb-x0

- e holds both ends: the peer socket on 10.81.1.2 (its veth address) and
  the client sockets, each bound to its own address of 10.82.0.0/16 (a
  local route on lo, so no 5-tuple repeats, as on loopback); one
  turnbench process plays clients and peer (--peer-bind, --client-net).
  Client -> relay -> peer and back all cross g, so every relayed
  datagram enters and leaves the relay through its one veth, where the
  XDP program runs and where XDP_TX sends back out.  The relay's peer
  policy allows private addresses by default.
- g forwards; its end of the relay link runs src/xdp/xdp_pass.bpf.o (a
  veth drops XDP_TX frames at a peer end without XDP), as in
  tests/integration/test_xdp.py.
- Transmit checksum offload is off on every veth end (a locally sent
  datagram otherwise crosses with a partial checksum, which XDP cannot
  patch).
- Every veth end has NAPI (GRO on, or the XDP program) in threaded mode,
  so that the kernel's receive work runs in one kernel thread per
  interface ("napi/xb-x0-<id>") instead of whatever softirq context it
  lands in.  The relay interface's and the router's threads are pinned
  to the relay's CPU, the ends' to the generator's.  The relay path's
  CPU is then measurable per process: the relay's process tree plus
  xb-x0's NAPI thread (where the XDP program, or the kernel's receive
  path up to the relay's socket, runs); the router's two threads and the
  ends' are reported apart.

Contenders, one at a time in x, pinned like bench/run's (relay on its
CPU, the generator on the others), rounds alternating xdp, user, coturn
(a warm-up round discarded, then --rounds, medians):

    xdp     firezone-relay with xdp.interface: xb-x0, mode native; a
            result counts only if relay_xdp_attached is 1 and
            relay_xdp_relayed_packets_total moved; the offloaded share of
            the relayed packets is reported;
    user    firezone-relay without xdp.* (the user-space path);
    coturn  turnserver with bench/run's flags, on x's address.

Workloads: 100 and 1200 byte payloads, 16 flows, c2p, p2c and both
(echo), flat out with WINDOW datagrams in flight (flat out without a
window overflows the 256-frame veth rings and measures drops).  CPU,
beside the per-process figures: busy time of all CPUs from /proc/stat
over the window, the generator's own (getrusage), and other users'
processes (interference).
"""

import ctypes
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import netns_helper  # noqa: E402
from netns_helper import NetnsUnavailable, Topology  # noqa: E402

# Addresses: link e-g is 10.81.1.0/24, link x-g 10.81.2.0/24 (.1 is g);
# the clients' addresses are a local route in e.
PEER4 = "10.81.1.2"
X4 = "10.81.2.2"
CLIENT_NET = "10.82.0.0/16"
# Interface names, unique on the machine: NAPI threads are named after
# them ("napi/xb-x0-<id>") and live in the initial namespace.
DEV_E, DEV_GE, DEV_GX, DEV_X = "xb-e0", "xb-ge", "xb-gx", "xb-x0"
NAPI_ROLES = {"relay": DEV_X, "router_in": DEV_GE, "router_out": DEV_GX,
              "ends": DEV_E}

FLOWS = 16
CASES = [(size, d) for size in (100, 1200) for d in ("c2p", "p2c", "both")]
DURATION_S, WARMUP_S = 2.0, 0.5
WINDOW = 200       # datagrams in flight: below a veth's 256-frame ring
SMOKE_CASES = [(100, "c2p")]
TOOL_TIMEOUT_S = 60
NAMES = ("xdp", "user", "coturn")

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17
ETHTOOL_SGRO = 0x2c
PF_KTHREAD = 0x00200000
HZ = os.sysconf("SC_CLK_TCK")

R = None            # bench/run, for its helpers (wait_quiet, fmt, ...)
STATE = {"topo": None, "procs": [], "tearing": False, "started": False}


class BenchError(Exception):
    """Something this benchmark cannot run without: reported, exit 1."""


def log(msg):
    print("bench/run --xdp: %s" % msg, file=sys.stderr, flush=True)


# --- preconditions ---------------------------------------------------------

def build_has_xdp(relay_bin, tmp):
    """Whether the binary accepts xdp.interface (SPEC §9.2), as
    tests/integration/test_xdp.py decides."""
    cfg = os.path.join(tmp, "probe.yaml")
    with open(cfg, "w") as f:
        f.write("public_ip4: 192.0.2.1\nauth:\n  secret: %s\n"
                "xdp:\n  interface: lo\n" % ("a" * 40))
    r = subprocess.run([relay_bin, "-t", "-c", cfg], capture_output=True,
                       text=True, timeout=10)
    if r.returncode == 78 and "built without XDP support" in r.stderr:
        return False
    if r.returncode != 0:
        raise BenchError("`%s -t` with xdp.interface exited %d: %s" %
                         (relay_bin, r.returncode, r.stderr.strip()))
    return True


# --- topology ----------------------------------------------------------------

def ethtool_set(ns, ifname, cmd, value):
    """ethtool -K IF <feature> on|off through SIOCETHTOOL (no ethtool
    needed): cmd is ETHTOOL_STXCSUM or ETHTOOL_SGRO."""
    def do():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            ev = ctypes.create_string_buffer(struct.pack("II", cmd, value),
                                             8)
            ifr = struct.pack("16sP", ifname.encode(),
                              ctypes.addressof(ev)).ljust(40, b"\0")
            fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
        finally:
            s.close()
    try:
        ns.call(do)
    except OSError as e:
        raise BenchError("cannot set ethtool feature %#x of %s in %s: %s" %
                         (cmd, ifname, ns.name, e))


def build_topology(pass_obj):
    topo = Topology("fzr-xb")
    STATE["topo"] = topo
    e, g, x = topo.add_ns("e"), topo.add_ns("g"), topo.add_ns("x")
    for i, (ns, dev, gdev) in enumerate(((e, DEV_E, DEV_GE),
                                         (x, DEV_X, DEV_GX)), start=1):
        topo.link(ns, dev, g, gdev)
        Topology.addr(ns, dev, "10.81.%d.2/24" % i)
        Topology.addr(g, gdev, "10.81.%d.1/24" % i)
        ns.ip("route", "add", "default", "via", "10.81.%d.1" % i)
    e.ip("route", "add", "local", CLIENT_NET, "dev", "lo")
    g.ip("route", "add", CLIENT_NET, "via", PEER4)
    g.sysctl("net.ipv4.ip_forward", 1)
    r = g.ip("link", "set", "dev", DEV_GX, "xdpdrv", "obj", pass_obj,
             "sec", "xdp", check=False)
    if r.returncode != 0:
        raise BenchError("the kernel refuses XDP: cannot attach %s to a "
                         "veth: %s" % (pass_obj,
                                       (r.stderr or r.stdout).strip()))
    for ns, dev in ((e, DEV_E), (g, DEV_GE), (g, DEV_GX), (x, DEV_X)):
        ethtool_set(ns, dev, ETHTOOL_STXCSUM, 0)
        if dev != DEV_GX:       # NAPI there comes from xdp_pass
            ethtool_set(ns, dev, ETHTOOL_SGRO, 1)
        r = netns_helper.run(ns.exec_argv([
            "sh", "-c", "echo 1 > /sys/class/net/%s/threaded" % dev]),
            check=False)
        if r.returncode != 0:
            raise BenchError("threaded NAPI on %s: %s" %
                             (dev, (r.stderr or r.stdout).strip()))
    # e reaches x through g (ARP done) before anything is measured
    rx = x.socket(socket.AF_INET, (X4, 0))
    tx = e.socket(socket.AF_INET, ("10.82.0.1", 0))
    try:
        rx.settimeout(0.1)
        for _ in range(50):
            tx.sendto(b"probe", rx.getsockname())
            try:
                rx.recv(64)
                break
            except socket.timeout:
                pass
        else:
            raise BenchError("topology: e cannot reach x through g")
    finally:
        rx.close()
        tx.close()
    return e, g, x


def napi_threads(ctx):
    """The NAPI kernel threads of the four veth ends, pinned: the relay's
    interface and the router's to the relay's CPUs, the ends' to the
    generator's.  Returns {role: [pid, ...]}; looked up before every tool
    run, because attaching XDP may give an interface new NAPI
    instances."""
    found = {role: [] for role in NAPI_ROLES}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % d) as f:
                comm = f.read().strip()
        except OSError:
            continue
        for role, dev in NAPI_ROLES.items():
            if comm.startswith("napi/%s-" % dev):
                found[role].append(int(d))
    for role, pids in found.items():
        if not pids:
            raise BenchError("no NAPI thread for %s (threaded NAPI on "
                             "veth needs Linux 5.12 or later)" %
                             NAPI_ROLES[role])
        cpus = ctx.tool_cpus if role == "ends" else ctx.relay_cpus
        for pid in pids:
            try:
                os.sched_setaffinity(pid, {int(c) for c in cpus.split(",")})
            except OSError as e:
                raise BenchError("pinning NAPI thread %d: %s" % (pid, e))
    return found


def stop_proc(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if p in STATE["procs"]:
        STATE["procs"].remove(p)
    if p in R.PROCS:
        R.PROCS.remove(p)


def cleanup():
    """Every process started, then the namespaces; idempotent."""
    if STATE["tearing"]:
        return
    STATE["tearing"] = True
    for p in list(STATE["procs"]):
        try:
            os.killpg(p.pid, signal.SIGKILL)    # each leads its session
        except ProcessLookupError:
            pass
        try:
            p.kill()
        except OSError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    STATE["procs"] = []
    topo = STATE["topo"]
    if topo is not None:
        problems = topo.teardown()
        for msg in problems:
            log("teardown: %s" % msg)
        STATE["topo"] = None


def on_signal(sig, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    cleanup()
    if STATE.get("tmp"):
        shutil.rmtree(STATE["tmp"], ignore_errors=True)
    log("interrupted by signal %d; processes and namespaces removed" % sig)
    os._exit(128 + sig)


# --- contenders --------------------------------------------------------------

def ns_free_port(ns, kind):
    def do():
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("0.0.0.0" if kind == socket.SOCK_DGRAM else "127.0.0.1",
                0))
        port = s.getsockname()[1]
        s.close()
        return port
    return ns.call(do)


def ns_stun_ping(ns, port, timeout=0.2):
    def do():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        try:
            txid = os.urandom(12)
            s.sendto(struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid,
                     (X4, port))
            data = s.recv(2048)
            return len(data) >= 20 and data[8:20] == txid
        except OSError:
            return False
        finally:
            s.close()
    return ns.call(do)


class Contender:
    name = ""

    def __init__(self, ctx):
        self.ctx = ctx
        self.proc = None
        self.logpath = os.path.join(ctx.tmp, "%s.log" % self.name)

    def spawn(self, argv):
        c = self.ctx
        with open(self.logpath, "a") as lf:
            self.proc = subprocess.Popen(
                c.x.exec_argv(["taskset", "-c", c.relay_cpus] + argv),
                stdout=lf, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        STATE["procs"].append(self.proc)
        STATE["started"] = True
        R.PROCS.append(self.proc)

    def wait_ready(self, nproc):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("%s exited with %s; log:\n%s" % (
                    self.name, self.proc.returncode, self.log_tail()))
            if (ns_stun_ping(self.ctx.x, self.port) and
                    len(R.tree_pids(self.proc.pid)) >= nproc):
                return
            time.sleep(0.05)
        raise BenchError("%s did not answer on %s:%d" %
                         (self.name, X4, self.port))

    def log_tail(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            stop_proc(self.proc)
            self.proc = None

    def counters(self):
        return None


class Ours(Contender):
    xdp = False

    def start(self):
        c = self.ctx
        self.port = ns_free_port(c.x, socket.SOCK_DGRAM)
        self.health = ns_free_port(c.x, socket.SOCK_STREAM)
        lo, hi = c.our_range
        self.secret = secrets.token_hex(32)
        cfg = os.path.join(c.tmp, "%s.yaml" % self.name)
        text = ("public_ip4: %s\n"
                "listen:\n  port: %d\n"
                "relay:\n  port_min: %d\n  port_max: %d\n"
                "workers: %d\n"
                "auth:\n  secret: \"%s\"\n"
                "limits:\n  error_rate: 0\n  max_allocations: 4096\n"
                "health:\n  listen: 127.0.0.1:%d\n"
                "log:\n  level: warn\n" %
                (X4, self.port, lo, hi, c.workers, self.secret,
                 self.health))
        if self.xdp:
            text += "xdp:\n  interface: %s\n  mode: native\n" % DEV_X
        with open(cfg, "w") as f:
            f.write(text)
        self.spawn([c.relay_bin, "-c", cfg])
        self.wait_ready(1 + c.workers)
        if self.xdp:
            deadline = time.monotonic() + 5
            while self.metrics().get("relay_xdp_attached") != 1.0:
                if time.monotonic() > deadline:
                    raise BenchError("the offload did not attach "
                                     "(relay_xdp_attached %r); log:\n%s" %
                                     (self.metrics().get(
                                         "relay_xdp_attached"),
                                      self.log_tail()))
                time.sleep(0.05)

    def metrics(self):
        def fetch():
            s = socket.create_connection(("127.0.0.1", self.health),
                                         timeout=3)
            try:
                s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                data = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        return data
                    data += d
            finally:
                s.close()
        raw = self.ctx.x.call(fetch).decode()
        out = {}
        for line in raw.split("\r\n\r\n", 1)[-1].splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def counters(self):
        """Packets relayed so far by the XDP program and by user space,
        and whether the program is attached."""
        m = self.metrics()
        out = {"attached": m.get("relay_xdp_attached", 0.0)}
        for kind in ("relay_xdp", "relay"):
            out[kind] = sum(m.get('%s_relayed_packets_total{direction="%s"}'
                                  % (kind, d), 0.0)
                            for d in ("client_to_peer", "peer_to_client"))
        return out

    def tool_args(self):
        return ["--server", "%s:%d" % (X4, self.port),
                "--secret", self.secret]


class OursXdp(Ours):
    name = "xdp"
    xdp = True


class OursUser(Ours):
    name = "user"


class Coturn(Contender):
    name = "coturn"

    def start(self):
        c = self.ctx
        self.port = ns_free_port(c.x, socket.SOCK_DGRAM)
        lo, hi = c.coturn_range
        self.password = secrets.token_hex(8)
        d = os.path.join(c.tmp, "coturn")
        os.makedirs(d, exist_ok=True)
        self.spawn([
            "turnserver", "-n", "--listening-ip", X4,
            "--listening-port", str(self.port), "--relay-ip", X4,
            "--min-port", str(lo), "--max-port", str(hi),
            "--no-tls", "--no-dtls", "--no-tcp", "--no-tcp-relay",
            "--relay-threads", str(c.workers),
            "--lt-cred-mech", "--user", "bench:" + self.password,
            "--realm", "firezone", "--no-cli",
            "--userdb", os.path.join(d, "turndb"),
            "--pidfile", os.path.join(d, "turnserver.pid"),
            "--log-file", os.path.join(d, "turnserver.log"),
            "--simple-log", "--no-stdout-log"])
        self.wait_ready(1)

    def tool_args(self):
        return ["--server", "%s:%d" % (X4, self.port), "--user", "bench",
                "--password", self.password]


# --- measuring ---------------------------------------------------------------

def user_ticks():
    """pid -> utime + stime of every user-space process (kernel threads
    left out: ksoftirqd and the like may be doing our packets' work)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        v = s[s.rfind(")") + 2:].split()
        if int(v[6]) & PF_KTHREAD:
            continue
        out[int(d)] = int(v[11]) + int(v[12])
    return out


def run_tool(ctx, c, rnd, size, d):
    """One turnbench run against c; its JSON result with this run's
    additions, or None."""
    args = (c.tool_args() +
            ["--cpu-pid", str(c.proc.pid), "--cpus", ctx.relay_mask,
             "--peer-bind", PEER4, "--client-net", CLIENT_NET,
             "--flows", str(FLOWS), "--dir", d, "--size", str(size),
             "--rate", "0", "--window", str(ctx.window),
             "--duration", str(ctx.duration),
             "--warmup", str(ctx.warmup)])
    argv = ctx.e.exec_argv(["taskset", "-c", ctx.tool_cpus,
                            ctx.turnbench] + args)
    napi = napi_threads(ctx)
    order = [(role, pid) for role in NAPI_ROLES for pid in napi[role]]
    argv += ["--cpu-extra", ",".join(str(pid) for _, pid in order)]
    before = c.counters()
    ours = set(R.tree_pids(c.proc.pid)) | {os.getpid()}
    t0, u0 = time.monotonic(), user_ticks()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    STATE["procs"].append(p)
    try:
        out, err = p.communicate(timeout=TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        log("%s %d B %s: timed out" % (c.name, size, d))
        return None
    finally:
        STATE["procs"].remove(p)
    u1, elapsed = user_ticks(), time.monotonic() - t0
    after = c.counters()
    ours |= {p.pid}
    others = sum(t - u0.get(pid, 0) for pid, t in u1.items()
                 if pid not in ours and pid in u0)
    res = None
    for line in out.splitlines():
        if line.startswith("{"):
            res = json.loads(line)
    if p.returncode != 0 or res is None or "error" in res or \
            not res.get("window_s"):
        log("%s %d B %s: failed (%s) %s" % (c.name, size, d, p.returncode,
                                            err.strip()[-300:]))
        return None
    res.update({"metric": "XDP", "round": rnd, "contender": c.name,
                "workers": ctx.workers,
                "others_cpu_s": others / HZ * res["window_s"] / elapsed})
    for role in NAPI_ROLES:
        res["napi_%s_cpu_s" % role] = sum(
            v for (r, _), v in zip(order, res.get("extra_cpu_s", []))
            if r == role)
    if before is not None and after is not None:
        dx = after["relay_xdp"] - before["relay_xdp"]
        du = after["relay"] - before["relay"]
        res.update({"xdp_attached": after["attached"],
                    "xdp_relayed": dx, "user_relayed": du,
                    "offloaded": dx / (dx + du) if dx + du else 0.0})
    ctx.jsonl.write(json.dumps(res) + "\n")
    ctx.jsonl.flush()
    if c.name == "xdp" and (res.get("xdp_attached") != 1.0 or
                            not res.get("xdp_relayed")):
        log("xdp %d B %s: nothing offloaded (attached %r, XDP relayed %r): "
            "result not counted" % (size, d, res.get("xdp_attached"),
                                    res.get("xdp_relayed")))
        return None
    return res


def derive(r):
    """The figures of one result (CPU as CPU-seconds per second)."""
    w, pkts = r["window_s"], r["pkts"]

    def per(cpu_s):
        return pkts / cpu_s / 1000 if cpu_s > 0.01 * w else None
    path = r["relay_cpu_s"] + r["napi_relay_cpu_s"]
    router = r["napi_router_in_cpu_s"] + r["napi_router_out_cpu_s"]
    sysgen = r["sys_cpu_s"] - r["tool_cpu_s"]
    return {
        "kpps": r["pps"] / 1000,
        "kpps_path": per(path),
        "path_cpu": path / w,
        "napi_cpu": r["napi_relay_cpu_s"] / w,
        "router_cpu": router / w,
        "gen_cpu": r["tool_cpu_s"] / w,
        "ends_napi_cpu": r["napi_ends_cpu_s"] / w,
        "kpps_sys": per(r["sys_cpu_s"]),
        "sys_cpu": r["sys_cpu_s"] / w,
        "kpps_sysgen": per(sysgen),
        "sysgen_cpu": sysgen / w,
        "kpps_proc": per(r["relay_cpu_s"]),
        "proc_cpu": r["relay_cpu_s"] / w,
        "others_cpu": r["others_cpu_s"] / w,
        "offloaded": r.get("offloaded"),
        "loss": (r.get("c2p") or r.get("p2c") or r.get("rtt") or
                 {}).get("loss"),
    }


def play_round(ctx, cls, rnd, cases):
    waited, busy = R.wait_quiet(ctx.round_wait)
    hog = R.top_others() if busy > R.QUIET_BUSY else ""
    c = cls(ctx)
    res = {"contender": c.name, "round": rnd, "runs": {}}
    c.start()
    try:
        for size, d in cases:
            r = run_tool(ctx, c, rnd, size, d)
            if r is not None:
                res["runs"][(size, d)] = r
    finally:
        c.stop()
    others = [r["others_cpu_s"] / (r["window_s"] * os.cpu_count())
              for r in res["runs"].values()]
    res["interference"] = {"waited_s": waited, "busy_before": busy,
                           "busiest": hog,
                           "other_cpu": (statistics.mean(others)
                                         if others else 0.0)}
    log("round %s %s: %d of %d runs" % (rnd, c.name, len(res["runs"]),
                                        len(cases)))
    return res


# --- report ------------------------------------------------------------------

def summarise(ctx, rounds, cases, out):
    fmt, med, ratio = R.fmt, R.med, R.ratio
    rows = {}
    for case in cases:
        for name in NAMES:
            vals = [derive(r["runs"][case]) for r in rounds
                    if r["contender"] == name and case in r["runs"]]
            if not vals:
                continue
            row = {"metric": "XDP", "size": case[0], "flows": FLOWS,
                   "dir": case[1], "contender": name, "n": len(vals)}
            for k in vals[0]:
                row[k] = med([v[k] for v in vals])
            rows[(case, name)] = row
    out.append("\n### XDP offload: relayed kpps per CPU-second, namespace "
               "topology, %d flows, flat out with %d datagrams in flight "
               "(median of %d rounds)\n" % (FLOWS, ctx.window, ctx.rounds))
    out.append("CPU columns are CPU-seconds per second of the window.  "
               "*relay path* = the relay's process tree plus the NAPI "
               "thread of its interface (where the XDP program, or the "
               "kernel's receive path up to the relay's socket, runs), "
               "from /proc/PID/stat: the figure to compare.  *router*: "
               "the router's NAPI threads (two IP forwards per datagram, "
               "the same for all).  *sys*: busy time of all CPUs from "
               "/proc/stat; *sys-gen* takes the generator's own CPU out "
               "of it, leaving relay path, router, the ends' receive path "
               "and other users' work.  *relay proc*: the relay's process "
               "tree alone; for xdp it misses the offloaded work, so that "
               "figure (\\*) means nothing.  *others*: other users' "
               "processes (interference, inside sys).\n")
    out.append("| size | dir | contender | kpps | offloaded | "
               "kpps/relay-path-CPU-s | relay path CPU | router CPU | "
               "gen CPU | kpps/sys-CPU-s | kpps/(sys-gen)-CPU-s | "
               "sys-gen CPU | kpps/relay-proc-CPU-s | others CPU | loss |")
    out.append("|" + "---|" * 15)
    for case in cases:
        for name in NAMES:
            row = rows.get((case, name))
            if row is None:
                out.append("| %d | %s | %s |%s" % (case[0], case[1], name,
                                                    " - |" * 12))
                continue
            ctx.summary.append(row)
            off, loss = row["offloaded"], row["loss"]
            out.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | "
                       "%s | %s | %s | %s | %s |" % (
                           case[0], case[1], name, fmt(row["kpps"]),
                           "-" if off is None else "%.1f %%" % (100 * off),
                           fmt(row["kpps_path"]), fmt(row["path_cpu"], 2),
                           fmt(row["router_cpu"], 2),
                           fmt(row["gen_cpu"], 2), fmt(row["kpps_sys"]),
                           fmt(row["kpps_sysgen"]),
                           fmt(row["sysgen_cpu"], 2),
                           fmt(row["kpps_proc"]) + ("\\*" if name == "xdp"
                                                    else ""),
                           fmt(row["others_cpu"], 2),
                           "-" if loss is None else "%.1f %%" % (100 * loss)))
    out.append("\n### XDP offload: ratios of the medians above\n")
    out.append("| size | dir | xdp/user relay path | xdp/coturn relay path "
               "| xdp/user sys-gen | xdp/coturn sys-gen | xdp/user sys | "
               "xdp/coturn sys | xdp/user kpps | xdp/coturn kpps |")
    out.append("|" + "---|" * 10)
    for case in cases:
        x = rows.get((case, "xdp"), {})
        u = rows.get((case, "user"), {})
        t = rows.get((case, "coturn"), {})
        row = {"metric": "XDP-ratio", "size": case[0], "flows": FLOWS,
               "dir": case[1]}
        cells = []
        for k in ("kpps_path", "kpps_sysgen", "kpps_sys", "kpps"):
            for name, other in (("user", u), ("coturn", t)):
                v = ratio(x.get(k), other.get(k))
                row["xdp_vs_%s_%s" % (name, k)] = v
                cells.append(fmt(v, 2))
        ctx.summary.append(row)
        out.append("| %d | %s | %s |" % (case[0], case[1],
                                          " | ".join(cells)))
    return rows


def main(a, run_module):
    """bench/run --xdp; a is bench/run's parsed arguments."""
    global R
    R = run_module
    if os.geteuid() != 0:
        log("needs root (network namespaces, veth pairs and XDP)")
        return 1
    reason = netns_helper.probe()
    if reason:
        log(reason)
        return 1
    ctx = R.Ctx()
    ctx.smoke = a.smoke
    ctx.rounds = 1 if a.smoke else max(1, a.rounds)
    ctx.workers = a.workers
    ctx.builddir = os.path.abspath(a.builddir)
    ctx.relay_bin = os.environ.get("RELAY_BIN") or os.path.join(
        ctx.builddir, "src", "firezone-relay")
    ctx.turnbench = os.path.join(ctx.builddir, "bench", "turnbench")
    ctx.udpfwd = os.path.join(ctx.builddir, "bench", "udpfwd")
    ctx.tabsize = os.path.join(ctx.builddir, "bench", "tabsize")
    pass_obj = os.path.join(ctx.builddir, "src", "xdp", "xdp_pass.bpf.o")
    ctx.round_wait = 1.0 if a.smoke else R.ROUND_WAIT_S
    ctx.duration, ctx.warmup = (0.5, 0.2) if a.smoke else (DURATION_S,
                                                           WARMUP_S)
    ctx.window = WINDOW
    ctx.summary = []
    ctx.our_range, ctx.coturn_range = R.relay_ranges()
    ctx.relay_cpus, ctx.tool_cpus, ctx.relay_mask = R.cpu_sets(a.workers)
    cases = SMOKE_CASES if a.smoke else CASES
    have_coturn = (not a.no_coturn and shutil.which("turnserver")
                   is not None)
    contenders = [OursXdp, OursUser] + ([Coturn] if have_coturn else [])
    jpath = a.json or os.path.join(ctx.builddir, "bench", "last-xdp.jsonl")
    md = a.md or (None if a.smoke else
                  os.path.join(ctx.builddir, "bench", "last-xdp.md"))
    ctx.tmp = STATE["tmp"] = tempfile.mkdtemp(prefix="rlybench-xdp-")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    ok = False
    try:
        relay_src = ctx.relay_bin
        R.build(ctx)
        if not build_has_xdp(ctx.relay_bin, ctx.tmp):
            raise BenchError("%s was built without XDP support: "
                             "./configure --enable-xdp && make (needs "
                             "libbpf-dev and clang)" %
                             relay_src)
        if not os.path.exists(pass_obj):
            raise BenchError("%s is missing (it is built with "
                             "--enable-xdp)" % pass_obj)
        try:
            ctx.e, ctx.g, ctx.x = build_topology(pass_obj)
        except NetnsUnavailable as e:
            raise BenchError(str(e))
        ctx.jsonl = open(jpath, "w")
        m = R.machine()
        out = ["## bench/run --xdp results", "",
               "Machine: %d CPUs, %s, kernel %s.  Namespaces ends == "
               "router == relay (XDP on the relay's veth, native mode, "
               "threaded NAPI); relay and router pinned to CPU %s, "
               "generator and the ends' NAPI thread to CPU %s (W=%d).  "
               "%s s windows after %s s warm-up." %
               (m["nproc"], m["cpu"], m["kernel"], ctx.relay_cpus,
                ctx.tool_cpus, ctx.workers, fmt_s(ctx.duration),
                fmt_s(ctx.warmup))]
        if not have_coturn:
            out.append("\ncoturn's turnserver is not installed (or "
                       "--no-coturn): its rows are empty.")
        rounds = []
        warm = [] if ctx.smoke else [0]
        for rnd in warm + list(range(1, ctx.rounds + 1)):
            for cls in contenders:
                r = play_round(ctx, cls, rnd, cases)
                if rnd > 0:
                    rounds.append(r)
        rows = summarise(ctx, rounds, cases, out)
        out.append("\n### Interference (per round: wait for a quiet "
                   "machine, busy share of all CPUs before it, CPU of "
                   "other users' processes during the windows as a share "
                   "of all CPUs)\n")
        out.append("| round | contender | waited s | busy before | "
                   "other CPU during | busiest then |")
        out.append("|---|---|---|---|---|---|")
        for r in rounds:
            i = r["interference"]
            out.append("| %s | %s | %.1f | %.0f %% | %.0f %% | %s |" %
                       (r["round"], r["contender"], i["waited_s"],
                        i["busy_before"] * 100, i["other_cpu"] * 100,
                        i["busiest"] or "-"))
        out.append("\nRun time %.0f s; every tool result as JSON lines in "
                   "%s" % (time.monotonic() - t0, jpath))
        missing = [n for n in ("xdp", "user") if not any(
            (case, n) in rows for case in cases)]
        ok = not missing
        if missing:
            log("no result at all for: %s" % ", ".join(missing))
    except BenchError as e:
        log(str(e))
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup()
        if getattr(ctx, "jsonl", None):
            ctx.jsonl.close()
        if ok or not STATE["started"]:
            shutil.rmtree(ctx.tmp, ignore_errors=True)
        else:
            log("logs kept in %s" % ctx.tmp)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    text = "\n".join(out) + "\n"
    print(text)
    for row in ctx.summary:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                          for k, v in row.items()}))
    if md:
        with open(md, "w") as f:
            f.write(text)
    return 0 if ok else 1


def fmt_s(v):
    return ("%.1f" % v).rstrip("0").rstrip(".")
