# mailorder — a thin wrapper over cargo.
#   make run    build and start the whole system on loopback, state under ./run
#   make test   install what the tests need (as root), build, run every test
#   make check  fmt, clippy, test, cargo deny (licenses, bans, sources, advisories)
#   make deny   cargo deny check alone (needs: cargo install cargo-deny --locked)
#   make fuzz   every fuzz/ target for FUZZ_SECONDS each (needs cargo-fuzz; not in check)
#   make install PREFIX=/var/mailorder   (root) users, directories, set-id programs
#   make bench  the benchmarks (BENCHMARKS.md)

CARGO ?= cargo
PREFIX ?= /var/mailorder
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
BIN_DIR := $(TARGET_DIR)/debug

.PHONY: all build run test test-deps check fmt lint deny fuzz install bench clean

all: build

build:
	$(CARGO) build --workspace --bins

run: build
	MAILORDER_BIN_DIR=$(BIN_DIR) sh scripts/run $(CURDIR)/run

test-deps:
	sh scripts/install-test-deps

test: test-deps build
	MAILORDER_BIN_DIR=$(BIN_DIR) $(CARGO) test --workspace

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

check: lint test deny

deny:
	@$(CARGO) deny --version >/dev/null 2>&1 || { \
	    echo "make deny: cargo-deny is not installed; install it with:" >&2; \
	    echo "    cargo install cargo-deny --locked" >&2; exit 1; }
	$(CARGO) deny check $(DENY_CHECKS)

# -s none: the fuzzed crates forbid unsafe code, so no AddressSanitizer; that also keeps
# cargo-fuzz on stable -C flags (ASan would need FUZZ_CARGO="cargo +nightly").
FUZZ_CARGO ?= $(CARGO)
FUZZ_SECONDS ?= 60
fuzz:
	@$(FUZZ_CARGO) fuzz --version >/dev/null 2>&1 || { \
	    echo "make fuzz: cargo-fuzz is not installed; install it with:" >&2; \
	    echo "    cargo install cargo-fuzz --locked" >&2; exit 1; }
	cd fuzz && for t in $(or $(FUZZ_TARGETS),$$($(FUZZ_CARGO) fuzz list)); do \
	    echo "== fuzz $$t ($(FUZZ_SECONDS)s)"; \
	    mkdir -p corpus/$$t seeds/$$t; \
	    $(FUZZ_CARGO) fuzz run -s none $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

install:
	$(CARGO) build --workspace --bins --release
	sh scripts/install $(PREFIX) $(TARGET_DIR)/release

# The mail path vs Postfix, then each issue's own comparison (POP3 and IMAP vs Dovecot,
# remote delivery vs Postfix, LDAP vs the file directory, the content filter on vs off),
# on one release build. BENCH_ONLY=pop3 (or imap, remote, ldap, uids, smtp, migrate,
# filters) runs one of them.
bench:
	$(CARGO) build --release --workspace --bins
	set -e; export BENCH_BIN_DIR=$(TARGET_DIR)/release; \
	for b in $${BENCH_ONLY:-smtp remote pop3 imap ldap uids migrate filters}; do \
	    case $$b in smtp) sh scripts/bench ;; pop3|imap|migrate) python3 scripts/bench-$$b ;; *) sh scripts/bench-$$b ;; esac; \
	done

clean:
	$(CARGO) clean
