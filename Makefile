# Ferry's everyday commands. CI runs .ci/run, which runs fmt-check, vet and
# test; `make` alone runs those and builds the binary.
#
#   make test                    scripts/test.sh: every test, race detector on
#   make test ARGS='-run TestX ./storage/...'
#   make fuzz FUZZTIME=2m        every fuzz target, one after the other
#   make bench BENCH=Append COUNT=10 > new.txt   (compare runs with benchstat)

GO        ?= go
ARGS      ?=
FUZZTIME  ?= 30s
BENCH     ?= .
BENCHTIME ?= 1s
COUNT     ?= 1
# A tagged commit builds as that tag; anything else reports "dev" and leaves
# the commit to the build information that `ferry version` reads.
VERSION   ?= $(shell git describe --tags --dirty 2>/dev/null || echo dev)

.PHONY: all test vet fmt-check generate generate-check build fuzz bench clean

all: fmt-check generate-check vet build test

# The native API's Go code, from api/ferry/v1/*.proto (scripts/genproto.sh).
generate:
	$(GO) generate ./api/...

# Fails when the committed generated code differs from what generate writes.
generate-check:
	bash scripts/genproto.sh --check

test:
	bash scripts/test.sh $(ARGS)

vet:
	$(GO) vet ./...
	if [ -f bench/go.mod ]; then cd bench && $(GO) vet ./...; fi

# gofmt -l names the files whose formatting differs; any is a failure.
fmt-check:
	@files="$$(gofmt -l .)" || exit 1; \
	if [ -n "$$files" ]; then \
		echo "these files need gofmt -w:"; echo "$$files"; exit 1; \
	fi

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/ferry ./cmd/ferry

fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -count $(COUNT) -benchmem ./...

clean:
	rm -rf bin
