#!/bin/sh
# test-summary.sh DIR... - add up the results in the automake test logs
# found under DIRs (recursively) and print one "N passed, N failed" line.
# A Check runner counts its individual checks; every other test counts
# once; SKIP counts as neither.  Exits non-zero when anything failed.
set -u
pass=0
fail=0
skip=0
for trs in $(find "$@" -name '*.trs' 2>/dev/null | sort); do
    log="${trs%.trs}.log"
    # Check: "100%: Checks: 57, Failures: 0, Errors: 0"
    line=$(grep -m1 -E '^[0-9]+%: Checks: ' "$log" 2>/dev/null || true)
    if [ -n "$line" ]; then
        n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
        f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
        e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
        pass=$((pass + n - f - e))
        fail=$((fail + f + e))
    elif grep -q ':test-result: PASS' "$trs"; then
        pass=$((pass + 1))
    elif grep -q ':test-result: SKIP' "$trs"; then
        skip=$((skip + 1))
    else
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
