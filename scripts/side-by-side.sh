#!/bin/bash
# side-by-side.sh OLD NEW [ROUNDS] [BENCH]: the end-to-end benchmarks of
# cmd/slided on two commits in one sitting, old and new alternated, ROUNDS
# times (default 3). BENCH is go test's -bench pattern (default the bulk
# flow, two senders and iperf3). Needs root (the benchmarks create network
# namespaces and TAP devices) and about 2.5 minutes a side and round with
# the default set. Each commit is checked out in a detached worktree under
# a temporary directory, removed at the end. Prints each benchmark line with
# its side, round and commit.
set -euo pipefail
old=${1:?usage: side-by-side.sh OLD NEW [ROUNDS] [BENCH]}
new=${2:?usage: side-by-side.sh OLD NEW [ROUNDS] [BENCH]}
rounds=${3:-3}
bench=${4:-'Bulk115200$|TwoSenders115200$|HostLoss/iperf3-tcp'}
. "$(dirname "$0")/worktrees.sh"
checkout_sides "$old" "$new"
for i in $(seq 1 "$rounds"); do
	for side in old new; do
		commit=$(git -C "$tmp/$side" log -1 --format=%h)
		echo "=== $side round $i $commit $(date -u +%T)"
		(cd "$tmp/$side" && go test -p 1 -count=1 -run '^$' -bench "$bench" -benchtime 1x ./cmd/slided 2>&1 |
			grep -E '^Benchmark|FAIL|panic' || true)
	done
done
