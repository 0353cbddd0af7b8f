# callwatch — make targets read like a menu.
GO        ?= go
BIN       := bin/callwatch
# Debian packages the tests need: real servers, started by the tests themselves.
TEST_DEBS := clickhouse-server clickhouse-client prometheus prometheus-alertmanager chromium zookeeper
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
GOTEST_FLAGS ?= -timeout 20m

.PHONY: run query-sample build test deps lint fmt fuzz clean check-rules test-rules test-faults

## run: build callwatch, fetch embedded ClickHouse, and serve rules.d over demo traffic on http://127.0.0.1:9466/
run: build chdb
	$(BIN) serve --config.file deploy/demo/callwatch.yaml --demo

## query-sample: evaluate an expression in memory over the bundled sample events
query-sample: build
	$(BIN) query --events testdata/sample_events.jsonl --time 2025-11-24T16:10:00Z \
		'max by (tenant_id) (p95(latency_ms[5m])) > 5000'

include chdb.mk
include bench.mk

## build: compile bin/callwatch
build:
	$(GO) build -o $(BIN) ./cmd/callwatch

## test: install what the tests need when missing, then run every test
test: deps chdb check-rules test-rules
	$(GO) vet ./...
	$(GO) test $(GOTEST_FLAGS) ./...
	# The concurrent paths under the race detector: groups evaluated in
	# parallel with background reads (a subtest of the server's contract
	# suite), and the shared batch of groups.
	$(GO) test -race -count=2 -run '^TestBackendOnTheServer$$/^IncrementalConcurrent$$' ./engine/clickhouse
	$(GO) test -race -count=2 -run 'Coalescer' ./engine

## test-faults: the fault suite (ClickHouse hung, killed, erroring; notifiers failing four ways; kill -9 between fired and sent; HA takeover and an Alertmanager pair) with its report
test-faults: deps
	@mkdir -p .cache; $(GO) test -count=1 -v -run 'Fault|Kill|HA' ./cmd/callwatch/ > .cache/faults.log 2>&1; rc=$$?; \
	grep -E 'FAULT REPORT|^(--- |ok|FAIL|PASS)' .cache/faults.log; [ $$rc -eq 0 ] || cat .cache/faults.log; exit $$rc

## check-rules: check rules.d (YAML, expressions, templates, durations)
check-rules: build
	$(BIN) check rules rules.d/*.yaml deploy/demo/rules/*.yaml

## test-rules: run the unit tests of rules.d in alerts_test/ (in memory)
test-rules: build
	$(BIN) test rules alerts_test/*.yaml

## deps: install the Debian packages the tests need (only when missing)
deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# golangci-lint is pinned and installed into .cache/bin when missing (or at
# another version), so every checkout lints with the same rules.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT         := .cache/bin/golangci-lint-$(GOLANGCI_LINT_VERSION)
# (Defined before the lint rule: make expands a rule's prerequisites as it
# reads it.)

## lint: gofmt, go vet and golangci-lint (errorlint, revive, staticcheck, unparam, misspell, …; see .golangci.yml)
lint: $(GOLANGCI_LINT)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...

$(GOLANGCI_LINT):
	@mkdir -p .cache/bin
	GOBIN=$(CURDIR)/.cache/bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv .cache/bin/golangci-lint $@

## fmt: format the code
fmt:
	gofmt -w $$(git ls-files '*.go')

## fuzz: run the fuzz targets longer than the seeded runs in make test (FUZZTIME=1m each)
FUZZTIME ?= 1m
fuzz:
	$(GO) test ./dsl -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./engine/clickhouse -run '^$$' -fuzz FuzzCompile -fuzztime $(FUZZTIME)
	$(GO) test ./rulefmt -run '^$$' -fuzz FuzzParseRuleFile -fuzztime $(FUZZTIME)
	$(GO) test ./config -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./web -run '^$$' -fuzz FuzzAPI -fuzztime $(FUZZTIME)
	$(GO) test ./web -run '^$$' -fuzz FuzzChartDraw -fuzztime $(FUZZTIME)
	$(GO) test ./engine -run '^$$' -fuzz FuzzSimpleTemplate -fuzztime $(FUZZTIME)

## clean: remove build outputs
clean:
	rm -rf bin
