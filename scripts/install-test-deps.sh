#!/usr/bin/env bash
# Installs what the test suite needs on Debian bookworm: the kernel tools the end-to-end tests
# drive (network namespaces, nftables, conntrack-tools), a real Prometheus server, a single-node
# VictoriaMetrics (the second query engine the cost engine is tested against), and headless
# Chromium for the web UI's tests.
set -euo pipefail
packages=(iproute2 nftables conntrack prometheus victoria-metrics chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
