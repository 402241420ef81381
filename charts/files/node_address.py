"""Finds the public address coturn advertises, and writes it for the start script.

Order: the PUBLIC_IP the operator configured; else the node's ExternalIP
from the Kubernetes API (this pod's ServiceAccount may only `get` nodes);
else the node's own IP, for nodes whose NIC carries the public address.

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


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: node_address.py OUTPUT_FILE")
    get_node = None if os.environ.get("PUBLIC_IP") else Kube.from_env().get_node
    address, source = public_address(os.environ, get_node)
    ipaddress.ip_address(address)  # refuse to write anything that is not an address
    with open(sys.argv[1], "w") as f:
        f.write(address + "\n")
    print(f"public address {address} ({source})")


if __name__ == "__main__":
    main()
