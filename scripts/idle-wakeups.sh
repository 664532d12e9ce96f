#!/bin/bash
# Measures what idle slided daemons cost: wake-ups a second, CPU and
# resident memory, one row per daemon (issue 11, "An idle daemon sleeps").
#
# Usage (as root): scripts/idle-wakeups.sh [DUR]
#   DUR: seconds measured, default 60.
#   SRC=DIR builds slided from another checkout (e.g. an older commit in a
#   second worktree) instead of this one; SLIDED=FILE uses a built binary.
#
# It builds slided, creates one network namespace per daemon (names
# slided-idle-PID-N; loopback up, IPv6 off so that the kernel's own router
# solicitations and MLD reports do not make traffic), and starts:
#   sim 1, sim 2  two daemons on a simulated medium over a Unix socket
#                 (slided sim, 9600 bit/s): one peer each, no traffic;
#   medium        that slided sim process itself;
#   kiss-tcp      a daemon on a KISS TNC over TCP: a socat listener in the
#                 daemon's namespace that accepts and never answers;
#   serial        a daemon on a socat pty pair, carrier sensed from received
#                 bytes (carrier=rx), with cat holding the far end open.
# It waits 5 s, then samples each process twice, DUR apart, in /proc:
# wake-ups are the voluntary plus nonvoluntary context switches of all its
# threads (/proc/PID/task/*/status), CPU is utime+stime (/proc/PID/stat) as
# a percentage of one core, RSS is VmRSS at the end. Everything it started
# is killed by PID and the namespaces are deleted on exit.
set -euo pipefail

DUR=${1:-60}
WARM=5
if [ "$(id -u)" != 0 ]; then
	echo "run as root: the daemons create TAP devices in network namespaces" >&2
	exit 1
fi
for cmd in ip socat awk; do
	command -v "$cmd" >/dev/null || { echo "needs $cmd" >&2; exit 1; }
done

HERE=$(cd "$(dirname "$0")/.." && pwd)
SRC=${SRC:-$HERE}
T=$(mktemp -d /tmp/slided-idle.XXXXXX)
NSS=()
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$p" 2>/dev/null || true
	done
	local n
	for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT

if [ -n "${SLIDED:-}" ]; then
	BIN=$SLIDED
else
	BIN=$T/slided
	(cd "$SRC" && go build -o "$BIN" ./cmd/slided)
fi
COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	COMMIT="$COMMIT+dirty"
fi

newns() { # newns N: creates namespace slided-idle-$$-N (in this shell, not a subshell: NSS records it)
	local n=slided-idle-$$-$1
	NSS+=("$n")
	ip netns add "$n"
	ip -n "$n" link set lo up
	ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

NAMES=()
WATCH=()
watch() { NAMES+=("$1"); WATCH+=("$2"); }

# The simulated medium and its two daemons.
"$BIN" sim -listen "$T/m.sock" -rate 9600 >"$T/medium.log" 2>&1 &
PIDS+=($!)
watch medium $!
for _ in $(seq 50); do [ -S "$T/m.sock" ] && break; sleep 0.1; done
newns 1
NS1=slided-idle-$$-1
newns 2
NS2=slided-idle-$$-2
ip netns exec "$NS1" "$BIN" run -tap slided0 -node 1 -phy "sim:$T/m.sock" -addr 192.0.2.1/24 >"$T/sim1.log" 2>&1 &
PIDS+=($!)
watch "sim 1" $!
ip netns exec "$NS2" "$BIN" run -tap slided0 -node 2 -phy "sim:$T/m.sock" -addr 192.0.2.2/24 >"$T/sim2.log" 2>&1 &
PIDS+=($!)
watch "sim 2" $!

# A KISS TNC over TCP that accepts and stays silent (socat -u only reads).
newns 3
NS3=slided-idle-$$-3
ip netns exec "$NS3" socat -u TCP-LISTEN:8001,bind=127.0.0.1,reuseaddr OPEN:/dev/null,wronly >"$T/tnc.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do ip netns exec "$NS3" ss -Hltn 'sport = :8001' | grep -q . && break; sleep 0.1; done
ip netns exec "$NS3" "$BIN" run -tap slided0 -node 3 -phy 'kiss-tcp:127.0.0.1:8001?air=9600' -addr 198.51.100.3/24 >"$T/kiss.log" 2>&1 &
PIDS+=($!)
watch kiss-tcp $!

# A raw serial modem on a pty pair; cat holds the far end open and reads it.
socat pty,raw,echo=0,link="$T/ttyA" pty,raw,echo=0,link="$T/ttyB" >"$T/socat-pty.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -e "$T/ttyA" ] && [ -e "$T/ttyB" ] && break; sleep 0.1; done
cat "$T/ttyB" >/dev/null 2>&1 &
PIDS+=($!)
newns 4
NS4=slided-idle-$$-4
ip netns exec "$NS4" "$BIN" run -tap slided0 -node 4 -phy "serial:$T/ttyA?baud=115200&air=9600&carrier=rx" -addr 198.51.100.4/24 >"$T/serial.log" 2>&1 &
PIDS+=($!)
watch serial $!

sleep "$WARM"
for i in "${!WATCH[@]}"; do
	if ! kill -0 "${WATCH[$i]}" 2>/dev/null; then
		echo "${NAMES[$i]} (pid ${WATCH[$i]}) is not running; its log:" >&2
		cat "$T"/*.log >&2
		exit 1
	fi
done

sample() { # sample PID: prints "ticks switches threads"
	local t c n
	t=$(awk '{print $14 + $15}' "/proc/$1/stat")
	c=$(cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}')
	n=$(ls "/proc/$1/task" | wc -l)
	echo "$t $c $n"
}
declare -a S0
for i in "${!WATCH[@]}"; do S0[$i]=$(sample "${WATCH[$i]}"); done
sleep "$DUR"
HZ=$(getconf CLK_TCK)
echo "# $(date -u +%FT%TZ) slided $COMMIT, $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), over $DUR s after $WARM s"
printf '| %-9s | %10s | %13s | %8s | %7s |\n' process "wake-ups/s" "CPU (% core)" "RSS (MB)" threads
printf '| %-9s | %10s | %13s | %8s | %7s |\n' --- --- --- --- ---
for i in "${!WATCH[@]}"; do
	p=${WATCH[$i]}
	set -- ${S0[$i]} $(sample "$p")
	rss=$(awk '/VmRSS/ {print $2}' "/proc/$p/status")
	awk -v n="${NAMES[$i]}" -v t0="$1" -v c0="$2" -v t1="$4" -v c1="$5" -v th="$6" -v s="$DUR" -v hz="$HZ" -v rss="$rss" 'BEGIN {
		printf "| %-9s | %10.2f | %13.3f | %8.1f | %7d |\n", n, (c1 - c0) / s, 100 * (t1 - t0) / hz / s, rss / 1024, th }'
done
