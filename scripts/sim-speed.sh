#!/bin/bash
# sim-speed.sh OLD NEW [ROUNDS]: the virtual-time simulator of two commits
# side by side (docs/simulation.md, "Speed of the virtual-time simulator").
#
# First it checks that both give the same runs: `slided bench` with fixed
# seeds (saturated and Poisson csma, long delays with bursts, a fixed window
# with persistence below 1, a scenario, np-CSMA, ALOHA, the daemon's engine)
# must print the same output, field for field but the wall time and the
# speed; it stops with the difference if not. Then it runs the speed table's
# commands ROUNDS times (default 3), old and new alternating run by run,
# under `nice -n 10`, and prints each run's frame times per wall second and,
# per command and side, the median and range, with the load average before
# and after. Each commit is built (CGO_ENABLED=0) in a detached worktree
# under a temporary directory, removed at the end. Needs no root.
set -euo pipefail
old=${1:?usage: sim-speed.sh OLD NEW [ROUNDS]}
new=${2:?usage: sim-speed.sh OLD NEW [ROUNDS]}
rounds=${3:-3}
. "$(dirname "$0")/worktrees.sh"
checkout_sides "$old" "$new"
for side in old new; do
	(cd "$tmp/$side" && CGO_ENABLED=0 go build -o "$tmp/slided-$side" ./cmd/slided)
done
oldc=$(git -C "$tmp/old" log -1 --format=%h)
newc=$(git -C "$tmp/new" log -1 --format=%h)
scenario=$repo/packaging/mininet/line.toml

# The same runs. Each line is one command's arguments.
same=(
	"-nodes 10 -a 0.01 -saturated -seed 1 -frames 200000"
	"-nodes 100 -a 0.01 -saturated -seed 1 -frames 20000"
	"-nodes 1000 -a 0.01 -saturated -seed 1 -frames 20000"
	"-nodes 10 -a 0.01 -saturated -seed 2 -frames 20000"
	"-nodes 10 -a 1 -saturated -seed 3 -frames 20000"
	"-nodes 10 -a 0.5 -saturated -seed 4 -frames 20000"
	"-nodes 30 -a 0.05 -load 0.8 -seed 5 -frames 20000"
	"-nodes 20 -a 0.1 -load 3 -seed 6 -frames 20000"
	"-nodes 10 -a 0.05 -saturated -persistence 0.5 -idle-target 0 -cwmin 16 -cwmax 128 -seed 7 -frames 20000"
	"-nodes 3 -saturated -seed 8 -frames 20000 -scenario $scenario"
	"-protocol np-csma -nodes 100 -a 0.1 -load 2 -seed 9 -frames 20000"
	"-protocol aloha -nodes 50 -load 1 -seed 10 -frames 20000"
	"-protocol link -rate 9600 -payload 69 -prop-delay 833333ns -flows 1:2,2:3,3:4,4:5,5:1 -duration 2000s -seed 1"
	"-protocol link -rate 9600 -payload 69 -prop-delay 83333333ns -flows 1:2,1:3,2:1,3:2 -duration 2000s -seed 2"
)
strip() { sed -E 's/"(wall_seconds|frame_times_per_second)":[^,}]*,?//g'; }
echo "=== same runs: $oldc and $newc"
bad=0
for args in "${same[@]}"; do
	# shellcheck disable=SC2086 # args are words
	a=$("$tmp/slided-old" bench $args | strip)
	# shellcheck disable=SC2086
	b=$("$tmp/slided-new" bench $args | strip)
	if [ "$a" = "$b" ]; then
		echo "same: $args"
	else
		echo "DIFFERENT: $args"
		echo "  $oldc: $a"
		echo "  $newc: $b"
		bad=1
	fi
done
[ "$bad" = 0 ] || exit 1

# The speed table's commands.
speed=(
	"-nodes 10 -a 0.01 -saturated -seed 1 -frames 200000"
	"-nodes 100 -a 0.01 -saturated -seed 1 -frames 20000"
	"-nodes 200 -a 0.01 -saturated -seed 1 -frames 20000"
	"-nodes 1000 -a 0.01 -saturated -seed 1 -frames 20000"
	"-protocol np-csma -nodes 100 -a 0.1 -load 2 -frames 200000"
)
echo "=== speed: $oldc (old) and $newc (new) alternating, $rounds rounds, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
out=$tmp/speed.txt
for i in $(seq 1 "$rounds"); do
	for c in "${!speed[@]}"; do
		for side in old new; do
			# shellcheck disable=SC2086
			v=$(nice -n 10 "$tmp/slided-$side" bench ${speed[$c]} |
				sed -E 's/.*"frame_times_per_second":([0-9.]+).*/\1/')
			printf '%s\t%d\t%s\t%.0f\n' "$side" "$c" "$i" "$v" | tee -a "$out"
		done
	done
done
echo "=== end $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "=== frame times per wall second, median (range): $oldc -> $newc"
for c in "${!speed[@]}"; do
	line="${speed[$c]}:"
	for side in old new; do
		line+=$(awk -F'\t' -v s="$side" -v c="$c" '$1 == s && $2 == c { print $4 }' "$out" | sort -n |
			awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
				printf " %.0f (%.0f-%.0f)", m, v[1], v[NR] }')
	done
	echo "$line"
done
