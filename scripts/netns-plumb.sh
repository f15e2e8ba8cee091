#!/bin/sh
# Joins a container's network namespace to its node: a veth pair (VETH on the node, eth0 inside),
# ADDRESS/32 on eth0, loopback and eth0 up, the default route out of eth0, and on the node
# forwarding and proxy ARP, so the node answers for the address once it routes it to VETH (the
# agent does that, agent/runtime/container-net.ts, when the container is to be reached here).
# One place for these steps: the agent runs it for a new container, and the CRIU action script
# (criu-action.sh) for a namespace CRIU has just made empty at a restore.
# Installed as /opt/ferry/bin/ferry-netns-plumb by scripts/setup.sh.
#   ferry-netns-plumb NS VETH ADDRESS     (NS: a name under /run/netns)
set -eu
ns=$1 veth=$2 address=$3
ip link add "$veth" type veth peer name eth0 netns "$ns"
ip -n "$ns" addr add "$address/32" dev eth0
ip -n "$ns" link set lo up
ip -n "$ns" link set eth0 up
ip -n "$ns" route add default dev eth0
ip link set "$veth" up
# Forwarding between the veth and the uplink, proxy ARP both ways, and leave to send ARP for an
# address that is not the node's own (the announcement).
sysctl -qw net.ipv4.ip_forward=1 net.ipv4.ip_nonlocal_bind=1
sysctl -qw "net.ipv4.conf.$veth.proxy_arp=1" net.ipv4.conf.eth0.proxy_arp=1
