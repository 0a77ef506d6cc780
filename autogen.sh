#!/bin/sh
# autogen.sh - generate ./configure from configure.ac (needs autoconf,
# automake; scripts/deps.sh installs them).
set -e
cd "$(dirname "$0")"
autoreconf -fi
