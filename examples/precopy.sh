#!/bin/bash
# SPDX-License-Identifier: MIT
#
# precopy.sh: the pre-copy migration loop of `dirtytrack precopy`, written out
# with plain `dirtytrack dump` calls, shipping every dump to a destination
# with rsync the way it would go to another host.
#
#   examples/precopy.sh PID SRC_BASE DEST_BASE [MAX_ITERS] [UNTIL_PAGES]
#
#   SRC_BASE/1            full dump, taken while PID runs
#   SRC_BASE/2, 3, ...    incremental dumps, each with `parent` -> the previous
#   SRC_BASE/final        the last incremental dump, PID frozen and left stopped
#
# Each dump is copied to DEST_BASE as soon as it is complete (rsync into a
# hidden staging directory, then renamed: DEST_BASE/N only ever appears
# whole) and the copy is checked with `dirtytrack verify`.  The loop ends when
# an iteration wrote UNTIL_PAGES pages or fewer (converged; the default 0
# means: once an iteration wrote nothing), when the pages written stop
# shrinking (the workload does not converge at this rate), or after MAX_ITERS
# iterations (default 10).  At the end DEST_BASE/final is compared byte for
# byte with the stopped process (`verify --pid`).  PID is left stopped (state
# T): resume it with `kill -CONT PID`, or kill it once it runs elsewhere.
#
# Environment:
#   DIRTYTRACK   the dirtytrack binary (default: dirtytrack on PATH)
#   RSYNC        the rsync binary (default: rsync on PATH)
#   INTERVAL     seconds between two dumps (default 0.5)
#
# Exit status: 0 done (converged or not; the last line says which), 1 the
# destination does not match the process, 2 usage or any other error, 130
# interrupted (SIGINT or SIGTERM: a dump under way is let finish, a copy
# under way is stopped and removed, so DEST_BASE holds only whole, verified
# copies).
#
# Only POSIX tools, sed and rsync are used: the -j output of dirtytrack is one
# JSON object per line, and the few numeric fields needed are cut out with sed.
# To ship to another host, make ship() rsync to host:DEST_BASE/.N.partial/ and
# run its `mv` and `dirtytrack verify` steps there over ssh.
set -eu

prog=${0##*/}

die() {
	echo "$prog: $*" >&2
	exit 2
}

usage() {
	echo "usage: $prog PID SRC_BASE DEST_BASE [MAX_ITERS] [UNTIL_PAGES]" >&2
	echo "  env: DIRTYTRACK (binary, default dirtytrack), RSYNC (default rsync)," >&2
	echo "       INTERVAL (seconds between dumps, default 0.5)" >&2
	exit 2
}

is_uint() {
	case $1 in
	'' | *[!0-9]*) return 1 ;;
	*) return 0 ;;
	esac
}

if [ "$#" -lt 3 ] || [ "$#" -gt 5 ]; then usage; fi
pid=$1
src=${2%/}
dest=${3%/}
max_iters=${4:-10}
until_pages=${5:-0}
interval=${INTERVAL:-0.5}
DIRTYTRACK=${DIRTYTRACK:-dirtytrack}
RSYNC=${RSYNC:-rsync}

if ! is_uint "$pid" || [ "$pid" -eq 0 ]; then die "PID '$pid' is not a process id"; fi
if ! is_uint "$max_iters" || [ "$max_iters" -lt 1 ]; then
	die "MAX_ITERS '$max_iters' is not a number >= 1"
fi
is_uint "$until_pages" || die "UNTIL_PAGES '$until_pages' is not a number of pages"
if [ -z "$src" ] || [ -z "$dest" ]; then die "SRC_BASE and DEST_BASE must not be empty or /"; fi
case $interval in
'' | *[!0-9.]* | *.*.*) die "INTERVAL '$interval' is not a number of seconds" ;;
esac

# -- tools ------------------------------------------------------------------
# rsync is the only tool a minimal system may lack: say so clearly.
rsync_cmd=${RSYNC%% *}
command -v -- "$rsync_cmd" >/dev/null 2>&1 ||
	die "rsync not found ('$rsync_cmd'): install it (apt-get install rsync) or set RSYNC"
command -v -- "$DIRTYTRACK" >/dev/null 2>&1 ||
	die "dirtytrack not found ('$DIRTYTRACK'): put it on PATH or set DIRTYTRACK"
[ -d "/proc/$pid" ] || die "no process $pid"

# -- directories ----------------------------------------------------------
for base in "$src" "$dest"; do
	mkdir -p -- "$base" || die "cannot create $base"
	for d in "$base/1" "$base/final"; do
		[ ! -e "$d" ] || die "$d exists: SRC_BASE and DEST_BASE must hold no earlier pre-copy"
	done
done

# A JSON number (or true/false) field of a one-line JSON object.
field() { # JSON KEY
	printf '%s\n' "$1" | sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\([-0-9.eE+a-z]*\).*/\1/p" | head -n 1
}

