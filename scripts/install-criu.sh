#!/usr/bin/env bash
# Installs a CRIU >= 4.2 into /opt/ferry/criu without touching the system's own packages, and
# checkpointctl (which reads checkpoint archives; Debian 12 has none) beside it.
# Debian 12's criu (3.17) does not start on this kernel and 4.1 cannot dump inet sockets
# (shared/environment.md), so CRIU and its libraries, libc included, come from Debian unstable,
# unpacked into a private prefix and started through that prefix's own dynamic loader.
set -euo pipefail

OPT=${FERRY_OPT:-/opt/ferry}
PREFIX=$OPT/criu
WRAPPER=$OPT/bin/criu
CHECKPOINTCTL=$OPT/bin/checkpointctl
MIN_VERSION=4.2

version_ok() {
  local v
  v=$("$WRAPPER" --version 2>/dev/null | sed -n 's/^Version: //p') || return 1
  [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$MIN_VERSION" "$v" | sort -V | head -n1)" = "$MIN_VERSION" ]
}

if [ -x "$WRAPPER" ] && [ -x "$CHECKPOINTCTL" ] && version_ok && "$WRAPPER" check >/dev/null 2>&1; then
  echo "criu: $("$WRAPPER" --version | sed -n 's/^Version: //p') already installed at $WRAPPER"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkgs=(criu libcompel1 libnet9 libnl-3-200 libc6 libgcc-s1 libgnutls30t64 libnftables1 libprotobuf-c1
      libbsd0 libuuid1 libnettle8t64 libhogweed6t64 libgmp10 libidn2-0 libunistring5 libtasn1-6
      libp11-kit0 libjansson4 libmnl0 libnftnl11 libxtables12 libedit2 libmd0 libffi8 libtinfo6
      libbrotli1 libzstd1 checkpointctl)
. "$(dirname "$0")/unstable-debs.sh"
unstable_debs "$work/debs" "${pkgs[@]}"
unpack_prefix "$work/debs" "$PREFIX"
mkdir -p "$OPT/bin"
cat > "$WRAPPER" <<WRAP
#!/bin/sh
# CRIU from Debian unstable, run through its own loader and libraries (see scripts/install-criu.sh).
P=$PREFIX
exec "\$P/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "\$P/usr/lib/x86_64-linux-gnu" "\$P/usr/sbin/criu" "\$@"
WRAP
chmod 0755 "$WRAPPER"
# checkpointctl from the same release needs its glibc too: the same loader and libraries.
cat > "$CHECKPOINTCTL" <<WRAP
#!/bin/sh
# checkpointctl from Debian unstable, run through CRIU's loader and libraries (scripts/install-criu.sh).
P=$PREFIX
exec "\$P/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "\$P/usr/lib/x86_64-linux-gnu" "\$P/usr/bin/checkpointctl" "\$@"
WRAP
chmod 0755 "$CHECKPOINTCTL"
version_ok || { echo "criu: installed version is older than $MIN_VERSION" >&2; exit 1; }
# An image build has no privileges to run `criu check`; the agent runs it at start-up instead.
if [ -z "${FERRY_IMAGE_BUILD:-}" ]; then
  "$WRAPPER" check >/dev/null 2>&1 || { "$WRAPPER" check; exit 1; }
fi
echo "criu: $("$WRAPPER" --version | sed -n 's/^Version: //p') installed at $WRAPPER"
