"""Finds the public address coturn advertises, and writes it for the start script.

Order: the PUBLIC_IP the operator configured; else the node's ExternalIP
from the Kubernetes API (this pod's ServiceAccount may only `get` nodes);
else the node's own IP, for nodes whose NIC carries the public address.

With ADDRESS_FAMILIES=both (LiveKit, whose --node-ip takes "<IPv4>,<IPv6>"),
the node's IPv6 too, after the address above: an IPv6 ExternalIP, else the
node's own global IPv6 (kubelet's --node-ip with both families). Not with a
configured address, and never a second IPv6.

Usage: python3 node_address.py OUTPUT_FILE
"""
import ipaddress
import os
import sys

from kube import Kube


def public_address(env, get_node):
    configured = env.get("PUBLIC_IP", "")
    if configured:
        return configured, "configured"
    for address in get_node(env["NODE_NAME"]).get("status", {}).get("addresses", []):
        if address.get("type") == "ExternalIP":
            ip = ipaddress.ip_address(address["address"])
            if ip.version == 4:
                return str(ip), "node ExternalIP"
    return env["NODE_IP"], "node IP (the node has no IPv4 ExternalIP)"


def node_ipv6(node):
    """The node's public IPv6: an ExternalIP, else a global InternalIP; None without one."""
    addresses = node.get("status", {}).get("addresses", [])
    for wanted in ("ExternalIP", "InternalIP"):
        for address in addresses:
            if address.get("type") != wanted:
                continue
            ip = ipaddress.ip_address(address["address"])
            if ip.version == 6 and (wanted == "ExternalIP" or ip.is_global):
                return str(ip)
    return None


def advertised_addresses(env, get_node):
    """public_address, and with ADDRESS_FAMILIES=both the node's IPv6 after it, comma-separated."""
    address, source = public_address(env, get_node)
    if env.get("ADDRESS_FAMILIES") != "both" or env.get("PUBLIC_IP", ""):
        return address, source
    if ipaddress.ip_address(address).version == 6:
        return address, source
    v6 = node_ipv6(get_node(env["NODE_NAME"]))
    if v6 is None:
        return address, source + "; the node has no public IPv6"
    return f"{address},{v6}", source + " and the node's IPv6"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: node_address.py OUTPUT_FILE")
    get_node = None if os.environ.get("PUBLIC_IP") else Kube.from_env().get_node
    address, source = advertised_addresses(os.environ, get_node)
    for part in address.split(","):
        ipaddress.ip_address(part)  # refuse to write anything that is not an address
    with open(sys.argv[1], "w") as f:
        f.write(address + "\n")
    print(f"public address {address} ({source})")


if __name__ == "__main__":
    main()
