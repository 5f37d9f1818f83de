#!/usr/bin/env bash
# Installs what the tools need to build and run on a fresh Debian/Ubuntu machine, and nothing
# when it is already there (so `make up` can call it every time): the PostgreSQL server (initdb,
# pg_ctl) and client (psql, pg_dump), openssl, the TLS headers native-tls builds against,
# pkg-config, and libclang for pg_query's build. What only the tests and benchmarks need is
# scripts/setup-test.sh's (`make test` runs both). Prints one line per install with the time it
# took; silent when all is present.
set -euo pipefail
source "$(dirname "$0")/apt.sh"

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
pg_server_present() {
  [ -n "${DBTOOLS_PG_BIN:-}" ] && [ -x "$DBTOOLS_PG_BIN/initdb" ] && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
  have initdb && have pg_ctl
}

pg_server_present || need_apt+=(postgresql postgresql-contrib)
have psql || need_apt+=(postgresql-client)
have openssl || need_apt+=(openssl)
have pkg-config || need_apt+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
have runuser || need_apt+=(util-linux)
# pg_query (PostgreSQL's own parser, used by dbmigrate) builds its C code with bindgen.
compgen -G "/usr/lib/llvm-*/lib/libclang.so" >/dev/null || need_apt+=(libclang-dev)

apt_install "${need_apt[@]}"

# Debian's postgresql package starts a cluster of its own on 5432; we never use it, and it is
# harmless, but a fresh install should not leave a server running that nobody asked for.
if [ ${#need_apt[@]} -gt 0 ] && have pg_ctlcluster; then
  for conf in /etc/postgresql/*/main; do
    [ -d "$conf" ] || continue
    version=$(basename "$(dirname "$conf")")
    pg_ctlcluster "$version" main stop >/dev/null 2>&1 || true
  done
fi
