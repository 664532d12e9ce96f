#!/bin/sh
# Run one acoustic benchmark of cmd/slided (issue 16) and keep its output.
# usage: scripts/acoustic-bench.sh BENCH OUTFILE   (environment: ACOUSTIC_ARGS,
# ACOUSTIC_Q, ACOUSTIC_ECHOES, ACOUSTIC_DUR; see cmd/slided/acoustic_bench_test.go)
# Runs as root (network namespaces). Each benchmark is bounded by -timeout.
set -eu
bench=$1 out=$2
cd "$(dirname "$0")/../cmd/slided"
{
	echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) bench $bench"
	echo "# ACOUSTIC_ARGS='${ACOUSTIC_ARGS:-}' ACOUSTIC_Q='${ACOUSTIC_Q:-}' ACOUSTIC_ECHOES='${ACOUSTIC_ECHOES:-}' ACOUSTIC_DUR='${ACOUSTIC_DUR:-}' ACOUSTIC_STAGGER='${ACOUSTIC_STAGGER:-}'"
	echo "# uptime: $(uptime)"
	go test -p 1 -count=1 -timeout 30m -run '^$' -bench "^${bench}\$" -benchtime 1x -v . 2>&1 || true
	echo "# end $(date -u +%FT%TZ) uptime: $(uptime)"
} >"$out"
