#!/usr/bin/python3
"""Soak with faults, the short CI form (issue 8 item 4; about 65 s).

40 clients on 8 loopback source addresses churn allocations and 1-4
channels each, with probes flowing all the time, while workers are killed
with SIGKILL every 3-8 s, SIGHUP reloads toggle limits.error_burst and
log.level every 2-5 s and, in portal mode (the TLS test portal of
portal_fixture.py), the portal flaps every 4-9 s.  8 s of warm-up without
faults, then 45 s with them.  The code, the outage window and every
assertion are described in soaklib.py; tests/soak/soak.py runs the same
code for as long as you like.

Without python3-websockets or the openssl command the run is standalone
(no flaps) and says so; kills and reloads still happen.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaylib import log, main  # noqa: E402
import soaklib  # noqa: E402


def test():
    portal, why = soaklib.portal_available()
    if not portal:
        log("portal mode unavailable (%s): standalone soak, no flaps" % why)
    opts = soaklib.Options(soak_s=float(os.environ.get("SOAK_SECONDS", 45)),
                           warmup_s=8.0, clients=40, workers=2,
                           portal=portal,
                           seed=int(os.environ["SOAK_SEED"])
                           if os.environ.get("SOAK_SEED") else None)
    soaklib.run_soak(opts)


if __name__ == "__main__":
    main(test)
