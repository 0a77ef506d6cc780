#!/usr/bin/python3
"""Soak with faults, by hand (issue 8 item 4).

    tests/soak/soak.py --minutes 5              # portal mode if it can
    tests/soak/soak.py --minutes 30 --standalone --clients 60 --workers 4

Runs the code of tests/integration/soaklib.py (shared with the CI form,
tests/integration/test_soak.py): many TURN clients churning allocations
and channels with data flowing, while workers are SIGKILLed, SIGHUP
reloads happen and the test portal flaps.  Prints a report (kills
survived, allocations lost, outage per kill, RSS and descriptor counts
before and after) and a one-line JSON "SOAK-REPORT".  Exit 0 pass, 1 fail,
77 skip, 99 harness error.  The relay binary is RELAY_BIN, else
src/firezone-relay of this tree.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--minutes", type=float, default=5.0,
                help="length of the faulty phase (default 5)")
ap.add_argument("--warmup", type=float, default=10.0,
                help="seconds of warm-up before the baseline (default 10)")
ap.add_argument("--clients", type=int, default=40)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--standalone", action="store_true",
                help="no portal (and no portal flaps)")
ap.add_argument("--seed", type=int, default=None)
args = ap.parse_args()

if not os.environ.get("RELAY_BIN"):
    os.environ["RELAY_BIN"] = os.path.abspath(
        os.path.join(HERE, "..", "..", "src", "firezone-relay"))
# relaylib's watchdog: the whole run plus start, warm-up and the checks.
os.environ["TEST_TIMEOUT"] = str(int(args.minutes * 60 + args.warmup + 180))

from relaylib import Skip, main  # noqa: E402
import soaklib  # noqa: E402


def test():
    portal = not args.standalone
    if portal:
        portal, why = soaklib.portal_available()
        if not portal:
            raise Skip("portal mode: %s (use --standalone)" % why)
    soaklib.run_soak(soaklib.Options(
        soak_s=args.minutes * 60.0, warmup_s=args.warmup,
        clients=args.clients, workers=args.workers, portal=portal,
        seed=args.seed))


main(test)
