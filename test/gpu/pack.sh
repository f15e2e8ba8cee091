#!/usr/bin/env bash
# Packs what the GPU machine lacks (docs: ../shared/environment.md, "The GPU machine") into
# .gpu-carry/, which travels there beside the repository (git ignores it) and test/gpu/check.sh
# unpacks:
#   node.xz        this machine's node
#   ferry.tar.xz   ferry bundled by scripts/bundle.ts: the command line, agent, controller and the
#                  GPU benchmark, plain JavaScript without node_modules or tsx
#   opt.tar.xz     /opt/ferry as scripts/setup.sh installs it: CRIU's private prefix and wrapper,
#                  the CRIU action and network scripts, the static test programs
#   tools.tar.xz   runc, redis-server, ip, btrfs, mkfs.btrfs, zstd and ip(6)tables with the libraries
#                  they need beyond glibc, each behind a wrapper in bin/
# The machine takes at most 64 MiB with the repository; this refuses to leave more than 60.
# Run as root after scripts/setup.sh. Usage: bash test/gpu/pack.sh [OUT] [--fast] (--fast: xz -1,
# for a rehearsal here, test/gpu-check.test.ts).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=.gpu-carry LEVEL=-9
for a in "$@"; do
  case "$a" in
    --fast) LEVEL=-1 ;;
    -*) echo "usage: bash test/gpu/pack.sh [OUT] [--fast]" >&2; exit 2 ;;
    *) OUT=$a ;;
  esac
done
OPT=/opt/ferry
[ -x "$OPT/bin/criu" ] || { echo "pack: $OPT/bin/criu is missing: run scripts/setup.sh first" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
stage=$(mktemp -d /tmp/ferry-gpu-pack.XXXXXX)
trap 'rm -rf "$stage"' EXIT
xzc() { xz -T0 "$LEVEL" -c; }

echo "pack: node $(node --version)"
xzc < "$(readlink -f "$(command -v node)")" > "$OUT/node.xz"

echo "pack: ferry's bundle"
node --import tsx scripts/bundle.ts "$stage/ferry" >/dev/null
tar -C "$stage/ferry" -cf - . | xzc > "$OUT/ferry.tar.xz"

echo "pack: $OPT (CRIU, scripts, test programs)"
tar -C / -cf - "${OPT#/}/criu" "${OPT#/}/etc" \
  $(for f in criu criu-action ferry-run-logged ferry-netns-plumb workload features ferryctl pause; do echo "${OPT#/}/bin/$f"; done) |
  xzc > "$OUT/opt.tar.xz"

# The tools: each binary under the name it is called by, its libraries beyond glibc in lib/.
# Wrappers start them through the machine's own loader with lib/ as their library path, so the
# path reaches no other program; runc alone gets LD_LIBRARY_PATH (it re-executes /proc/self/exe,
# which must be runc itself), and passes it to nothing but CRIU, which has its own loader.
echo "pack: tools"
T=$stage/tools
mkdir -p "$T/bin" "$T/libexec" "$T/lib" "$T/xtables"
GLIBC='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|ld-linux-x86-64)\.so'
libs_of() { # FILE: its libraries beyond glibc into lib/
  ldd "$1" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    base=$(basename "$lib")
    [[ $base =~ $GLIBC ]] || cp -nL "$lib" "$T/lib/$base"
  done
}
tool() { # NAME BINARY
  cp -L "$2" "$T/libexec/$1"
  libs_of "$2"
  if [ "$1" = runc ]; then
    printf '#!/bin/sh\nT=$(dirname "$(dirname "$(readlink -f "$0")")")\nLD_LIBRARY_PATH=$T/lib exec "$T/libexec/runc" "$@"\n' > "$T/bin/$1"
  else
    printf '#!/bin/sh\nT=$(dirname "$(dirname "$(readlink -f "$0")")")\nXTABLES_LIBDIR=$T/xtables exec /lib64/ld-linux-x86-64.so.2 --library-path "$T/lib" "$T/libexec/%s" "$@"\n' "$1" > "$T/bin/$1"
  fi
  chmod 755 "$T/bin/$1"
}
tool runc "$(command -v runc)"
tool redis-server "$(command -v redis-server)"
tool ip "$(command -v ip)"
tool btrfs "$(command -v btrfs)"
tool mkfs.btrfs "$(command -v mkfs.btrfs)"
tool zstd "$(command -v zstd)"
for t in iptables iptables-restore iptables-save ip6tables ip6tables-restore ip6tables-save; do tool "$t" "$(command -v $t)"; done
cp -L /usr/lib/x86_64-linux-gnu/xtables/*.so "$T/xtables/"
for m in "$T"/xtables/*.so; do libs_of "$m"; done
tar -C "$stage" -cf - tools | xzc > "$OUT/tools.tar.xz"

total=$(du -cb "$OUT"/*.xz | tail -n1 | cut -f1)
repo=$(git ls-files -z | xargs -0 du -cb | tail -n1 | cut -f1)
echo "pack: $OUT holds $((total / 1048576)) MiB (the repository $((repo / 1048576)) MiB more):"
ls -l "$OUT"
if [ $((total + repo)) -gt $((60 * 1048576)) ]; then
  echo "pack: more than 60 MiB would travel; the GPU machine takes 64 MiB in all" >&2
  exit 1
fi
