#!/bin/sh
# check-spec-cases.sh - every SPEC case listed in spec_cases must map to a
# unit test that ran and passed.  Runs check_common with an XML log and
# matches each mapped test name against it; prints the covered case ids and
# fails on a case whose test is missing, failed or did not run.
set -u
here=$(dirname "$0")
map="${top_srcdir:-$here/../..}/tests/unit/spec_cases"
runner=./check_common
[ -x "$runner" ] || runner="$here/check_common"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

CK_XML_LOG_FILE_NAME="$log" CK_VERBOSITY=silent "$runner" >/dev/null 2>&1

bad=0
cases=""
while read -r id test rest; do
    case "$id" in ''|'#'*) continue ;; esac
    # A passing test appears as <test result="success"> ... <id>NAME</id>.
    if awk -v t="$test" '
        /<test result=/ { ok = ($0 ~ /result="success"/) }
        $0 ~ "<id>" t "</id>" { found = 1; if (!ok) bad = 1 }
        END { exit !(found && !bad) }' "$log"; then
        cases="$cases $id"
    else
        echo "check-spec-cases: $id -> $test did not run and pass" >&2
        bad=1
    fi
done < "$map"
n=$(printf '%s\n' $cases | sort -u | grep -c .)
echo "check-spec-cases: $n SPEC cases covered:$cases"
exit $bad
