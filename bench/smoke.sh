#!/bin/sh
# make check: bench/run --smoke (seconds, no thresholds).  Skips (77)
# only when no Python 3 is installed to run it.
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${top_builddir:-$srcdir}
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3) || exit 77
exec "$py" "$srcdir/bench/run" --smoke --builddir "$builddir"
