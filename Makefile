# mailorder — a thin wrapper over cargo (STYLE §2).
#   make run    build and start the whole system on loopback, state under ./run
#   make test   install what the tests need (as root), build, run every test
#   make check  fmt, clippy, test
#   make install PREFIX=/var/mailorder   (root) users, directories, set-id programs
#   make bench  the benchmarks (BENCHMARKS.md)

CARGO ?= cargo
PREFIX ?= /var/mailorder
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
BIN_DIR := $(TARGET_DIR)/debug
PROGRAMS := smtpd queue queue-clean dispatch deliver-as local-deliver checkpassword-file \
	sendmail qadmin listen setup

.PHONY: all build run test test-deps check fmt lint install bench clean

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

check: lint test

install:
	$(CARGO) build --workspace --bins --release
	sh scripts/install $(PREFIX) $(TARGET_DIR)/release

# The mail path vs Postfix, then each issue's own comparison (POP3 and IMAP vs Dovecot,
# remote delivery vs Postfix, LDAP vs the file directory), on one release build.
# BENCH_ONLY=pop3 (or imap, remote, ldap, smtp) runs one of them.
bench:
	$(CARGO) build --release --workspace --bins
	set -e; export BENCH_BIN_DIR=$(TARGET_DIR)/release; \
	for b in $${BENCH_ONLY:-smtp remote pop3 imap ldap}; do \
	    case $$b in smtp) sh scripts/bench ;; pop3|imap) python3 scripts/bench-$$b ;; *) sh scripts/bench-$$b ;; esac; \
	done

clean:
	$(CARGO) clean
