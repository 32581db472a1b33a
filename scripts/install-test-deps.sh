#!/usr/bin/env bash
# Installs what the test suite needs on Debian bookworm: the kernel tools the end-to-end tests
# drive (network namespaces, nftables, conntrack-tools), a real Prometheus server, a single-node
# VictoriaMetrics (the second query engine the cost engine is tested against), headless
# Chromium for the web UI's tests, and a Python virtualenv holding Helm's template engine
# (helm-python-sdk: Helm as a library) and offline Kubernetes schemas (kubernetes-validate) for
# the chart's tests. The virtualenv is at $NETCOST_TEST_VENV, /opt/netcost-test-venv by default,
# where the tests look for it too.
set -euo pipefail
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

packages=(iproute2 nftables conntrack prometheus victoria-metrics chromium)
# Debian's python3 needs python3-venv for `python3 -m venv`.
python3 -c 'import ensurepip' 2>/dev/null || packages+=(python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

venv="${NETCOST_TEST_VENV:-/opt/netcost-test-venv}"
python_packages=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0)
installed() {
  "$venv/bin/python" - "${python_packages[@]}" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(name) != want for name, want in (p.split("==") for p in sys.argv[1:])))
PY
}
if ! installed; then
  # Writable by this user, or made so (the venv's owner runs pip in it).
  if ! mkdir -p "$venv" 2>/dev/null || [[ ! -w $venv ]]; then
    $SUDO mkdir -p "$venv"
    $SUDO chown "$(id -u):$(id -g)" "$venv"
  fi
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${python_packages[@]}"
  installed
fi