# Every step runs in the background and is waited for: bash runs a trap
# only between commands, and `wait` is the one it interrupts.  Background
# commands start with SIGINT ignored, so a Ctrl-C reaches this script, not
# a dump half-way.  on_signal lets a dump finish (it is whole or absent)
# and stops a copy, removing its staging directory.
child="" step="" stage=""
run() { # finish|stop CMD [ARGS...]
	step=$1
	shift
	"$@" &
	child=$!
	wait "$child" && child="" || { local rc=$?; child=""; return "$rc"; }
}

tmp=$(mktemp -d)
cleanup() { rm -rf -- "$tmp"; }
trap cleanup EXIT

# Take one dump; the -j line goes to the variable `doc`.
dump() { # DIR [ARGS...]
	local dir=$1
	shift
	if ! run finish "$DIRTYTRACK" -j dump "$pid" -D "$dir" "$@" >"$tmp/out" 2>"$tmp/err"; then
		echo "$prog: dump $dir failed:" >&2
		sed 's/^/  /' "$tmp/err" >&2
		exit 2
	fi
	doc=$(cat "$tmp/out")
	[ -n "$(field "$doc" pages_written)" ] || die "dump $dir: unexpected output: $doc"
}

# Copy SRC/NAME to DEST/NAME: into a staging directory first, renamed once
# whole.  The relative `parent` symlink (../N) is copied as a link (-a), so
# the chain is whole on the destination side too.
ship() { # NAME
	local name=$1

	stage="$dest/.$1.partial"
	rm -rf -- "$stage"
	# shellcheck disable=SC2086 # RSYNC may carry options
	run stop $RSYNC -a --delete -- "$src/$name/" "$stage/" ||
		die "rsync of $src/$name to $stage failed"
	mv -T -- "$stage" "$dest/$name" || die "cannot rename $stage to $dest/$name"
	stage=""
	run stop "$DIRTYTRACK" verify "$dest/$name" >/dev/null ||
		die "the copy $dest/$name does not verify (dirtytrack verify $dest/$name)"
}

target_state="keeps running"
on_signal() {
	trap '' INT TERM
	if [ -n "$child" ]; then
		[ "$step" = finish ] || kill "$child" 2>/dev/null || :
		wait "$child" 2>/dev/null || :
	fi
	[ -z "$stage" ] || rm -rf -- "$stage"
	echo "$prog: interrupted: complete dumps stay in $src, verified copies in $dest;" \
		"process $pid $target_state" >&2
	exit 130
}
trap on_signal INT TERM

printf '%-6s %10s %10s %10s\n' ITER PAGES MiB 'DUMP(ms)'
row() { # NAME
	local pages mib
	pages=$(field "$doc" pages_written)
	mib=$(awk -v p="$pages" 'BEGIN { printf "%.2f", p * 4096 / 1048576 }')
	printf '%-6s %10s %10s %10s\n' "$1" "$pages" "$mib" "$(field "$doc" dump_ms)"
}

# -- the loop -------------------------------------------------------------
i=1
dump "$src/1"
row 1
ship 1
prev=$(field "$doc" pages_written)
total=$prev
converged=false
reason="MAX_ITERS ($max_iters) reached"
while [ "$i" -lt "$max_iters" ]; do
	sleep "$interval"
	dump "$src/$((i + 1))" --parent "$src/$i"
	i=$((i + 1))
	row "$i"
	ship "$i"
	pages=$(field "$doc" pages_written)
	total=$((total + pages))
	if [ "$pages" -le "$until_pages" ]; then
		converged=true
		reason="the dirty set fell to $pages pages (<= $until_pages)"
		break
	fi
	if [ "$i" -gt 2 ] && [ "$pages" -ge "$prev" ]; then
		reason="the dirty set stopped shrinking ($prev -> $pages pages):"
		reason="$reason the workload does not converge at this rate"
		break
	fi
	prev=$pages
done

# -- cut-over: the final dump, the process frozen and left stopped -------
# An interrupt lets this dump finish: from here on the process stays stopped.
target_state="is left stopped (kill -CONT $pid to resume it)"
dump "$src/final" --parent "$src/$i" --leave-stopped
row final
total=$((total + $(field "$doc" pages_written)))
freeze_ms=$(field "$doc" freeze_ms)
ship final

echo "$reason"
echo "$i iterations and a final dump, $total pages shipped; final freeze $freeze_ms ms"
if run stop "$DIRTYTRACK" verify "$dest/final" --pid "$pid"; then
	:
else
	rc=$?
	[ "$rc" -eq 1 ] && { echo "$prog: $dest/final does NOT match process $pid" >&2; exit 1; }
	die "dirtytrack verify $dest/final --pid $pid failed (exit $rc)"
fi
if [ "$converged" = true ]; then
	echo "converged: $dest/final holds process $pid (stopped; kill -CONT $pid to resume it)"
else
	echo "did not converge: $dest/final still holds process $pid (stopped; kill -CONT $pid to resume it)"
fi
