#!/usr/bin/python3
"""coturn's turnutils_uclient against turnutils_peer through the relay,
channels only (SPEC §1, §2.2 channel range 0x4000-0x7FFF, §5).

uclient flags (coturn 4.6): no -s, so data goes through ChannelBind +
ChannelData (-s would use Send indications, which the relay does not
provide); -c: no RTCP allocation pair; -I: no CreatePermission.  uclient
sends EVEN-PORT (ignored, §2.4) and draws channel numbers from 0x4000-0x7FFF.
It also makes a "probe" allocation on another socket first and leaves
allocations behind, so limits.error_rate is 0 (§2.12).

10 clients at -z 20 ms.  uclient's -m N gives all N clients ONE username,
and SPEC §4.1 / §2.6.2 step 7 keep at most one allocation per USERNAME (the
newest wins), so `-m 10` with one credential would keep only the last
client's allocation (measured: 90 % loss, as specified).  The 10 clients
therefore run as 10 concurrent uclient processes (`-m 1`), each with its
own credentials from `firezone-relay credentials` (realm firezone).

Asserted: every uclient exits 0 with no error lines, each sent exactly -n
messages, data was actually relayed (received > 0), and the loss reported
by uclient, summed over the 10, is at most 0.1 %.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403

CLIENTS = 10
MESSAGES = 200          # per client
INTERVAL_MS = 20
LENGTH = 120


def test():
    for tool in ("turnutils_uclient", "turnutils_peer"):
        if shutil.which(tool) is None:
            raise Skip("%s not installed (coturn; scripts/deps.sh installs "
                       "it)" % tool)
    relay = track(Relay("uclient", workers=2,
                        extra={"limits": {"error_rate": 0}}))
    relay.start()

    # turnutils_peer listens on PORT and PORT+1 (uclient binds a channel to
    # both); both must be free and outside the relay range
    avoid = set(range(relay.port_min, relay.port_max + 1)) | {relay.port}
    pp = pick_udp_ports_consecutive(2, avoid=avoid)[0]
    peer_log = open(os.path.join(relay.dir, "turnutils_peer.log"), "wb")
    peer = spawn(["turnutils_peer", "-L", "127.0.0.1", "-p", str(pp)],
                 stdout=peer_log, stderr=subprocess.STDOUT,
                 stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 5.0
    while port_is_free(pp, check6=False) and time.monotonic() < deadline:
        check(peer.poll() is None, "turnutils_peer exited with %r"
              % peer.returncode)
        time.sleep(0.05)
    check(not port_is_free(pp, check6=False),
          "turnutils_peer not listening on 127.0.0.1:%d" % pp)
    log("turnutils_peer on 127.0.0.1:%d,%d" % (pp, pp + 1))

    procs = []
    for i in range(CLIENTS):
        user, pw = relay.credentials(ttl=3600)
        out = os.path.join(relay.dir, "uclient-%d.log" % i)
        argv = ["turnutils_uclient", "-c", "-I", "-m", "1",
                "-z", str(INTERVAL_MS), "-n", str(MESSAGES),
                "-l", str(LENGTH), "-e", "127.0.0.1", "-r", str(pp),
                "-p", str(relay.port), "-u", user, "-w", pw, "127.0.0.1"]
        f = open(out, "wb")
        procs.append((spawn(argv, stdout=f, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL), out, f))
    log("started %d turnutils_uclient -c -I -m 1 -z %d -n %d -l %d"
        % (CLIENTS, INTERVAL_MS, MESSAGES, LENGTH))

    deadline = time.monotonic() + 60.0
    for p, out, f in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(2)
            raise TestFailure("turnutils_uclient still running after 60 s; "
                              "its log:\n%s" % open(out).read()[-3000:])
        f.close()

    tot_sent = tot_recv = tot_lost = 0
    for i, (p, out, f) in enumerate(procs):
        text = open(out, errors="replace").read()
        check(p.returncode == 0, "uclient %d exited %d:\n%s"
              % (i, p.returncode, text[-3000:]))
        # "error 437" + "trying allocate again" is uclient's expected retry
        # on a source port that still has an allocation (uclient leaves
        # its probe allocations behind); any other error line fails
        errs = [l for l in text.splitlines()
                if re.search(r"(?i)\berror\b|cannot|wrong integrity", l)
                and not re.search(r"\berror 437\b", l)]
        check(not errs, "uclient %d reported errors: %r" % (i, errs[:5]))
        m = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", text,
                       re.M)
        check(m, "uclient %d: no final message counts in:\n%s"
              % (i, text[-2000:]))
        sent, recv = int(m[-1][0]), int(m[-1][1])
        lost = re.findall(r"Total lost packets (\d+) \(([\d.]+)%\)", text)
        check(lost, "uclient %d: no 'Total lost packets' line" % i)
        check(sent == MESSAGES, "uclient %d sent %d messages, expected %d"
              % (i, sent, MESSAGES))
        tot_sent += sent
        tot_recv += min(recv, sent)
        tot_lost += int(lost[-1][0])
        log("uclient %d: sent %d received %d lost %s (%s%%)"
            % (i, sent, recv, lost[-1][0], lost[-1][1]))

    loss = 100.0 * tot_lost / tot_sent
    log("uclient total: sent %d, received %d, lost %d = %.3f %%"
        % (tot_sent, tot_recv, tot_lost, loss))
    check(tot_recv > 0, "nothing was relayed")
    check(tot_lost == tot_sent - tot_recv, "uclient's loss %d disagrees with "
          "its counts %d - %d" % (tot_lost, tot_sent, tot_recv))
    check(loss <= 0.1, "loss %.3f %% > 0.1 %%" % loss)
    check(relay.proc.poll() is None, "the relay exited")
    peer.terminate()
    peer.wait(5)
    relay.stop()


if __name__ == "__main__":
    main(test)
