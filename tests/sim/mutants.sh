#!/bin/sh
# mutants.sh - proves the simulation bites: builds a COPY of src/common in
# a temporary directory with one deliberate bug, links tests/sim against
# it and runs the default budget, which must fail (and shrink).
# src/common itself is never modified.  Not run by `make check`.
#
# usage: tests/sim/mutants.sh [-l | MUTANT...]    (default: all)
#        BUDGET=N SIM_JOBS=N tests/sim/mutants.sh global-number
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
budget=${BUDGET:-1000000}
work=$(mktemp -d /tmp/sim-mutant.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

# Each mutant: "@@ name file", then the lines to replace ("-") and their
# replacement ("+").  The old text must occur exactly once.  Blocks named
# "fix:..." are candidate fixes of core bugs the simulation found; they are
# applied to every copy (and skipped once src/common no longer has the old
# text), so that a mutant is caught for its own bug.  The pseudo-mutant
# "baseline" changes nothing and must pass.
spec() {
cat <<'EOF'
@@ fix:stale-chan-idx turn_chan.c
-    if (a->nchans >= TURN_MAX_CHANS_PER_CLIENT ||
-        atab_chan_create(core->tab, aidx, number, peer,
+    chan = chan_idx_by_client(core->ci, &a->client, number);
+    if (chan != CHAN_IDX_NONE && atab_chan_at(core->tab, chan)->alloc != aidx)
+        turn_chan_forget(core, chan);
+    if (a->nchans >= TURN_MAX_CHANS_PER_CLIENT ||
+        atab_chan_create(core->tab, aidx, number, peer,
@@ global-number turn_chan.c
-    byn = atab_chan_find_num(core->tab, aidx, number);
+    byn = ATAB_NONE;
+    for (uint32_t x = 0; x < atab_max_allocs(core->tab) &&
+        byn == ATAB_NONE; x++)
+        byn = atab_chan_find_num(core->tab, x, number);
@@ no-cooldown turn_chan.c
-#define CHAN_COOLDOWN_MS    (TURN_CHANNEL_COOLDOWN * 1000u)
+#define CHAN_COOLDOWN_MS    0u
@@ cooling-relays turn_chan.c
-    if (c->state != ATAB_C_BOUND || c->expiry <= now || c->alloc != ref.idx)
+    if (c->alloc != ref.idx)
@@ refresh-accumulates turn_alloc.c
-        a->expiry = req->now + (uint64_t)granted * MS_PER_S;
+        a->expiry = a->expiry + (uint64_t)granted * MS_PER_S;
@@ no-username-replace turn_alloc.c
-    if ((idx = atab_find_user(core->tab, uhash, ulen)) != ATAB_NONE) {
+    if ((idx = atab_find_user(core->tab, uhash, ulen)) != ATAB_NONE && 0) {
@@ unsigned-437 turn_core.c
-    if ((rc = resp_send(req->out, req->path, &b, p, req->key,
-            req->fingerprint)) == 0)
-        turn_core_count(core, req->mt, code);
+    if ((rc = resp_send(req->out, req->path, &b, p,
+            code == 437 ? NULL : req->key, req->fingerprint)) == 0)
+        turn_core_count(core, req->mt, code);
@@ probe-skip turn_alloc.c
-        port = free_port(core, (uint32_t)(a->port - core->port_min) + 1);
+        port = free_port(core, (uint32_t)(a->port - core->port_min) + 2);
EOF
}

list() {
    spec | sed -n 's/^@@ \([^ ]*\) .*/\1/p' | grep -v '^fix:'
}

apply() {       # dir name
    spec | perl -e '
        my ($dir, $want) = @ARGV;
        my ($name, $file, @old, @new, $found);
        $found = 1 if $want eq "baseline";
        sub done {
            return unless defined $name &&
                ($name eq $want || $name =~ /^fix:/);
            local $/;
            open(my $in, "<", "$dir/$file") or die "$file: $!\n";
            my $text = <$in>;
            close($in);
            my ($o, $n) = (join("\n", @old), join("\n", @new));
            my $count = () = $text =~ /\Q$o\E/g;
            return if $count == 0 && $name =~ /^fix:/;   # fixed upstream
            die "pattern found $count times in $file\n" if $count != 1;
            $text =~ s/\Q$o\E/$n/;
            open(my $out, ">", "$dir/$file") or die "$file: $!\n";
            print $out $text;
            close($out);
            $found = 1 if $name eq $want;
        }
        while (<STDIN>) {
            chomp;
            if (/^@@ (\S+) (\S+)/) {
                done();
                ($name, $file, @old, @new) = ($1, $2);
            } elsif (s/^-//) {
                push @old, $_;
            } elsif (s/^\+//) {
                push @new, $_;
            }
        }
        done();
        die "no mutant $want\n" unless $found;
        print "applied\n";' "$1" "$2"
}

build() {       # dir
    cflags="-O2 -g -w -I$1 $(pkg-config --cflags libcrypto 2>/dev/null)"
    for c in "$1"/*.c; do
        cc $cflags -c "$c" -o "${c%.c}.o" 2>/dev/null || rm -f "${c%.c}.o"
    done
    ar rcs "$1/libmutant.a" "$1"/*.o &&
    cc $cflags -I"$here" "$here"/sim_*.c "$1/libmutant.a" \
        $(pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto) \
        -lpthread -o "$1/sim"
}

if [ "${1:-}" = "-l" ]; then
    list
    exit 0
fi
names=${*:-baseline $(list)}
status=0
for m in $names; do
    d="$work/$m"
    mkdir -p "$d"
    cp "$top"/src/common/*.c "$top"/src/common/*.h "$d"/
    if [ "$(apply "$d" "$m")" != applied ]; then
        echo "mutant $m: could not apply (src/common changed?)"
        status=2
        continue
    fi
    if ! build "$d"; then
        echo "mutant $m: does not build"
        status=2
        continue
    fi
    echo "=== mutant $m: $budget transitions"
    (cd "$d" && ./sim --budget "$budget")
    rc=$?
    if [ "$m" = baseline ]; then
        [ $rc -eq 0 ] && echo "=== baseline: passes" ||
            { echo "=== baseline: FAILS (exit $rc)"; status=1; }
    elif [ $rc -eq 1 ]; then
        echo "=== mutant $m: CAUGHT"
    else
        echo "=== mutant $m: NOT caught (exit $rc)"
        status=1
    fi
done
exit $status
