#!/bin/sh
# Two slided daemons, each in its own network namespace, over two emulated
# acoustic modems (internal/acoustic), then a few pings from node 1 to node 2.
# Run as root from the repository root:
#
#   scripts/acoustic-trial.sh [PINGS [INTERVAL [extra slided run flags...]]]
#   EMU="-prop 1s -air 2400" PHY='?baud=19200&air=2400&frame=256&txdelay=0.25s' scripts/acoustic-trial.sh 5 10 -arq=false
#
# EMU: acousticemu flags; PHY: the query after serial:PATH; SIZE: ping -s
# (default 56: 64 bytes of ICMP). Everything it starts is stopped by PID and
# the namespaces are deleted on exit. Logs stay in $DIR (a temporary dir).
set -eu
PINGS=${1:-5}
INTERVAL=${2:-10}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
EMU=${EMU:--n 2 -baud 19200 -air 2400 -preamble 250ms -prop 1s}
PHY=${PHY:-?baud=19200&air=2400&frame=256&txdelay=0.25s}
SIZE=${SIZE:-56}
DIR=$(mktemp -d /tmp/acoustic-trial.XXXXXX)
NS=actrial$$
PIDS=""

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	sleep 1
	for i in 1 2; do ip netns del "$NS-$i" 2>/dev/null || true; done
	echo "logs in $DIR"
}
trap cleanup EXIT INT TERM

go build -o "$DIR/slided" ./cmd/slided
go build -o "$DIR/acousticemu" ./internal/acoustic/cmd/acousticemu
"$DIR/acousticemu" $EMU -link "$DIR/modem" >"$DIR/emu.log" 2>&1 &
EMUPID=$!
PIDS="$EMUPID"
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e "$DIR/modem1" ] && break; sleep 0.2; done
cat "$DIR/emu.log"
for i in 1 2; do
	ip netns add "$NS-$i"
	ip -n "$NS-$i" link set lo up
	# no IPv6 start-up traffic on the slow link
	ip netns exec "$NS-$i" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
	ip netns exec "$NS-$i" "$DIR/slided" run -tap slided0 -node "$i" \
		-phy "serial:$DIR/modem$((i - 1))$PHY" -addr "192.0.2.$i/24" \
		-control "$DIR/node$i.ctl" -prop-delay 1s -log-format json "$@" >"$DIR/node$i.log" 2>&1 &
	PIDS="$PIDS $!"
done
for _ in $(seq 50); do
	[ -S "$DIR/node1.ctl" ] && [ -S "$DIR/node2.ctl" ] && break
	sleep 0.2
done
sleep 2
# static neighbour entries: no ARP on the slow link
ip -n "$NS-1" neigh replace 192.0.2.2 lladdr 02:53:4c:44:00:02 nud permanent dev slided0
ip -n "$NS-2" neigh replace 192.0.2.1 lladdr 02:53:4c:44:00:01 nud permanent dev slided0
timeout $((PINGS * INTERVAL + 60)) ip netns exec "$NS-1" ping -c "$PINGS" -i "$INTERVAL" -W 30 -s "$SIZE" 192.0.2.2 || true
for i in 1 2; do
	echo "node $i:"
	"$DIR/slided" status -control "$DIR/node$i.ctl" | grep -E 'to air|from air|link  |drops' || true
done
kill -INT "$EMUPID"
sleep 1
tail -n 2 "$DIR/emu.log"
