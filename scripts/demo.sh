#!/bin/sh
# make demo: pre-copy a live workload of our own, look at what changed, and
# prove that the result holds the process's memory byte for byte.
set -e
DT=${1:-build/dirtytrack}
WORKLOAD=${2:-build/bench/workload}
dir=$(mktemp -d)
base="$dir/precopy"
export DIRTYTRACK_STATE_DIR="$dir/state"
pid=""
cleanup() {
	if [ -n "$pid" ]; then
		kill -CONT "$pid" 2>/dev/null || true
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the commands in bold on a terminal; plain text into a pipe or a file
if [ -t 1 ]; then
	bold=$(printf '\033[1m') plain=$(printf '\033[0m')
else
	bold="" plain=""
fi
step() {
	printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"
	"$@"
}

echo "demo workload: 256 MiB, a hot set of 2% of its pages rewritten every 100 ms,"
echo "the hot set sliding a little every interval"
"$WORKLOAD" --size-mib 256 --pattern hot --dirty-pct 2 --interval-ms 100 --warm \
	>"$dir/out" &
pid=$!
tries=0
until grep -q '^ready' "$dir/out" 2>/dev/null; do
	tries=$((tries + 1))
	[ "$tries" -lt 300 ] || { echo "demo: the workload did not start" >&2; exit 1; }
	sleep 0.1
done
echo "workload running as process $pid"

step "$DT" check
step "$DT" precopy "$pid" -D "$base" --interval 500 --until-pages 2500 --max-iters 6 \
	--then leave-stopped
# like diff(1), diff exits 1 when the dumps differ
step "$DT" diff "$base/2" "$base/3" || true
step "$DT" show "$base/final"
step "$DT" verify "$base/final" --pid "$pid"
step "$DT" stop "$pid"
echo
echo "The full dump stored all 256 MiB once; each later dump stored only the pages"
echo "written since, and the final one froze the process for the time shown above."
echo "verify compared every page of the stopped process with the chain: equal."
