#!/bin/sh
# test-install.sh - the install layout (issue 9).
#
# Runs `make install DESTDIR=<temporary directory>` in the build tree and
# checks what lands there: the program (which must run), the configuration
# file, the two manual pages (clean under `mandoc -Tlint -Wwarning`), and
# the systemd unit when configure chose a unit directory (verified with
# systemd-analyze when it exists).  A second install must keep a modified
# configuration file, and uninstall must remove that file only while it is
# still the shipped one.
#
# Environment (from Makefile.am): top_srcdir, top_builddir, FZ_MAKE,
# FZ_VERSION, FZ_SBINDIR, FZ_SYSCONFDIR, FZ_LOCALSTATEDIR, FZ_MANDIR,
# FZ_UNITDIR (empty: no unit configured).
set -u

: "${top_srcdir:?}" "${top_builddir:?}" "${FZ_SBINDIR:?}" \
    "${FZ_SYSCONFDIR:?}" "${FZ_LOCALSTATEDIR:?}" "${FZ_MANDIR:?}" \
    "${FZ_VERSION:?}"
FZ_MAKE=${FZ_MAKE:-make}
FZ_UNITDIR=${FZ_UNITDIR:-}

fails=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fzr-install.XXXXXX") || exit 99
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
dest=$tmp/dest

ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
info() { echo "info: $*"; }

# The nested make runs inside `make check`: drop the parent's MAKEFLAGS
# (its jobserver descriptors are not ours) and keep the output in a log.
run_make() {
    log=$tmp/make-$1.log
    if env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $FZ_MAKE -C "$top_builddir" \
        "$@" DESTDIR="$dest" >"$log" 2>&1; then
        return 0
    fi
    echo "--- make $* failed; its output:"
    cat "$log"
    return 1
}

bin=$dest$FZ_SBINDIR/firezone-relay
conf=$dest$FZ_SYSCONFDIR/firezone-relay.yaml
man8=$dest$FZ_MANDIR/man8/firezone-relay.8
man5=$dest$FZ_MANDIR/man5/firezone-relay.yaml.5
shipped=$top_srcdir/etc/firezone-relay.yaml

# --- First install ---
if ! run_make install; then
    fail "make install DESTDIR=$dest"
    exit 1
fi
ok "make install DESTDIR=$dest"

if test -x "$bin"; then ok "program $bin"; else fail "no program $bin"; fi
if test -f "$conf" && cmp -s "$shipped" "$conf"; then
    ok "configuration $conf is the shipped file"
else
    fail "configuration $conf missing or not the shipped file"
fi
for page in "$man8" "$man5"; do
    if test -f "$page"; then ok "manual page $page"; else
        fail "no manual page $page"; fi
done

# --- The installed program runs ---
out=$("$bin" --version 2>&1)
if test "$out" = "firezone-relay $FZ_VERSION"; then
    ok "installed --version: $out"
else
    fail "installed --version printed '$out', not 'firezone-relay $FZ_VERSION'"
fi
# The shipped file sets nothing mandatory: with a public address it is OK.
# (-c names it explicitly: the compiled-in path is outside DESTDIR.)
out=$(PUBLIC_IP4_ADDR=203.0.113.1 "$bin" -t -c "$conf" 2>&1)
rc=$?
if test $rc -eq 0; then
    ok "installed -t on the installed configuration"
else
    fail "installed -t -c $conf exited $rc: $out"
fi

# --- Manual pages: configured paths substituted, lint-clean, renderable ---
for page in "$man8" "$man5"; do
    test -f "$page" || continue
    if grep -n '@[A-Za-z_]*@' "$page"; then
        fail "$page: unsubstituted @variables@"
    fi
    if grep -q "$FZ_SYSCONFDIR/firezone-relay.yaml" "$page"; then
        ok "$page names $FZ_SYSCONFDIR/firezone-relay.yaml"
    else
        fail "$page does not name $FZ_SYSCONFDIR/firezone-relay.yaml"
    fi
    if grep -q "$FZ_LOCALSTATEDIR/lib/firezone-relay/secret" "$page"; then
        ok "$page names $FZ_LOCALSTATEDIR/lib/firezone-relay/secret"
    else
        fail "$page does not name $FZ_LOCALSTATEDIR/lib/firezone-relay/secret"
    fi
done
if command -v mandoc >/dev/null 2>&1; then
    for page in "$man8" "$man5"; do
        test -f "$page" || continue
        out=$(mandoc -Tlint -Wwarning "$page" 2>&1)
        rc=$?
        if test $rc -eq 0 && test -z "$out"; then
            ok "mandoc -Tlint -Wwarning $page"
        else
            fail "mandoc -Tlint -Wwarning $page (exit $rc):"
            echo "$out"
        fi
    done
