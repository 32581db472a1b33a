#!/usr/bin/env bash
# Installs what the test suite needs on Debian bookworm: the kernel tools the end-to-end tests
# drive (network namespaces, nftables, conntrack-tools), a real Prometheus server, a single-node
# VictoriaMetrics (the second query engine the cost engine is tested against), headless
# Chromium for the web UI's tests with Node.js and playwright-core from npm to click through it
# (in $NETCOST_TEST_NODE, /opt/netcost-test-node by default; playwright-core downloads no
# browser, the tests drive Debian's), and a Python virtualenv holding Helm's template engine
# (helm-python-sdk: Helm as a library) and offline Kubernetes schemas (kubernetes-validate) for
# the chart's tests. The virtualenv is at $NETCOST_TEST_VENV, /opt/netcost-test-venv by default,
# where the tests look for it too.
#
# It also builds a real Kubernetes control plane for the tests that run the agent against it:
# etcd, kube-apiserver and the helm CLI, from their published Go modules at the versions pinned
# in scripts/kube-build/*/go.mod, into $NETCOST_TEST_BIN (/opt/netcost-test-bin by default, where
# the tests look). Go's module and build caches are kept in $NETCOST_GO_CACHE
# (/opt/netcost-test-go by default); a binary whose go.mod, go.sum, flags and Go version did not
# change is not built again. Cold, the three take about 25 minutes of a 2-core machine.
#
# Beside them it builds kube-state-metrics and a current Prometheus 3.x (prometheus3, next to
# Debian's 2.x prometheus) the same way: cold, about 11 and 16 minutes of a busy 2-core machine;
# with Go's build cache kept, a rebuild of either takes seconds.
set -euo pipefail
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

packages=(iproute2 nftables conntrack prometheus victoria-metrics chromium openssl)
# Node.js runs playwright-core; a Node.js from elsewhere (with its own npm) will do.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
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

# playwright-core for the browser tests, pinned; reinstalled only when the version differs.
node_dir="${NETCOST_TEST_NODE:-/opt/netcost-test-node}"
playwright_version=1.65.1
if [[ $(node -p "require('$node_dir/node_modules/playwright-core/package.json').version" 2>/dev/null) != "$playwright_version" ]]; then
  $SUDO mkdir -p "$node_dir"
  [[ -w $node_dir ]] || $SUDO chown "$(id -u):$(id -g)" "$node_dir"
  npm install --prefix "$node_dir" --no-audit --no-fund --no-save --silent "playwright-core@$playwright_version"
fi

# The control plane. k8s.io/kubernetes is not meant to be imported: scripts/kube-build/
# kube-apiserver is a module that requires it and pins each of its staging modules (k8s.io/api,
# ...) to the matching release, which is how it builds outside its own repository.
if ! command -v go >/dev/null; then
  echo "install-test-deps: Go is needed to build etcd, kube-apiserver and helm" >&2
  exit 1
fi
bin="${NETCOST_TEST_BIN:-/opt/netcost-test-bin}"
go_cache="${NETCOST_GO_CACHE:-/opt/netcost-test-go}"
kube_build="$(cd "$(dirname "$0")" && pwd)/kube-build"
$SUDO mkdir -p "$bin" "$go_cache"
[[ -w $bin && -w $go_cache ]] || $SUDO chown "$(id -u):$(id -g)" "$bin" "$go_cache"
export GOMODCACHE="$go_cache/mod" GOCACHE="$go_cache/cache" GOTOOLCHAIN=local \
  GOFLAGS="-buildvcs=false -mod=readonly"
# build NAME MODULE_DIR PACKAGE [LDFLAGS [TAGS]]: $bin/NAME, unless its stamp says it is up to
# date.
build() {
  local name=$1 dir="$kube_build/$2" package=$3 tags=${5:-}
  # Whitespace collapsed, so that the stamp does not depend on how the flags were wrapped.
  local ldflags
  # shellcheck disable=SC2086 # split on purpose
  ldflags=$(printf '%s ' -s -w ${4:-})
  ldflags=${ldflags% }
  local stamp
  stamp="$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-16) $(go env GOVERSION) $ldflags"
  [[ -z $tags ]] || stamp+=" tags=$tags"
  if [[ -x $bin/$name && -f $bin/$name.stamp && $(cat "$bin/$name.stamp") == "$stamp" ]]; then
    return
  fi
  echo "install-test-deps: building $name ($package)" >&2
  local started=$SECONDS
  (cd "$dir" && go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$bin/$name.new" "$package")
  mv "$bin/$name.new" "$bin/$name"
  echo "$stamp" >"$bin/$name.stamp"
  echo "install-test-deps: built $name in $((SECONDS - started)) s" >&2
}
version_of() { (cd "$kube_build/$1" && go list -m -f '{{.Version}}' "$2"); }

build etcd etcd go.etcd.io/etcd/server/v3
kube_version=$(version_of kube-apiserver k8s.io/kubernetes)
kube_minor=${kube_version#v1.}
kube_minor=${kube_minor%%.*}
# The version the server reports (helm checks charts' kubeVersion against it); without it a
# build from the module says v0.0.0-master.
version_pkg=k8s.io/component-base/version
build kube-apiserver kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver \
  "-X $version_pkg.gitVersion=$kube_version -X $version_pkg.gitMajor=1 \
   -X $version_pkg.gitMinor=$kube_minor -X $version_pkg.gitTreeState=clean"
helm_version=$(version_of helm helm.sh/helm/v3)
build helm helm helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$helm_version"

# kube-state-metrics, for the tests that price traffic by pod label from its kube_pod_labels.
ksm_version=$(version_of kube-state-metrics k8s.io/kube-state-metrics/v2)
build kube-state-metrics kube-state-metrics k8s.io/kube-state-metrics/v2 \
  "-X github.com/prometheus/common/version.Version=${ksm_version#v}"
# A current Prometheus 3.x beside Debian's 2.x: the query tests run against both. Its module
# v0.3XX.Y is the 3.XX.Y release (v0.316.0 is 3.16.0). remove_all_sd leaves out the cloud
# service discoveries (the tests use static targets), which shortens the build; the web UI's
# assets are not embedded (the tests use only the HTTP API).
prom_version=$(version_of prometheus github.com/prometheus/prometheus)
prom_minor=${prom_version#v0.3}
prom_release="3.$((10#${prom_minor%%.*})).${prom_version##*.}"
build prometheus3 prometheus github.com/prometheus/prometheus/cmd/prometheus \
  "-X github.com/prometheus/common/version.Version=$prom_release" remove_all_sd
