#!/bin/sh
# make demo: track a small workload of our own and show what dirtytrack sees.
set -e
DT=${1:-build/dirtytrack}
TARGET=${2:-build/dt-target}
dir=$(mktemp -d)
export DIRTYTRACK_STATE_DIR="$dir/state"
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

mkfifo "$dir/in" "$dir/out"
"$TARGET" <"$dir/in" >"$dir/out" 3</dev/null &
pid=$!
exec 3>"$dir/in" 4<"$dir/out"
say() { echo "$1" >&3; read -r reply <&4; }
read -r ready <&4

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "demo workload: process $pid, 64 MiB of memory, 4 MiB of it rewritten all the time"
say "map data anon 16384"
say "fill data 0 16384 1"
say "spin 1 data 0 1024"

step "$DT" check
step "$DT" start "$pid"
step "$DT" watch "$pid" --interval 500 --count 4 -v
say "write data 8000 8"
step "$DT" status "$pid" --pages
step "$DT" stop "$pid"
say "unspin"
echo
echo "The hot 1024 pages (4 MiB) show up every interval; the 8 pages written by"
echo "hand show up once; the other 15352 pages are never reported."
