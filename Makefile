# routerd: make build | test | demo | lint | fuzz | bench | image | image-test
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BUILD_TIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X github.com/routerd/routerd/router.Version=$(VERSION) -X github.com/routerd/routerd/router.BuildTime=$(BUILD_TIME)
BIN     := $(CURDIR)/bin
FUZZTIME ?= 30s

export CGO_ENABLED = 0

# bash, so that a pipe fails when its first command does (make test).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: build deps test vmtest demo lint fuzz chaos bench image image-test clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/routerd ./cmd/routerctl

# Installs the Debian packages the lab uses (.ci/packages) that are missing.
# Packages must not start their own daemons on the host: the lab starts them
# inside namespaces, hence the policy-rc.d.
deps:
	@missing=$$(for p in $$(grep -v '^#' .ci/packages); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "make deps: not root; lab tests will skip. Missing:" $$missing; exit 0; fi; \
	echo "installing:" $$missing; \
	[ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }; \
	DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing

# The whole suite. Integration tests build network-namespace labs and need
# root; with CI set they fail instead of skipping. Packages run one at a time
# because the lab's mDNS peer (avahi-daemon) is one per machine.
# testsum prints what go test would and counts the tests that passed
# without root. Afterwards, cicheck checks that every program the suite ran
# comes from a package in .ci/packages, so a fresh machine has it.
test: deps build lint
	rm -f $(BIN)/programs.log
	ROUTERD_PROGRAMS_LOG=$(BIN)/programs.log ROUTERD_BIN_DIR=$(BIN) $(GO) test -json -count=1 -p 1 -timeout 40m ./... | $(GO) run ./internal/testsum
	$(GO) run ./internal/cicheck -packages .ci/packages $(BIN)/programs.log

# Only the tests that need the full kernel (802.1Q, PPPoE, CAKE, flowtables,
# kernel WireGuard) or a machine of their own: where this kernel lacks what
# they need they run in the VM lab, a qemu guest booted from Debian's kernel
# (internal/lab/vm); the others skip. make test runs them too.
vmtest: deps build
	ROUTERD_KERNEL_TESTS_ONLY=1 ROUTERD_BIN_DIR=$(BIN) $(GO) test -count=1 -p 1 -timeout 30m ./...

# A virtual ISP, VPN provider and LAN clients in namespaces, routerd on them,
# its status and the path each client takes. Needs root.
demo: deps build
	ROUTERD_BIN_DIR=$(BIN) $(GO) run ./internal/demo

# errcheck: every error of product code is checked, or discarded with a
# reason (.errcheck-excludes lists the calls not checked anywhere, and
# why). The lab (internal/lab) is test harness and stops a test on failure
# by other means.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool errcheck -ignoretests -exclude .errcheck-excludes -ignore 'Close|Set(Read|Write)?Deadline|Fprint.*' \
		$$($(GO) list ./... | grep -v '/internal/lab')

# The appliance under load, disturbed for CHAOS (kill -9, SIGHUP with config
# flips, the tunnel flapping, the WAN NIC replugged, the LAN NIC flapping),
# then watched idle for SOAK: leases kept, no VPN leak, transfers alive, no
# resource growth. make test runs a short form. Needs root.
CHAOS ?= 1m
SOAK  ?= 10m
chaos: deps build
	ROUTERD_CHAOS=$(CHAOS) ROUTERD_SOAK=$(SOAK) ROUTERD_BIN_DIR=$(BIN) $(GO) test -count=1 -run '^TestChaos$$' -v -timeout 30m ./internal/e2e

# Each fuzz target for FUZZTIME (minimisation capped so big seeds do not stall).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s $$pkg || exit 1; \
	  done; \
	done

# The bootable disk image (see README, "The image"): images/build/routerd.img,
# with CONFIG (if given) as routerd.toml on its data partition and the
# contents of the directory DATA (if given) beside it; and the update
# artifact images/build/routerd.efi with its .sha256 (and .sig, signed with
# SIGNING_KEY if given).
image: build
	$(GO) run ./images/mkimage -routerd $(BIN)/routerd -out images/build/routerd.img \
	  -cache images/build/cache $(if $(CONFIG),-config $(CONFIG)) $(if $(DATA),-data-dir $(DATA)) \
	  $(if $(SIGNING_KEY),-signing-key $(SIGNING_KEY))

# Boots a freshly built image in qemu (TCG, OVMF) on the lab; part of make test.
image-test: deps build
	ROUTERD_BIN_DIR=$(BIN) $(GO) test -count=1 -v ./images/

bench: build
	ROUTERD_BIN_DIR=$(BIN) $(GO) test -count=1 -p 1 -run XXX -bench . -benchtime 1x -timeout 120m ./bench/...

clean:
	rm -rf $(BIN) images/build
