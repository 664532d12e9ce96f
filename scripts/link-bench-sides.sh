#!/bin/bash
# link-bench-sides.sh OLD NEW SEEDS -- BENCH-FLAGS...: `slided bench -protocol
# link BENCH-FLAGS -seed S` with two slided binaries (OLD and NEW, built from
# the commits to compare) in one sitting, old and new alternated for each
# seed of SEEDS ("1 2 3"), one process at a time at nice 19. Prints a line a
# run: side, seed, S (datagrams delivered per 100-byte frame time),
# goodput/channel, Jain, the smallest flow's datagrams, retransmissions and
# give-ups per datagram delivered, datagrams handed up twice (duplicates),
# the longest silence of a flow, the wall time. Needs python3.
# Ring of N nodes (docs/mac.md):
#   F=$(for i in $(seq 1 100); do printf '%d:%d,' $i $((i % 100 + 1)); done)
#   scripts/link-bench-sides.sh /tmp/old /tmp/new "1 2 3" -- -rate 9600 -payload 69 \
#     -prop-delay 833333ns -flows ${F%,} -duration 1666666666us
set -euo pipefail
old=${1:?usage: link-bench-sides.sh OLD NEW SEEDS -- FLAGS...}
new=${2:?usage: link-bench-sides.sh OLD NEW SEEDS -- FLAGS...}
seeds=${3:?usage: link-bench-sides.sh OLD NEW SEEDS -- FLAGS...}
shift 3
[ "${1:-}" = -- ] && shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for s in $seeds; do
	for side in old new; do
		bin=$old
		[ "$side" = new ] && bin=$new
		nice -n 19 "$bin" bench -protocol link "$@" -seed "$s" >"$out"
		python3 - "$side" "$s" "$out" <<'PY'
import json, sys
side, seed, path = sys.argv[1], sys.argv[2], sys.argv[3]
d = json.load(open(path))
flows = d.get("flows") or []
n = sum(f["datagrams"] for f in flows)
frame = 800 / d["bit_rate"]  # a 100-byte frame's airtime, s
S = n * frame / (d["duration_ns"] / 1e9)
small = min((f["datagrams"] for f in flows), default=0)
per = lambda x: x / n if n else float("nan")
print(f"{side} seed {seed}: S {S:.3f} goodput/channel {d['goodput_per_channel']:.4f} Jain {d['jain']:.4f} "
      f"smallest {small} datagrams {n} retx/dg {per(d['retransmissions']):.3f} give-ups/dg {per(d['give_ups']):.3f} "
      f"duplicates {d.get('duplicates', 'n/a')} max_gap {d.get('max_gap_ns', 0)/1e9:.0f}s wall {d['wall_seconds']:.1f}s")
PY
	done
done
