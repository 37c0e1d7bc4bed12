#!/usr/bin/env bash
# Installs everything kbootd's development, tests and demo need on a fresh Debian 12
# machine (root, Python 3.11): system packages, then a virtual environment in .venv.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Host tools: libsystemd-dev/pkg-config/gcc/python3-dev build systemd-python; openssl
# cross-checks certificates; systemd provides systemd-analyze for unit verification.
SYSTEM_PACKAGES=(libsystemd-dev pkg-config gcc python3-dev python3-venv openssl systemd)
# Extra host tools, installed by .ci/run and tests that need them (e2e, packaging).
read -ra extra <<< "${KBOOTD_EXTRA_PACKAGES:-}"
SYSTEM_PACKAGES+=("${extra[@]}")

missing=()
for p in "${SYSTEM_PACKAGES[@]}"; do
  [ -n "$p" ] || continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: recommended packages (e.g. libnss-mymachines) would change the host.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>/dev/null || true
# A regular (not editable) install: the console script starts as it will in production.
.venv/bin/python -m pip install -q --disable-pip-version-check ".[systemd,test]"
echo "install-deps: ready ($(.venv/bin/kbootd version))"
