#!/bin/sh
# dist-sizes.sh: build slided for every target board, static (CGO_ENABLED=0,
# -trimpath, -ldflags "-s -w"), into $DIST (default dist/), and print a table
# of the binary sizes. `make dist` runs this script; the target list lives
# here only.
#
#   scripts/dist-sizes.sh            build all targets, print the table
#   DIST=/tmp/d scripts/dist-sizes.sh
#
# Exit status is non-zero if any target fails to build or is over 8 MiB.
set -eu

cd "$(dirname "$0")/.."
DIST=${DIST:-dist}
GO=${GO:-go}
PKG=./cmd/slided
mkdir -p "$DIST"

# name GOOS GOARCH extra-env
TARGETS='
linux-armv6   linux arm     GOARM=6
linux-armv7   linux arm     GOARM=7
linux-arm64   linux arm64   -
linux-mipsle  linux mipsle  GOMIPS=softfloat
linux-riscv64 linux riscv64 -
linux-amd64   linux amd64   -
freebsd-amd64 freebsd amd64 -
freebsd-arm64 freebsd arm64 -
freebsd-armv7 freebsd arm   GOARM=7
'

failed=0
echo "$TARGETS" | while read -r name goos goarch extra; do
	[ -n "$name" ] || continue
	out="$DIST/slided-$name"
	if [ "$extra" = "-" ]; then extra=""; fi
	rm -f "$out"
	# shellcheck disable=SC2086 # $extra is one VAR=value word or empty
	if ! env CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" $extra \
		"$GO" build -trimpath -ldflags "-s -w" -o "$out" "$PKG"; then
		echo "build failed: $name" >&2
		echo "$name" >>"$DIST/.failed"
		continue
	fi
done

if [ -f "$DIST/.failed" ]; then
	failed=1
	rm -f "$DIST/.failed"
fi

LIMIT=$((8 * 1024 * 1024)) # the issue's ceiling for one binary: 8 MiB
printf '%-28s %12s %9s\n' "binary" "bytes" "MiB"
for f in "$DIST"/slided-*; do
	if [ "$(wc -c <"$f")" -gt "$LIMIT" ]; then
		echo "over 8 MiB: $f" >&2
		failed=1
	fi
	[ -f "$f" ] || continue
	bytes=$(wc -c <"$f" | tr -d ' ')
	printf '%-28s %12s %9s\n' "$(basename "$f")" "$bytes" \
		"$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')"
done
printf '(%s, %s)\n' "$("$GO" version | cut -d' ' -f3)" "$(git describe --always --dirty 2>/dev/null || echo 'no git')"
exit $failed
