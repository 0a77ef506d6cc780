#!/usr/bin/python3
"""SPEC case C68 (standalone, no secret file) and SPEC §3.1 / §3.8.

The relay starts with auth.secret_file in a directory that does not exist
yet, under a permissive umask (0), and must create the directory with mode
0700 and the file with mode 0600 holding 64 lowercase hex digits and a
final newline, through a temporary file and a rename (nothing else left in
the directory).  The secret is never logged.  Credentials printed by
`firezone-relay credentials` from that file follow SPEC §3.3 (checked with
the harness's own computation) and work for an Allocate.  After a restart
the file is reused unchanged and the earlier credentials still work.
(The /readyz part of C68 belongs to a later issue.)
"""

import os
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403


def allocate_and_relay(relay, creds):
    c = relay.client(creds)
    try:
        _, relayed = allocate_checked(relay, c)
        peer = EchoPeer()
        c.bind_ok(0x4000, peer.addr)
        c.send_channel(0x4000, b"secret-test")
        got = c.recv_data(2.0)
        check(got is not None and got[:2] == (0x4000, b"secret-test"),
              "echo through the relay: got %r" % (got,))
        check(peer.sources == {relayed: 1}, "peer saw %r, expected one "
              "datagram from %r" % (peer.sources, relayed))
        peer.stop()
        return relayed
    finally:
        c.close()


def test():
    relay = track(Relay("secret-file", workers=1))
    state = os.path.dirname(relay.secret_path)
    check(not os.path.exists(state), "fixture: %s exists" % state)
    old = os.umask(0)
    try:
        relay.start()
    finally:
        os.umask(old)

    # ---- the directory and the file
    st = os.stat(state)
    check(stat.S_IMODE(st.st_mode) == 0o700, "C68: directory %s has mode %o,"
          " expected 0700" % (state, stat.S_IMODE(st.st_mode)))
    st = os.stat(relay.secret_path)
    check(stat.S_ISREG(st.st_mode), "C68: %s is not a regular file"
          % relay.secret_path)
    check(stat.S_IMODE(st.st_mode) == 0o600, "C68: secret file mode %o, "
          "expected 0600" % stat.S_IMODE(st.st_mode))
    with open(relay.secret_path, "rb") as f:
        content = f.read()
    check(re.fullmatch(rb"[0-9a-f]{64}\n", content) is not None,
          "C68: secret file holds %r, expected 64 lowercase hex digits and "
          "a newline" % content)
    check(sorted(os.listdir(state)) == ["secret"], "C68: %s holds %r "
          "(a temporary file left behind?)" % (state, os.listdir(state)))
    secret = content.decode().strip()
    log("C68 ok: %s created 0700, secret file 0600, 64 hex digits + LF"
        % state)

    # ---- credentials from it follow §3.3, and work
    user, pw = relay.credentials(ttl=3600)
    expiry, salt = user.split(":", 1)
    check(pw == turn_rest_password(expiry, secret, salt),
          "credentials password %r does not derive from the file's secret "
          "(SPEC §3.3)" % pw)
    relayed = allocate_and_relay(relay, (user, pw))
    log("Allocate with those credentials ok: relayed %r" % (relayed,))

    check(secret not in relay.log_text(), "the secret appears in the log")
    check(pw not in relay.log_text(), "a password appears in the log")

    # ---- restart: the file is reused, credentials still valid
    mtime = os.stat(relay.secret_path).st_mtime_ns
    relay.stop()
    relay.start()
    with open(relay.secret_path, "rb") as f:
        check(f.read() == content, "the secret file changed on restart")
    check(os.stat(relay.secret_path).st_mtime_ns == mtime,
          "the secret file was rewritten on restart")
    allocate_and_relay(relay, (user, pw))
    log("restart ok: same secret, old credentials accepted")
    check(secret not in relay.log_text(), "the secret appears in the log")
    relay.stop()


if __name__ == "__main__":
    main(test)
