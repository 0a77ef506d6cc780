#!/bin/sh
# deps.sh - install everything needed to build, test, fuzz and benchmark
# firezone-relay on Debian 12.  Run as root.  Idempotent.
set -eu

export DEBIAN_FRONTEND=noninteractive
# coturn's package would start a TURN server on 3478; keep services from
# starting during installation (policy-rc.d), and stop it if it did.
policy=/usr/sbin/policy-rc.d
created_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    created_policy=yes
fi

apt-get update
apt-get install -y --no-install-recommends \
    build-essential autoconf automake libtool pkg-config \
    libevent-dev libssl-dev libyaml-dev libjson-c-dev check libwslay-dev \
    clang llvm libclang-rt-14-dev libbpf-dev \
    coturn python3 python3-aioice python3-websockets \
    openssl iproute2 procps psmisc curl ca-certificates \
    mandoc man-db valgrind

if [ "$created_policy" = yes ]; then
    rm -f "$policy"
fi
# Never leave the packaged coturn service holding 3478.
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now coturn >/dev/null 2>&1 || true
fi
pkill -x turnserver >/dev/null 2>&1 || true
exit 0
