#!/bin/sh
# check-purity.sh - src/common is the pure core (ARCHITECTURE §2, STYLE §1):
# no libevent, no sockets, no clock reads, no processes, no file or
# environment access.  Fails on any hit.
set -u
dir="${top_srcdir:-$(dirname "$0")/../..}/src/common"
pattern='#[[:space:]]*include[[:space:]]*<event|event2/|(^|[^>._[:alnum:]])(socket|bind|connect|listen|accept|recv|recvfrom|recvmsg|recvmmsg|send|sendto|sendmsg|sendmmsg|setsockopt|clock_gettime|gettimeofday|time|sleep|usleep|nanosleep|fork|vfork|execv|execve|execvp|execl|waitpid|wait|kill|signal|sigaction|mmap|munmap|memfd_create|open|fopen|read|write|close|getenv|setenv|rand|random|srand|getrandom|pthread_create|system|popen)[[:space:]]*\('
hits=$(grep -nE "$pattern" "$dir"/*.c "$dir"/*.h | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*)')
if [ -n "$hits" ]; then
    echo "check-purity: I/O, clock or process calls in src/common:" >&2
    echo "$hits" >&2
    exit 1
fi
echo "check-purity: src/common is pure ($(ls "$dir"/*.c | wc -l) files)"
exit 0
