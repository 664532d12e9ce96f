# slided: build, test and cross-build static binaries for small boards.
#
#   make build   static binary for this machine in ./slided
#   make test    go test ./... (network tests need root: they create namespaces)
#   make dist    static binaries for the target boards in dist/, with a size table
#   make install install the binary, unit and sample config under $(DESTDIR)
#   make clean

GO      ?= go
PREFIX  ?= /usr/local
DESTDIR ?=
GOFLAGS_STATIC = -trimpath -ldflags "-s -w"

.PHONY: all build test vet dist install clean

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_STATIC) -o slided ./cmd/slided

test:
	$(GO) test -p 1 -count=1 ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }

# The target list (linux/arm v6 and v7, arm64, mipsle softfloat, riscv64,
# amd64) lives in the script.
dist:
	GO=$(GO) DIST=dist scripts/dist-sizes.sh

# Installs one static file, the systemd unit and (if none is there yet) the
# sample config. Run `systemctl daemon-reload` afterwards.
install: build
	install -D -m 0755 slided $(DESTDIR)$(PREFIX)/bin/slided
	install -D -m 0644 packaging/slided.service $(DESTDIR)/etc/systemd/system/slided.service
	test -e $(DESTDIR)/etc/slided/slided.toml || \
		install -D -m 0640 packaging/slided.toml $(DESTDIR)/etc/slided/slided.toml

clean:
	rm -rf dist slided
