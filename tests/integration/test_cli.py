#!/usr/bin/python3
"""The command line of the real binary: configuration checking (-t, -T),
precedence, error locations and exit codes, --version, the credentials
subcommand.

SPEC cases: C21, C64, C65, C66, C67; SPEC §9.1 (missing -c file), §9.4
(-t, -T, --version, unknown option, --flag=VALUE), §10.6 (exit codes),
§3.8 (credentials: secret sources, salt check).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import *  # noqa: E402,F401,F403

VECTOR_SECRET = \
    "4c98bf59c99b3e467ecd7cf9d6b3e5279645fca59be67bc5bb4af3cf653761ab"


def run(args, env=None, cwd=None):
    r = subprocess.run([RELAY_BIN] + args, capture_output=True, text=True,
                       timeout=15, env=clean_env(env), cwd=cwd)
    log("$ %s%s -> exit %d" % (" ".join("%s=%s" % kv for kv in
                                        (env or {}).items()) + " " if env
                               else "", " ".join(["firezone-relay"] + args),
                               r.returncode))
    return r


def show(r):
    return "exit %d\n--- stdout:\n%s--- stderr:\n%s" % (
        r.returncode, r.stdout, r.stderr)


def yaml_section(text, section):
    """The 'key: value' lines of one top-level mapping of -T's output."""
    out = {}
    inside = False
    for line in text.splitlines():
        if not line.startswith(" "):
            inside = line.rstrip() == section + ":"
            continue
        if inside and ":" in line:
            k, v = line.strip().split(":", 1)
            out[k] = v.strip()
    return out


