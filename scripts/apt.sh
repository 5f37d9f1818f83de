# Sourced by scripts/setup.sh and scripts/setup-test.sh: installs the Debian packages given
# (`apt_install [--for WHAT] PACKAGE…`) with apt-get, through sudo when not root, and says how
# long it took; with no sudo and no root, says what to install and exits 2.
apt_install() {
  local for=""
  if [ "${1:-}" = "--for" ]; then for=", $2"; shift 2; fi
  [ $# -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "setup: missing $*: install them with your package manager (apt-get install -y $*)" >&2
    exit 2
  fi
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing $* (apt-get$for)" >&2
  local started=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  echo "setup: installed $* in $((SECONDS - started)) s" >&2
}
