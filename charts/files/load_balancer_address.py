"""Finds the address a LiveKit replica advertises behind a LoadBalancer Service of its own, and writes it.

livekit.rtc.nodeAddress load-balancer (livekit.hostNetwork false): replica
<name>-<i> is reached through Service <LOAD_BALANCER_SERVICE_PREFIX><i> of its
namespace, whose status.loadBalancer.ingress the provider fills in. Written:
its first IPv4 and first IPv6, "<IPv4>,<IPv6>" as LiveKit's --node-ip takes
them, or the one family it has; a host name there (AWS gives one) is resolved
once. Until the Service has an address (or exists), the step waits and says
so. The ServiceAccount may only `get` those Services.

Usage: python3 load_balancer_address.py OUTPUT_FILE
"""
import ipaddress
import os
import socket
import sys
import time

from kube import ApiError, Kube


def load_balancer_address(service, resolve):
    """The first IPv4 and the first IPv6 of the Service's load balancer, comma-separated; None while it has none.

    Its IPs if it has any; else its host names' addresses, from `resolve` (name -> addresses)."""
    ingress = service.get("status", {}).get("loadBalancer", {}).get("ingress") or []
    ips = [e["ip"] for e in ingress if e.get("ip")]
    if not ips:
        ips = [a for e in ingress if e.get("hostname") for a in resolve(e["hostname"])]
    first = {}
    for ip in map(ipaddress.ip_address, ips):
        first.setdefault(ip.version, str(ip))
    return ",".join(first[v] for v in (4, 6) if v in first) or None


def resolve(host):
    return [info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)]


def wait_for_address(env, get_service, pause=5):
    """This pod's Service's load-balancer address, asked every `pause` seconds until the provider has given one."""
    namespace = env["POD_NAMESPACE"]
    name = env["LOAD_BALANCER_SERVICE_PREFIX"] + env["POD_NAME"].rsplit("-", 1)[1]
    waited = 0
    while True:
        try:
            service = get_service(namespace, name)
            why = "status.loadBalancer.ingress is empty"
        except ApiError as e:
            if e.status != 404:
                sys.exit(f"load_balancer_address.py: cannot read Service {namespace}/{name}: {e}")
            service, why = {}, "it does not exist yet"
        address = load_balancer_address(service, resolve)
        if address is not None:
            return address, name
        if waited % 60 == 0:
            print(f"waiting for Service {namespace}/{name} to get a load-balancer address ({why}; {waited} s so far)", flush=True)
        time.sleep(pause)
        waited += pause


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: load_balancer_address.py OUTPUT_FILE")
    kube = Kube.from_env()
    address, name = wait_for_address(os.environ, lambda ns, n: kube.request("GET", f"/api/v1/namespaces/{ns}/services/{n}"))
    with open(sys.argv[1], "w") as f:
        f.write(address + "\n")
    print(f"public address {address} (Service {name}'s load balancer)")


if __name__ == "__main__":
    main()
