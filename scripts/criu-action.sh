#!/bin/sh
# CRIU action script (`action-script` in /opt/ferry/etc/criu.conf, which runc hands to CRIU through
# the org.criu.config annotation). It acts once, when CRIU has made the restored container's
# namespaces and before it reconnects any socket:
# - runc has CRIU make the network namespace anew, empty, with its loopback down: a TCP or UDP
#   socket on 127.0.0.1 would fail with "Network is unreachable", so loopback comes up;
# - a container in a user namespace of its own that has an address gets its network namespace
#   from CRIU (made inside that user namespace; one made by ferry outside it CRIU refuses), so the
#   address must be there before its TCP connections come back: the agent wrote the namespace's
#   name, the veth and the address into the image folder (agent/runtime/container-net.ts,
#   planRestoredNetns), and the namespace is named and joined to the node here.
[ "$CRTOOLS_SCRIPT_ACTION" = "setup-namespaces" ] || exit 0
set -eu
nsenter "--net=/proc/$CRTOOLS_INIT_PID/ns/net" ip link set lo up
plan="$CRTOOLS_IMAGE_DIR/ferry-network"
[ -f "$plan" ] || exit 0
read -r ns veth address < "$plan"
case "$ns" in '' | *[!A-Za-z0-9._-]*) echo "criu-action: $plan: bad namespace name" >&2 && exit 1 ;; esac
case "$veth" in fv[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;; *) echo "criu-action: $plan: bad veth name" >&2 && exit 1 ;; esac
case "$address" in '' | *[!0-9.]*) echo "criu-action: $plan: bad address" >&2 && exit 1 ;; esac
ip netns attach "$ns" "$CRTOOLS_INIT_PID"
exec "$(dirname "$0")/ferry-netns-plumb" "$ns" "$veth" "$address"
