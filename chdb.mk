# chdb.mk — embedded ClickHouse (chDB's libchdb.so), included by the Makefile.
#
# The library is the ClickHouse engine as a shared object (559 MB unpacked,
# glibc only, linux/amd64), shipped in an npm package. It is fetched at a
# pinned version into .cache/chdb/ (ignored by git) and loaded by
# storage/chdb at run time: callwatch builds and runs without it, and only
# embedded storage needs it. CALLWATCH_CHDB_LIB points callwatch at a copy
# elsewhere. Keep CHDB_VERSION equal to chdb.Version in storage/chdb.
#
# Include this file after the Makefile's first target, so that it does not
# become the default goal.

CHDB_VERSION := 26.5.3
CHDB_PACKAGE := @chdb/lib-linux-x64-gnu@$(CHDB_VERSION)
CHDB_DIR     := .cache/chdb
CHDB_LIB     := $(CHDB_DIR)/libchdb.so

.PHONY: chdb

## chdb: fetch chDB's libchdb.so (ClickHouse 26.x as a library) into .cache/chdb/ when missing
# npm pack downloads the package's tarball without installing anything. The
# library is extracted in a temporary directory and moved into place last,
# so an interrupted fetch never leaves a truncated libchdb.so behind; a
# library of another version (see VERSION beside it) is replaced.
chdb:
	@if [ -f $(CHDB_LIB) ] && [ "$$(cat $(CHDB_DIR)/VERSION 2>/dev/null)" = "$(CHDB_VERSION)" ]; then exit 0; fi; \
	command -v npm >/dev/null 2>&1 || { echo "make chdb: npm is needed to fetch $(CHDB_PACKAGE) (apt-get install npm)" >&2; exit 1; }; \
	set -e; mkdir -p $(CHDB_DIR); \
	echo "fetching $(CHDB_PACKAGE) into $(CHDB_DIR)/"; \
	tmp=$$(mktemp -d "$(CHDB_DIR)/fetch.XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	tgz=$$(cd "$$tmp" && npm pack --silent "$(CHDB_PACKAGE)" | tail -n 1); \
	tar -xzf "$$tmp/$$tgz" -C "$$tmp" package/libchdb.so; \
	mv "$$tmp/package/libchdb.so" $(CHDB_LIB); \
	echo "$(CHDB_VERSION)" > $(CHDB_DIR)/VERSION; \
	echo "$(CHDB_LIB): $$(du -h $(CHDB_LIB) | cut -f1), chDB $(CHDB_VERSION)"
