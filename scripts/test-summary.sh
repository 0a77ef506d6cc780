#!/bin/sh
# test-summary.sh DIR... - add up the Check and automake results found in
# the test logs of DIRs and print one "N passed, N failed" line.
set -u
pass=0
fail=0
for d in "$@"; do
    for log in "$d"/*.log; do
        [ -f "$log" ] || continue
        # Check: "100%: Checks: 57, Failures: 0, Errors: 0"
        line=$(grep -m1 -E '^[0-9]+%: Checks: ' "$log" || true)
        if [ -n "$line" ]; then
            n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
            f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
            e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
            pass=$((pass + n - f - e))
            fail=$((fail + f + e))
        fi
    done
    for trs in "$d"/*.trs; do
        [ -f "$trs" ] || continue
        case "$(basename "$trs")" in check_common.trs) continue ;; esac
        if grep -q ':test-result: PASS' "$trs"; then
            pass=$((pass + 1))
        elif grep -q ':test-result: SKIP' "$trs"; then
            :
        else
            fail=$((fail + 1))
        fi
    done
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
