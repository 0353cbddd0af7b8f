# make bench — included by the Makefile (include bench.mk).
#
# Starts a private ClickHouse server, loads a generated dataset and times
# the 100-rule pack of bench/rules three ways (naive, handwritten SQL,
# callwatch cold and steady), /metrics and `callwatch test rules`. Prints a
# table and writes bench/results.json; BENCHMARKS.md records the figures.
#
#   make bench                          10M events (about 1.5 minutes on 2 quiet cores)
#   make bench BENCH_EVENTS=1000000     a smaller dataset
#   make bench BENCH_FLAGS='-reps 9 -naive=false'
GO  ?= go
BIN ?= bin/callwatch

# Where this file is included must not change the default goal.
bench_default_goal := $(.DEFAULT_GOAL)

.PHONY: bench

## bench: time rule evaluation, /metrics and rule tests on a generated dataset (BENCH_EVENTS, default 10M)
bench: build
	$(GO) run ./bench -callwatch $(BIN) $(if $(BENCH_EVENTS),-events $(BENCH_EVENTS)) $(BENCH_FLAGS)

.DEFAULT_GOAL := $(bench_default_goal)