def test():
    need_binary()
    d = tempfile.mkdtemp(prefix="fzr-it-cli-")
    version = relay_version()

    def write(name, text):
        p = os.path.join(d, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    base = ("public_ip4: 127.0.0.1\n"
            "listen:\n"
            "  bind_ip4: 127.0.0.1\n"
            "  port: 3478\n"
            "relay:\n"
            "  port_min: 50000\n"
            "  port_max: 50199\n"
            "health:\n"
            "  listen: 127.0.0.1:18080\n")

    # ---- --version, --help
    r = run(["--version"])
    check(r.returncode == 0 and r.stdout == "firezone-relay %s\n" % version,
          "--version: " + show(r))
    r = run(["-V"])
    check(r.returncode == 0 and r.stdout == "firezone-relay %s\n" % version,
          "-V: " + show(r))
    r = run(["--help"])
    check(r.returncode == 0 and "credentials" in r.stdout, "--help: "
          + show(r))

    # ---- unknown option, missing argument: usage error 64
    for args in (["--no-such-option"], ["-x"], ["-c"],
                 ["--listen-port"]):
        r = run(args)
        check(r.returncode == 64, "%r: expected exit 64: %s" % (args, show(r)))

    # ---- missing -c file: 78
    missing = os.path.join(d, "does-not-exist.yaml")
    r = run(["-c", missing, "-t"])
    check(r.returncode == 78, "missing -c file: expected 78: " + show(r))
    check(missing in r.stderr, "missing -c file: the path is not named: "
          + show(r))

    # ---- -t on a valid file
    ok = write("ok.yaml", base + "auth:\n  secret: %s\n" % VECTOR_SECRET)
    r = run(["-c", ok, "-t"])
    check(r.returncode == 0, "-t on a valid file: " + show(r))
    check("firezone-relay: configuration OK" in r.stderr,
          "-t: 'firezone-relay: configuration OK' not on stderr: " + show(r))
    check(VECTOR_SECRET not in r.stdout + r.stderr, "-t printed the secret")

    # ---- C64: unknown key limits.foo at line 12, column 3
    c64 = write("c64.yaml", base +
                "limits:\n"            # line 10
                "  error_rate: 0\n"    # line 11
                "  foo: 1\n")          # line 12, column 3
    with open(c64) as f:
        lines = f.read().splitlines()
    check(lines[11] == "  foo: 1", "C64 fixture: line 12 is %r" % lines[11])
    r = run(["-c", c64, "-t"])
    check(r.returncode == 78, "C64: expected exit 78: " + show(r))
    want = "%s:12:3: limits.foo: unknown key" % c64
    check(want in r.stderr, "C64: %r not on stderr: %s" % (want, show(r)))

    # ---- C65: no public IP, LISTEN_PORT=abc
    c65 = write("c65.yaml", "listen:\n  bind_ip4: 127.0.0.1\n"
                "health:\n  listen: 127.0.0.1:18080\n")
    r = run(["-c", c65, "-t"], env={"LISTEN_PORT": "abc"})
    check(r.returncode == 78, "C65: expected exit 78: " + show(r))
    check("public_ip4" in r.stderr, "C65: no error naming public_ip4: "
          + show(r))
    check("environment LISTEN_PORT" in r.stderr,
          "C65: no error naming 'environment LISTEN_PORT': " + show(r))
    check(r.stdout == "", "C65: stdout not empty: " + show(r))

    # ---- C66: -T redacts the token (and the secret)
    token = "tok-%s-SECRETVALUE" % os.urandom(8).hex()
    r = run(["-c", ok, "-T"], env={"FIREZONE_TOKEN": token,
                                   "FIREZONE_API_URL":
                                   "http://127.0.0.1:9/api"})
    check(r.returncode == 0, "C66: -T: " + show(r))
    portal = yaml_section(r.stdout, "portal")
    check(portal.get("token") == '"<redacted>"',
          "C66: portal.token printed as %r, expected \"<redacted>\": %s"
          % (portal.get("token"), show(r)))
    check(token not in r.stdout and token not in r.stderr,
          "C66: the token appears in the output: " + show(r))
    check("http://127.0.0.1:9/api" in portal.get("url", ""),
          "C66: portal.url from FIREZONE_API_URL not shown: " + show(r))
    auth = yaml_section(r.stdout, "auth")
    check(auth.get("secret") == '"<redacted>"', "C66: auth.secret printed as"
          " %r: %s" % (auth.get("secret"), show(r)))
    check(VECTOR_SECRET not in r.stdout + r.stderr,
          "C66: the secret appears in the output")
    # every key of §9.2, in §9.2 order
    order = ["listen:", "public_ip4:", "public_ip6:", "relay:", "workers:",
             "portal:", "auth:", "peers:", "limits:", "health:", "metrics:",
             "log:", "user:", "group:", "rng_seed:", "xdp:"]
    tops = [l.split(" ")[0] for l in r.stdout.splitlines()
            if l and not l.startswith((" ", "#", "-"))]
    check(tops == order, "-T top-level keys %r, expected %r" % (tops, order))

    # ---- C67: flag > environment > file
    c67 = write("c67.yaml", base.replace("port: 3478", "port: 5000"))
    r = run(["-c", c67, "-T", "--listen-port", "6000"],
            env={"LISTEN_PORT": "4000"})
    check(r.returncode == 0, "C67: " + show(r))
    listen = yaml_section(r.stdout, "listen")
    check(listen.get("port") == "6000", "C67: listen.port %r, expected 6000:"
          " %s" % (listen.get("port"), show(r)))
    r = run(["-c", c67, "-T"], env={"LISTEN_PORT": "4000"})
    check(yaml_section(r.stdout, "listen").get("port") == "4000",
          "environment over file: " + show(r))
    r = run(["-c", c67, "-T", "--listen-port=6001"], env={"LISTEN_PORT": ""})
    check(r.returncode == 0 and
          yaml_section(r.stdout, "listen").get("port") == "6001",
          "--flag=VALUE, empty environment variable as unset: " + show(r))
    r = run(["-c", c67, "-T"], env={"LISTEN_PORT": ""})
    check(yaml_section(r.stdout, "listen").get("port") == "5000",
          "empty LISTEN_PORT must count as unset: " + show(r))

    # ---- C21: credentials on the §3.3 vector
    r = run(["credentials", "-c", ok, "--expiry", "1892160000", "--salt",
             "n23JJ2wKKtt30oXi"])
    want = ("username=1892160000:n23JJ2wKKtt30oXi\n"
            "password=00hqldgk5xLeKKOB+xls9mHMVtgqzie9DulfgQwMv68\n"
            "realm=firezone\n")
    check(r.returncode == 0 and r.stdout == want,
          "C21: expected exactly\n%s%s" % (want, show(r)))
    # the harness's own computation agrees (independent of the C code)
    check(turn_rest_password(1892160000, VECTOR_SECRET, "n23JJ2wKKtt30oXi")
          == "00hqldgk5xLeKKOB+xls9mHMVtgqzie9DulfgQwMv68",
          "harness §3.3 computation disagrees with the vector")

    # credentials: default salt is 16 [A-Za-z0-9], --ttl sets the expiry
    t0 = int(time.time())
    r = run(["credentials", "-c", ok, "--ttl", "100"])
    check(r.returncode == 0, "credentials --ttl: " + show(r))
    m = re.fullmatch(r"username=(\d+):([A-Za-z0-9]{16})\npassword=(\S+)\n"
                     r"realm=firezone\n", r.stdout)
    check(m is not None, "credentials output: " + show(r))
    check(t0 + 100 <= int(m.group(1)) <= int(time.time()) + 100,
          "credentials --ttl 100: expiry %s, now %d" % (m.group(1), t0))
    check(m.group(3) == turn_rest_password(m.group(1), VECTOR_SECRET,
                                           m.group(2)),
          "credentials password does not follow SPEC §3.3")

    # bad salt: usage error; no secret anywhere: config error
    r = run(["credentials", "-c", ok, "--salt", "a:b"])
    check(r.returncode == 64, "credentials --salt a:b: expected 64: "
          + show(r))
    nosecret = write("nosecret.yaml", base + "auth:\n  secret_file: %s\n"
                     % os.path.join(d, "no", "secret"))
    r = run(["credentials", "-c", nosecret])
    check(r.returncode == 78, "credentials without any secret: expected 78:"
          " " + show(r))
    check(not os.path.exists(os.path.join(d, "no")),
          "credentials created the secret file's directory")
    # a secret file is read (first line)
    sf = write("secretfile", VECTOR_SECRET + "\n")
    withfile = write("withfile.yaml", base + "auth:\n  secret_file: %s\n"
                     % sf)
    r = run(["credentials", "-c", withfile, "--expiry", "1892160000",
             "--salt", "n23JJ2wKKtt30oXi"])
    check(r.returncode == 0 and r.stdout == want,
          "credentials from auth.secret_file: " + show(r))

    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main(test)
