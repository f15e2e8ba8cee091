#!/usr/bin/env bash
# Installs everything ferry needs on a Debian 12 or 13 machine, as root, idempotently:
# apt packages, a CRIU >= 4.2 (scripts/install-criu.sh), npm modules and the test workload;
# with --test, what the tests need besides (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OPT=${FERRY_OPT:-/opt/ferry}

if [ "$(id -u)" != 0 ]; then echo "setup: run as root (network namespaces, mounts, runc)" >&2; exit 1; fi

# skopeo and umoci: the agents read and write OCI images with them (archives over an image below,
# ferry run --image); mmdebstrap: scripts/build-image.sh builds images of real software with it.
APT_PKGS=(runc iptables btrfs-progs redis-server redis-tools iproute2 busybox-static gcc libc6-dev util-linux zstd openssl attr thin-provisioning-tools skopeo umoci mmdebstrap libdpkg-perl gpg)
# For the tests only (scripts/test.sh passes --test): headless Chromium for the dashboard test, and
# Go with sprig and yaml for test/helm-render (the chart rendered as Helm's engine would, no Helm
# here), python3 for a parent that reaps late (test/process-tree.test.ts), and Podman, whose
# archives ferry imports and which imports ferry's (test/podman.test.ts); PostgreSQL 15 for pgbench,
# psql and pg_amcheck, the clients of the PostgreSQL a test moves (pgbench ships in the server's
# package; the host's own database is not used). The pod tests run a real containerd per node
# (scripts/install-containerd.sh) with what a node gives it: CNI plugins for pod networks and a
# registry its images are pulled from (Debian's docker-registry, started by the tests). Prometheus
# scrapes the test cluster's controllers and answers the Grafana dashboard's queries
# (test/prometheus.test.ts; Debian's package, its service not started here).
if [ "${1:-}" = "--test" ]; then
  APT_PKGS+=(chromium fonts-dejavu-core golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev python3-minimal podman postgresql-15)
  APT_PKGS+=(docker-registry containernetworking-plugins prometheus)
fi
missing=()
for p in "${APT_PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts its own redis-server on port 6379; ferry runs a private one per cluster instead.

bash scripts/install-criu.sh
if [ "${1:-}" = "--test" ]; then bash scripts/install-containerd.sh; fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm modules"
  npm ci --no-audit --no-fund --loglevel=error
fi

mkdir -p "$OPT/bin"
# CRIU configuration that runc passes on (org.criu.config): ferry's action script.
mkdir -p "$OPT/etc"
install -m 0755 scripts/criu-action.sh "$OPT/bin/criu-action"
install -m 0755 scripts/run-logged.sh "$OPT/bin/ferry-run-logged"
install -m 0755 scripts/netns-plumb.sh "$OPT/bin/ferry-netns-plumb"
echo "action-script $OPT/bin/criu-action" > "$OPT/etc/criu.conf"

for prog in workload features ferryctl pause; do
  if [ ! -x "$OPT/bin/$prog" ] || [ "workload/$prog.c" -nt "$OPT/bin/$prog" ]; then
    echo "setup: building the test workload $prog"
    gcc -static -O2 -Wall -pthread -o "$OPT/bin/$prog.new" "workload/$prog.c"
    mv "$OPT/bin/$prog.new" "$OPT/bin/$prog"
  fi
done
# ferry's CUDA helper, against cuda.h where CUDA is installed (scripts/build-cuda-helper.sh).
if [ ! -x "$OPT/bin/ferry-cuda" ] || [ workload/cuda-ckpt.c -nt "$OPT/bin/ferry-cuda" ]; then
  echo "setup: $(bash scripts/build-cuda-helper.sh "$OPT/bin/ferry-cuda")"
fi
echo "setup: done"
