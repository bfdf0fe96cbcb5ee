# djdeploy: every target a newcomer or CI needs. `make test` and `make demo`
# install what they need first (see .ci/deps.sh), so a fresh machine passes
# with nothing done by hand.

GO        ?= go
# The Python 3.12 environments .ci/deps.sh builds from the hashed locks in
# .ci/python (internal/testenv finds the same paths when these are unset).
TOOLS     := $(CURDIR)/.tools
export DJDEPLOY_TEST_PYTHON         ?= $(TOOLS)/py/bin/python
export DJDEPLOY_TEST_PYTHON_DJANGO6 ?= $(TOOLS)/py-django6/bin/python
export DJDEPLOY_TEST_UV             ?= $(TOOLS)/py/bin/uv
BIN       := bin/djdeploy
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/djdeploy/djdeploy/internal/cli.Version=$(VERSION)
# -race needs cgo; it roughly doubles test time, which CI's budget allows.
RACE      ?= -race
export PATH := $(CURDIR)/.tools/node_modules/.bin:$(PATH)

.PHONY: all build deps test test-go lint demo bench bench-deps fuzz generate clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/djdeploy

## deps: the Python 3.12 environments from PyPI (.tools/py: Django 5.2 LTS, .tools/py-django6,
## .tools/conformance, .tools/outside; hashed locks in .ci/python), zip, Azurite, and for the action's test
## (internal/actiontest) docker.io, mmdebstrap and act; each only when missing.
deps:
	@bash .ci/deps.sh
	@bash .ci/act-deps.sh

## test: the whole suite, with the real components (Azurite, Django, the emulator).
test: deps
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal)" || { echo "gofmt needed on:"; gofmt -l cmd internal; exit 1; }
	@rm -f .tools/fault-matrix.txt
	DJDEPLOY_FAULT_MATRIX_TABLE=$(CURDIR)/.tools/fault-matrix.txt $(GO) test $(RACE) -timeout 30m ./...
	@echo "Fault matrix (internal/faults; make bench runs every row):"; cat .tools/fault-matrix.txt 2>/dev/null || echo "  (not run: Azurite or Django missing)"
	@bash .ci/fuzz.sh 5s
	@bash .ci/repro.sh
	$(MAKE) lint

## lint: actionlint over this repo's workflows and the example workflow; ci.yml
## uses the action as `uses: ./`, which is how action.yml gets checked too.
lint:
	$(GO) tool actionlint .github/workflows/*.yml examples/github-workflow.yml

## demo: a release of examples/django-app to the local emulator and Azurite.
demo: deps build
	@bash .ci/demo.sh

## bench: djdeploy against its peers (zip, Info-ZIP, az, rclone, azcopy); prints ratios and peak memory.
bench: deps bench-deps build
	$(GO) test -tags bench -run 'Bench' -count=1 -timeout 60m -v ./internal/bench/
	DJDEPLOY_FAULT_MATRIX=full $(GO) test -tags bench -run 'TestFaultMatrix|TestBench' -count=1 -timeout 60m -v ./internal/faults/

bench-deps:
	@bash .ci/bench-deps.sh

## fuzz: every fuzz target for 60s each (make test runs them for 5s); FUZZTIME=10m for longer.
FUZZTIME ?= 60s
fuzz:
	@bash .ci/fuzz.sh $(FUZZTIME)

## generate: regenerate action.yml inputs, pipeline parameters and the README settings table.
generate:
	UPDATE_GOLDEN=1 $(GO) test ./internal/... -run 'Generated|Golden' -count=1

clean:
	rm -rf bin .demo
