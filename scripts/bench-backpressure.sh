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
#   is scripts/idle-wakeups.sh [SECONDS]: idle CPU, wake-ups and memory.
set -eu
if [ "${1:-}" = idle ]; then
	exec "$(dirname "$0")/idle-wakeups.sh" "${2:-60}"
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
