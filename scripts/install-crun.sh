#!/usr/bin/env bash
# Installs crun 1.28 (Debian unstable, built with CRIU support) into /opt/ferry/crun for
# bench/runtimes.ts, which measures it against runc. Debian 12's crun 1.8.1 is built without CRIU
# ("compiled without CRIU support"), so it cannot checkpoint at all. Like CRIU's (install-criu.sh),
# it runs through its own loader and libraries; its libcriu starts ferry's CRIU 4.2.1 from PATH.
# The wrapper hides this host's cgroup2 mount from crun: the machine runs hybrid cgroups whose v2
# side offers a controller (hugetlb), which crun refuses ("cgroups in hybrid mode not supported").
set -euo pipefail

OPT=${FERRY_OPT:-/opt/ferry}
PREFIX=$OPT/crun
WRAPPER=$OPT/bin/crun

if [ -x "$WRAPPER" ] && "$WRAPPER" --version 2>/dev/null | grep -q '+CRIU'; then
  echo "crun: $("$WRAPPER" --version | head -n1) already installed at $WRAPPER"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$(dirname "$0")/unstable-debs.sh"
unstable_debs "$work/debs" crun libcriu2 libyajl2 libsystemd0 libseccomp2 libcap2 libc6 libprotobuf-c1 \
  libgcc-s1 libzstd1 liblz4-1 liblzma5 libgcrypt20 libgpg-error0 libblake3-0
unpack_prefix "$work/debs" "$PREFIX"
mkdir -p "$OPT/bin"
cat > "$WRAPPER" <<WRAP
#!/bin/sh
# crun from Debian unstable through its own loader (scripts/install-crun.sh), in a mount namespace
# without the host's cgroup2 mount, with ferry's CRIU first on PATH for its libcriu.
P=$PREFIX
exec unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; L=\$0 LP=\$1 B=\$2; shift 2; PATH=$OPT/bin:\$PATH exec "\$L" --library-path "\$LP" "\$B" "\$@"' \\
  "\$P/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "\$P/usr/lib/x86_64-linux-gnu" "\$P/usr/bin/crun" "\$@"
WRAP
chmod 0755 "$WRAPPER"
"$WRAPPER" --version | grep -q '+CRIU' || { echo "crun: installed, but without CRIU support" >&2; exit 1; }
echo "crun: $("$WRAPPER" --version | head -n1) installed at $WRAPPER"
