"""Network namespaces for the firezone-relay topology tests.

Creates named network namespaces (``ip netns add``) with veth pairs
between them, runs commands inside them (``ip netns exec``), and opens
sockets inside them from this process: setns(2) on the calling thread,
socket(), then back to the original namespace.  A socket belongs to the
namespace it was created in for its whole life, so the test keeps one
Python process and needs no helper processes for its clients and peers.

Everything created is recorded and removed by ``Topology.teardown()``,
which is idempotent and safe to call from a signal handler, a finally
block and an atexit hook: processes started in the namespaces are killed
(by pid, children first), then each namespace is deleted (its veth ends go
with it).  Veth pairs are created directly inside the namespaces
(``ip -n A link add ... peer name ... netns B``), so no interface ever
lives in, or is left behind in, the caller's namespace.

Only the Python standard library (and iproute2's ``ip``) is used.
"""

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time

CLONE_NEWNET = 0x40000000
CMD_TIMEOUT = 10.0

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsUnavailable(Exception):
    """Namespaces or veth pairs cannot be created here (not a failure of
    the relay): the test skips."""


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: %s" % os.strerror(e))


def run(argv, check=True, timeout=CMD_TIMEOUT):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(argv), r.returncode,
                                                 (r.stderr or r.stdout).strip()))
    return r


def probe():
    """None if namespaces can be used, else the reason why not."""
    if os.geteuid() != 0:
        return "not root: network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    try:
        r = run(["ip", "netns", "list"], check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "`ip netns list` failed: %s" % e
    if r.returncode != 0:
        return "`ip netns` is unavailable: %s" % (r.stderr or r.stdout).strip()
    if not os.path.exists("/proc/self/ns/net"):
        return "no /proc/self/ns/net"
    return None


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(")") + 2:].split()[0] not in ("Z", "X")


def descendants(pid):
    """Pids below pid (children, grandchildren...)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        if len(rest) > 1:
            kids.setdefault(int(rest[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


class Netns:
    def __init__(self, topo, name):
        self.topo = topo
        self.name = name
        self.path = "/run/netns/%s" % name

    def ip(self, *args, check=True):
        return run(["ip", "-n", self.name] + list(args), check=check)

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def sysctl(self, key, value=None):
        """Read or write /proc/sys/KEY inside the namespace."""
        path = "/proc/sys/" + key.replace(".", "/")
        if value is None:
            return run(self.exec_argv(["cat", path])).stdout.strip()
        run(self.exec_argv(["sh", "-c", 'echo %s > "$0"' % value, path]))
        return None

    @contextlib.contextmanager
    def entered(self):
        """Switch this thread into the namespace for the with-block."""
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            there = os.open(self.path, os.O_RDONLY)
            try:
                _setns(there)
            finally:
                os.close(there)
            try:
                yield self
            finally:
                _setns(here)
        finally:
            os.close(here)

    def socket(self, family, bind_addr):
        """A UDP socket created in this namespace and bound to bind_addr."""
        with self.entered():
            s = socket.socket(family, socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind(bind_addr)
            except BaseException:
                s.close()
                raise
        return s

    def call(self, fn, *args, **kw):
        """fn(*args) with this thread inside the namespace (objects such as
        sockets created by fn stay in it)."""
        with self.entered():
            return fn(*args, **kw)

    def spawn(self, argv, **kw):
        p = subprocess.Popen(self.exec_argv(argv), **kw)
        self.topo.procs.append(p)
        return p

    def addresses(self):
        return run(["ip", "-n", self.name, "-o", "addr", "show"]).stdout

    def routes(self):
        return (run(["ip", "-n", self.name, "-4", "route", "show"]).stdout +
                run(["ip", "-n", self.name, "-6", "route", "show"]).stdout)


class Topology:
    """A set of namespaces named <prefix>-<pid>-<role>."""

    def __init__(self, prefix):
        self.prefix = "%s-%d" % (prefix, os.getpid())
        self.namespaces = []
        self.procs = []
        self._torn = False

    def add_ns(self, role, ipv6=True, ipv4=True):
        """A namespace with lo up.  ipv6=False disables IPv6 in it entirely
        (no ::1, no link-local, no IPv6 socket can send anywhere)."""
        ns = Netns(self, "%s-%s" % (self.prefix, role))
        r = run(["ip", "netns", "add", ns.name], check=False)
        if r.returncode != 0:
            raise NetnsUnavailable("`ip netns add %s` failed: %s"
                                   % (ns.name, (r.stderr or r.stdout).strip()))
        self.namespaces.append(ns)
        if not ipv6:
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
        ns.ip("link", "set", "lo", "up")
        if not ipv4:
            # lo keeps 127.0.0.1 otherwise; an IPv6-only host has none
            ns.ip("addr", "del", "127.0.0.1/8", "dev", "lo", check=False)
        return ns

    def link(self, a, a_if, b, b_if):
        """A veth pair a:a_if <-> b:b_if, created inside the namespaces and
        brought up."""
        r = a.ip("link", "add", a_if, "type", "veth", "peer", "name", b_if,
                 "netns", b.name, check=False)
        if r.returncode != 0:
            raise NetnsUnavailable("cannot create a veth pair: %s"
                                   % (r.stderr or r.stdout).strip())
        a.ip("link", "set", a_if, "up")
        b.ip("link", "set", b_if, "up")

    @staticmethod
    def addr(ns, ifname, cidr):
        """Add an address; IPv6 ones with nodad, or binds fail while the
        address is tentative."""
        extra = ["nodad"] if ":" in cidr else []
        ns.ip("addr", "add", cidr, "dev", ifname, *extra)

    def kill_procs(self):
        for p in self.procs:
            if p.poll() is not None:
                continue
            for pid in [p.pid] + descendants(p.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                pass

    def teardown(self):
        if self._torn:
            return []
        self._torn = True
        problems = []
        try:
            self.kill_procs()
        except Exception as e:  # keep going: the namespaces must go
            problems.append("killing processes: %s" % e)
        for ns in reversed(self.namespaces):
            # a namespace whose processes are gone is destroyed with its
            # last reference; `ip netns del` drops the bind mount
            r = run(["ip", "netns", "del", ns.name], check=False)
            if r.returncode != 0 and os.path.exists(ns.path):
                problems.append("ip netns del %s: %s"
                                % (ns.name, r.stderr.strip()))
        left = [ns.name for ns in self.namespaces if os.path.exists(ns.path)]
        if left:
            problems.append("namespaces left behind: %s" % " ".join(left))
        return problems


def wait_until(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(step)
