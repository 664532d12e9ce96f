#!/bin/sh
# Runs the backpressure and goodput benchmarks of cmd/slided (real daemons,
# real TAP devices in network namespaces; needs root) N times and prints the
# median of every reported figure per benchmark.
#
# Usage: scripts/bench-backpressure.sh [N] [benchmark regexp]
#   N defaults to 3; the regexp to all of them:
#   'Bulk|DropTail|TwoFlows|Startup|Stall'.
# The raw `go test` output is kept in $OUT (default bench-backpressure.txt).
# Takes about 2.5 minutes per count.
#
# scripts/bench-backpressure.sh idle [SECONDS]
#   starts a medium and two idle daemons (9600 bit/s, one peer, no traffic)
#   in two fresh namespaces, waits 5 s, then reports node 1's CPU (% of a
#   core), wake-ups a second (context switches of all its threads) and
#   resident memory over SECONDS (default 60).
set -eu
if [ "${1:-}" = idle ]; then
	SECS=${2:-60}
	cd "$(dirname "$0")/.."
	T=$(mktemp -d)
	go build -o "$T/slided" ./cmd/slided
	NS1=slided-idle-$$-1 NS2=slided-idle-$$-2
	PIDS=""
	cleanup() {
		for p in $PIDS; do kill "$p" 2>/dev/null || true; done
		sleep 1
		ip netns del "$NS1" 2>/dev/null || true
		ip netns del "$NS2" 2>/dev/null || true
		rm -rf "$T"
	}
	trap cleanup EXIT
	ip netns add "$NS1"
	ip netns add "$NS2"
	"$T/slided" sim -listen "$T/m.sock" -rate 9600 >"$T/m.log" 2>&1 &
	PIDS="$!"
	sleep 0.5
	ip netns exec "$NS1" "$T/slided" run -tap slided0 -node 1 -phy "sim:$T/m.sock" -addr 192.0.2.1/24 >"$T/n1.log" 2>&1 &
	P1=$!
	ip netns exec "$NS2" "$T/slided" run -tap slided0 -node 2 -phy "sim:$T/m.sock" -addr 192.0.2.2/24 >"$T/n2.log" 2>&1 &
	PIDS="$PIDS $P1 $!"
	sleep 5
	sample() { # utime+stime ticks, context switches of all threads
		t=$(awk '{print $14 + $15}' /proc/"$P1"/stat)
		c=$(cat /proc/"$P1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}')
		echo "$t $c"
	}
	set -- $(sample)
	T0=$1 C0=$2
	sleep "$SECS"
	set -- $(sample)
	HZ=$(getconf CLK_TCK)
	RSS=$(awk '/VmRSS/ {print $2}' /proc/"$P1"/status)
	awk -v t0="$T0" -v t1="$1" -v c0="$C0" -v c1="$2" -v s="$SECS" -v hz="$HZ" -v rss="$RSS" 'BEGIN {
		printf "idle daemon over %d s: CPU %.3f%% of a core, %.2f wake-ups/s, resident %.1f MB\n",
			s, 100 * (t1 - t0) / hz / s, (c1 - c0) / s, rss / 1024 }'
	exit 0
fi
N=${1:-3}
RE=${2:-'Bulk|DropTail|TwoFlows|Startup|Stall'}
OUT=${OUT:-bench-backpressure.txt}
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "run as root: the benchmarks create network namespaces and TAP devices" >&2
	exit 1
fi
echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT"
go test -run '^$' -bench "$RE" -benchtime 1x -count "$N" -timeout 60m ./cmd/slided 2>&1 | tee -a "$OUT" |
	grep --line-buffered -E '^(Benchmark|ok|FAIL|---)' >&2 || true
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
# One line per benchmark: "name: metric=median ..." (median of N runs).
awk '
/^Benchmark/ && $2 ~ /^[0-9]+$/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++nb] = name }
	runs[name]++
	for (i = 3; i + 1 <= NF; i += 2) {
		m = $(i + 1)
		if (m == "B/op" || m == "allocs/op") continue
		if (m == "ns/op") { m = "run_s"; $i = $i / 1e9 }
		key = name SUBSEP m
		if (!(key in nv)) { mo[name, ++nm[name]] = m }
		v[key, ++nv[key]] = $i + 0
	}
}
function median(key,   n, i, j, t, a) {
	n = nv[key]
	for (i = 1; i <= n; i++) a[i] = v[key, i]
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	for (b = 1; b <= nb; b++) {
		name = order[b]
		printf "\n%s (median of %d runs)\n", name, runs[name]
		for (k = 1; k <= nm[name]; k++) {
			m = mo[name, k]
			printf "  %-22s %12.4g   all: ", m, median(name SUBSEP m)
			for (i = 1; i <= nv[name SUBSEP m]; i++) printf "%s%g", (i > 1 ? " " : ""), v[name SUBSEP m, i]
			printf "\n"
		}
	}
}' "$OUT"
