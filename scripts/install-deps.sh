#!/usr/bin/env bash
# Install the Debian packages needed to build and test runbook.
#
#   bash scripts/install-deps.sh               # the build and test set
#   bash scripts/install-deps.sh clang-format  # ... plus extra packages
#   bash scripts/install-deps.sh --build [PKG...]  # only what building the
#                           # package needs (the Dockerfile's build stage)
#
# Does nothing (and says nothing) when every package is already installed;
# otherwise runs apt-get update + install quietly, and prints apt's output
# only if it fails.  Uses sudo when not root.
set -euo pipefail

# What `cmake --build build --target package` needs: the compiler and the
# -dev libraries, python3 (tests/CMakeLists.txt finds it when configuring),
# scdoc (the man pages the package installs), file (dpkg-shlibdeps).
BUILD=(
  build-essential cmake pkg-config python3
  liblua5.4-dev lua-cjson-dev libyaml-dev libsqlite3-dev nettle-dev
  libedit-dev libcurl4-openssl-dev libpq-dev
  scdoc file
)
if [ "${1:-}" = --build ]; then
  shift
  PACKAGES=("${BUILD[@]}" "$@")
else
PACKAGES=(
  "${BUILD[@]}"
  lua-check            # luacheck, used by `runbook check`
  sqlite3              # inspecting audit databases (python3, above, runs the CLI tests)
  postgresql postgresql-client  # the db tests start a throwaway server; pg_dump/pg_restore
  redis-server redis-tools      # runbooks/ integration test: a real Redis on loopback
  valgrind procps      # the leak check; ps/pgrep for the tests
  man-db               # `man -l` checks the man pages scdoc builds (cmake/man.cmake)
  openssh-server openssh-client # the ssh tests and bench: a throwaway sshd on loopback
  zsh fish             # test_completion.py checks completions/_runbook and runbook.fish
  systemd              # systemd-analyze verify/calendar: `runbook schedule --emit systemd` tests
  python3-kubernetes   # its API models (read, not imported) are the CronJob schema the
                       # schedule tests' API server validates `kubectl apply` against
  docker.io busybox-static  # the docker tests start a throwaway dockerd (tests/fixtures/
                            # dockerd.py) and import a busybox image made from /bin/busybox
  docker-compose       # docker.compose's CLI verbs against that engine (Compose 1.29:
                       # Debian ships no compose plugin for the docker CLI)
  strace               # test_audit_protect.py kills a run at each syscall of creating a log
  libxml2-utils python3-junitparser  # test_junit.py: xmllint --schema checks `runbook
                       # test --junit` against tests/fixtures/junit*.xsd; junitparser reads it
  mmdebstrap           # CI's image test (scripts/image-test.sh): a local Debian base
                       # image with no registry
  prometheus prometheus-alertmanager  # test_alert_lifecycle.py: a real Prometheus whose
                       # rule fires into a real Alertmanager (tests/fixtures/prom_stack.py)
  "$@"
)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: apt-get not found; install these packages yourself: ${missing[*]}" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: not root and no sudo; as root run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  SUDO=(sudo)
fi

echo "install-deps: installing ${missing[*]}" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { "${SUDO[@]}" apt-get update -q &&
       "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-deps: apt-get failed (output above)" >&2
  exit 1
fi
