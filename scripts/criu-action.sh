#!/bin/sh
# CRIU action script (`action-script` in /opt/ferry/etc/criu.conf, which runc hands to CRIU through
# the org.criu.config annotation). A network namespace that CRIU re-creates on restore has its
# loopback down at the moment CRIU reconnects sockets, so a TCP or UDP socket on 127.0.0.1 fails
# with "Network is unreachable": bring it up as soon as the namespaces exist.
[ "$CRTOOLS_SCRIPT_ACTION" = "setup-namespaces" ] || exit 0
exec nsenter "--net=/proc/$CRTOOLS_INIT_PID/ns/net" ip link set lo up
