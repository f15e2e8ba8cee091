#!/usr/bin/env bash
# Installs containerd 2.1 into /opt/ferry/containerd, for the pod tests: the runtime a real
# kubelet drives over CRI, whose CRI plugin checkpoints a container (CheckpointContainer) and
# creates one from a checkpoint image. Debian 12 has containerd 1.6, without either; Debian
# unstable's 2.1 needs only libc >= 2.34, so its package is unpacked as it is, and run from there
# (shared/environment.md). The CRI's api.proto comes from Debian unstable's cri-api package; its
# gogoproto options (Go code generation only) are stripped so that a plain proto loader reads it.
set -euo pipefail

OPT=${FERRY_OPT:-/opt/ferry}
PREFIX=$OPT/containerd
PROTO=$PREFIX/cri-api/api.proto

if [ -x "$PREFIX/usr/bin/containerd" ] && [ -s "$PROTO" ] &&
  "$PREFIX/usr/bin/containerd" --version 2>/dev/null | grep -q ' 2\.'; then
  echo "containerd: $("$PREFIX/usr/bin/containerd" --version | awk '{print $3}') already installed at $PREFIX"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/x"
. "$(dirname "$0")/unstable-debs.sh"
unstable_debs "$work/debs" containerd golang-github-kubernetes-cri-api-dev
for d in "$work"/debs/*.deb; do dpkg-deb -x "$d" "$work/x"; done
rm -rf "$PREFIX.new"
mkdir -p "$PREFIX.new/usr/bin" "$PREFIX.new/cri-api"
cp -a "$work/x/usr/bin/containerd" "$work/x/usr/bin/containerd-shim-runc-v2" "$work/x/usr/bin/ctr" "$PREFIX.new/usr/bin/"
grep -v 'gogo' "$work/x/usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto" > "$PREFIX.new/cri-api/api.proto"
rm -rf "$PREFIX"
mv "$PREFIX.new" "$PREFIX"
echo "containerd: $("$PREFIX/usr/bin/containerd" --version | awk '{print $3}') installed at $PREFIX"
