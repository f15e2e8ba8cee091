#!/usr/bin/env bash
# Builds an image of real software from Debian's own packages, offline from any registry:
# mmdebstrap makes the root filesystem, umoci turns it into an OCI image (one layer, the command
# and ports in its config). Kept in ferry's state folder, an OCI layout with one tag per image,
# and built only when missing:
#
#   bash scripts/build-image.sh redis      # then: ferry run NAME --image oci:/var/lib/ferry/images/oci:redis
#
# Images: redis (Debian's redis-server, listening on 6379 for any client, no persistence);
# nginx (Debian's nginx-light serving /srv/www on port 80, one process); postgres (Debian's
# PostgreSQL 15 with the cluster its package makes, listening on 5432, any client trusted, run as
# the postgres user: in ferry's user namespace, the default, see shared/environment.md).
set -euo pipefail

NAME=${1:?usage: build-image.sh redis|nginx|postgres}
LAYOUT=${FERRY_HOME:-/var/lib/ferry}/images/oci
case "$NAME" in
  redis)
    PKGS=redis-server
    # Its own configuration, outside /etc/redis (redis:redis 2750, which a root without
    # CAP_DAC_OVERRIDE cannot read): any client, in memory only.
    HOOK='printf "bind * -::*\nprotected-mode no\nsave \"\"\nappendonly no\ndir /tmp\n" > "$1/etc/redis-ferry.conf"'
    CONFIG=(--config.cmd redis-server --config.cmd /etc/redis-ferry.conf --config.exposedports 6379/tcp)
    ;;
  nginx)
    PKGS=nginx-light
    # One process serving /srv/www, as root: worker processes would drop to www-data (and need
    # CAP_SETGID for it), and CRIU cannot dump a process that is not root here.
    HOOK='mkdir -p "$1/srv/www" && printf "user root root;\ndaemon off;\nmaster_process off;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n  sendfile on;\n  server {\n    listen 80;\n    root /srv/www;\n  }\n}\n" > "$1/etc/nginx-ferry.conf"'
    CONFIG=(--config.cmd nginx --config.cmd -c --config.cmd /etc/nginx-ferry.conf --config.exposedports 80/tcp)
    ;;
  postgres)
    PKGS=postgresql-15
    # The cluster postgresql-15's package made (15/main), opened to clients on the network (trust:
    # a test database), its socket in /tmp and no pid file in /run (nothing mounts a /run).
    HOOK=$(cat <<'HOOK'
etc="$1/etc/postgresql/15/main"
printf '%s\n' "listen_addresses = '*'" "unix_socket_directories = '/tmp'" "external_pid_file = '/tmp/postgresql.pid'" \
  "ssl = off" > "$etc/conf.d/ferry.conf"
echo 'host all all 0.0.0.0/0 trust' >> "$etc/pg_hba.conf"
HOOK
)
    CONFIG=(--config.user postgres --config.exposedports 5432/tcp)
    for a in /usr/lib/postgresql/15/bin/postgres -c config_file=/etc/postgresql/15/main/postgresql.conf; do
      CONFIG+=(--config.cmd "$a")
    done
    ;;
  *) echo "build-image: no image named $NAME (known: redis, nginx, postgres)" >&2; exit 2 ;;
esac

if [ -f "$LAYOUT/index.json" ] && grep -q "\"org.opencontainers.image.ref.name\":\"$NAME\"" "$LAYOUT/index.json"; then
  echo "build-image: $NAME already in $LAYOUT"
  exit 0
fi
for tool in mmdebstrap umoci; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "build-image: $NAME from Debian bookworm's $PKGS"
start=$(date +%s)
# essential: the smallest Debian that runs; documentation left out.
mmdebstrap --quiet --variant=essential --include="$PKGS" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --customize-hook="$HOOK" bookworm "$work/root.tar"
mkdir -p "$(dirname "$LAYOUT")"
[ -f "$LAYOUT/index.json" ] || umoci init --layout "$LAYOUT"
umoci new --image "$LAYOUT:$NAME.new"
umoci raw add-layer --image "$LAYOUT:$NAME.new" "$work/root.tar"
umoci config --image "$LAYOUT:$NAME.new" --author ferry "${CONFIG[@]}"
# Tagged under its name only once whole, so an interrupted build is never taken for one.
umoci tag --image "$LAYOUT:$NAME.new" "$NAME"
umoci rm --image "$LAYOUT:$NAME.new"
umoci gc --layout "$LAYOUT"
echo "build-image: $NAME built in $(( $(date +%s) - start )) s: oci:$LAYOUT:$NAME"
