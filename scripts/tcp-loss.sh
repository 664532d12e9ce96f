#!/bin/sh
# One TCP bulk transfer (iperf3) between two slided daemons, each in its own
# network namespace, over a simulated medium that loses a share of the
# receptions. Prints iperf3's goodput and retransmissions and the sender's
# TCP counters that show reordering. Needs root and iperf3; run from the
# repository root:
#
#   scripts/tcp-loss.sh [LOSS [SECONDS [extra slided run flags...]]]
#   scripts/tcp-loss.sh 0.1 30 -reorder=false
#   BIN=/tmp/slided-old scripts/tcp-loss.sh 0.1 30     (another build)
#
# KEEP=DIR keeps the daemons' logs, their link captures (n1.pcap, n2.pcap:
# -pcap) and a TCP capture of node 2's TAP (tap2.pcap, tcpdump or tshark) in DIR.
# RATE: the medium's bit rate (default 115200). Addresses 198.51.100.1 and .2
# in namespaces of its own, no routes beyond the /24; everything it starts is
# stopped by PID and the namespaces are deleted on exit.
set -eu
LOSS=${1:-0.1}
SECS=${2:-30}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
RATE=${RATE:-115200}
T=$(mktemp -d /tmp/tcp-loss.XXXXXX)
NS=tcploss$$
PIDS=""
cleanup() {
	if [ -n "${KEEP:-}" ]; then
		mkdir -p "$KEEP" && cp "$T"/*.log "$T"/*.pcap* "$KEEP"/ 2>/dev/null || true
	fi
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	sleep 1
	for i in 1 2; do ip netns del "$NS-$i" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
if [ -n "${BIN:-}" ]; then
	cp "$BIN" "$T/slided"
else
	go build -o "$T/slided" ./cmd/slided
fi
"$T/slided" sim -listen "$T/m.sock" -rate "$RATE" -loss "$LOSS" >"$T/m.log" 2>&1 &
PIDS="$!"
for _ in $(seq 50); do [ -S "$T/m.sock" ] && break; sleep 0.1; done
for i in 1 2; do
	CAP=""
	[ -n "${KEEP:-}" ] && CAP="-pcap $T/n$i.pcap -pcap-max-size 256M -pcap-files 1"
	ip netns add "$NS-$i"
	ip -n "$NS-$i" link set lo up
	ip netns exec "$NS-$i" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
	ip netns exec "$NS-$i" "$T/slided" run -tap slided0 -node "$i" -phy "sim:$T/m.sock" \
		-addr "198.51.100.$i/24" -control "$T/n$i.ctl" -log-format json $CAP "$@" >"$T/n$i.log" 2>&1 &
	PIDS="$PIDS $!"
done
for _ in $(seq 100); do
	[ -S "$T/n1.ctl" ] && [ -S "$T/n2.ctl" ] && break
	sleep 0.1
done
sleep 2
ip -n "$NS-1" neigh replace 198.51.100.2 lladdr 02:53:4c:44:00:02 nud permanent dev slided0
ip -n "$NS-2" neigh replace 198.51.100.1 lladdr 02:53:4c:44:00:01 nud permanent dev slided0
if [ -n "${KEEP:-}" ]; then
	if command -v tcpdump >/dev/null; then
		ip netns exec "$NS-2" tcpdump -q -n -s 128 -i slided0 -w "$T/tap2.pcap" tcp 2>"$T/tcpdump.log" &
	else
		ip netns exec "$NS-2" tshark -q -s 128 -i slided0 -f tcp -w "$T/tap2.pcap" 2>"$T/tcpdump.log" &
	fi
	PIDS="$PIDS $!"
	sleep 1
fi
ip netns exec "$NS-2" iperf3 -s -1 -B 198.51.100.2 >"$T/server.log" 2>&1 &
PIDS="$PIDS $!"
sleep 1
ip netns exec "$NS-1" nstat -n >/dev/null
timeout $((SECS + 60)) ip netns exec "$NS-1" iperf3 -c 198.51.100.2 -t "$SECS" -J >"$T/client.json"
python3 - "$T/client.json" "$RATE" "$LOSS" "$*" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
e = d["end"]
rx = e["sum_received"]["bits_per_second"]
print(f"loss {sys.argv[3]} flags [{sys.argv[4]}]: goodput {rx/1000:.1f} kbit/s = {rx/int(sys.argv[2]):.3f} of the channel, "
      f"{e['sum_sent']['retransmits']} TCP retransmissions")
EOF
ip netns exec "$NS-1" nstat -a TcpRetransSegs TcpExtTCPFastRetrans TcpExtTCPSACKReorder TcpExtTCPDSACKRecv \
	TcpExtTCPSpuriousRTOs TcpExtTCPLossProbes 2>/dev/null | grep -v '^#' | awk '{printf "  %s %s", $1, $2} END {print ""}'
for i in 1 2; do
	"$T/slided" status -control "$T/n$i.ctl" | grep -E '^(link|in order) ' | sed "s/^/  node $i: /" || true
done