else
    info "mandoc not installed (scripts/deps.sh installs it): lint skipped"
fi
if command -v man >/dev/null 2>&1; then
    for page in "$man8" "$man5"; do
        test -f "$page" || continue
        # troff cannot break a long path (make distcheck's prefix); that
        # is cosmetic.  Anything else on stderr is a failure.
        if MANWIDTH=80 man -l "$page" 2>"$tmp/man.err" >"$tmp/man.out" &&
            test -s "$tmp/man.out" &&
            ! grep -v "warning.*can't break line" "$tmp/man.err" >/dev/null
        then
            ok "man -l $page renders"
        else
            fail "man -l $page:"
            cat "$tmp/man.err"
        fi
    done
else
    info "man not installed: rendering check skipped"
fi

# --- systemd unit ---
if test -n "$FZ_UNITDIR"; then
    unit=$dest$FZ_UNITDIR/firezone-relay.service
    if test -f "$unit"; then
        ok "unit $unit"
        if grep -n '@[A-Za-z_]*@' "$unit"; then
            fail "$unit: unsubstituted @variables@"
        fi
        if grep -Fqx "ExecStart=$FZ_SBINDIR/firezone-relay" "$unit"; then
            ok "unit runs $FZ_SBINDIR/firezone-relay"
        else
            fail "unit: no ExecStart=$FZ_SBINDIR/firezone-relay"
        fi
        if command -v systemd-analyze >/dev/null 2>&1; then
            # verify needs ExecStart's program to exist: point it into
            # DESTDIR.  The man pages of Documentation= are looked up in
            # DESTDIR too.
            vdir=$tmp/verify
            mkdir -p "$vdir"
            sed "s|^ExecStart=$FZ_SBINDIR/|ExecStart=$dest$FZ_SBINDIR/|" \
                "$unit" >"$vdir/firezone-relay.service"
            out=$(MANPATH=$dest$FZ_MANDIR: systemd-analyze verify \
                "$vdir/firezone-relay.service" 2>&1)
            rc=$?
            # Only lines about our unit count: verify also loads the
            # host's units (network-online.target, ...), which are not ours.
            ours=$(printf '%s\n' "$out" | grep 'firezone-relay' || true)
            if test $rc -eq 0 && test -z "$ours"; then
                ok "systemd-analyze verify $unit"
            else
                fail "systemd-analyze verify $unit (exit $rc):"
                printf '%s\n' "$out"
            fi
            if test -n "$out" && test -z "$ours"; then
                info "systemd-analyze about other units: $out"
            fi
            sec=$(systemd-analyze security --offline=yes \
                "$vdir/firezone-relay.service" 2>/dev/null | tail -n 1)
            test -n "$sec" && info "systemd-analyze security: $sec"
        else
            info "systemd-analyze not installed: unit verification skipped"
        fi
    else
        fail "no unit $unit"
    fi
else
    found=$(find "$dest" -name firezone-relay.service)
    if test -z "$found"; then
        ok "no systemd unit configured, none installed"
    else
        fail "no unit directory configured, yet installed: $found"
    fi
fi

# --- A second install keeps a modified configuration ---
echo "# modified by test-install.sh" >>"$conf"
cp "$conf" "$tmp/modified.yaml"
if run_make install; then
    ok "second make install"
    if cmp -s "$tmp/modified.yaml" "$conf"; then
        ok "second install kept the modified configuration"
    else
        fail "second install overwrote the modified configuration"
    fi
else
    fail "second make install"
fi

# --- Uninstall: a modified configuration stays, the shipped one goes ---
if run_make uninstall; then
    ok "make uninstall"
    if test -e "$bin"; then fail "uninstall left $bin"; fi
    if cmp -s "$tmp/modified.yaml" "$conf"; then
        ok "uninstall kept the modified configuration"
    else
        fail "uninstall removed or changed the modified configuration"
    fi
else
    fail "make uninstall"
fi
cp "$shipped" "$conf"
if run_make uninstall; then
    if test -e "$conf"; then
        fail "uninstall left the unmodified configuration $conf"
    else
        ok "uninstall removed the unmodified configuration"
    fi
else
    fail "second make uninstall"
fi
left=$(find "$dest" -type f)
if test -z "$left"; then ok "nothing left after uninstall"; else
    fail "left after uninstall: $left"; fi

if test $fails -ne 0; then
    echo "$fails check(s) failed"
    exit 1
fi
exit 0
