#!/usr/bin/env python3
"""A cloud provider plugin for rkube, in Python: Instances, LoadBalancer and Routes against a
JSON file, to show that any language that speaks gRPC can be a provider.

    python -m grpc_tools.protoc -I crates/proto/proto --python_out=GEN \
        --grpc_python_out=GEN cloudprovider.proto
    python provider.py --generated GEN --socket /run/example.sock --state state.json

The state file holds the machines and an address pool, and the provider writes the load
balancers it made into it:

    {"machines": {"n1": {"zone": "a", "instanceType": "small", "state": "running"}},
     "pool": ["198.51.100.10", "198.51.100.11"],
     "loadBalancers": {}}

Every call is idempotent: a load balancer is keyed by the Service's uid, so a repeated
EnsureLoadBalancer returns the address it gave before. Started by a cloud-controller-manager
(`--cloud-plugin-exec`), it stops when its stdin ends, that is when the manager goes.
"""

import argparse
import json
import os
import signal
import sys
import threading
from concurrent import futures


def _generated_dir():
    """Where protoc wrote cloudprovider_pb2*.py: --generated DIR, else beside this file."""
    for i, a in enumerate(sys.argv):
        if a == "--generated" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--generated="):
            return a.split("=", 1)[1]
    return os.path.dirname(os.path.abspath(__file__))


sys.path.insert(0, _generated_dir())

import grpc  # noqa: E402

import cloudprovider_pb2 as pb  # noqa: E402
import cloudprovider_pb2_grpc as rpc  # noqa: E402

NAME = "example-python"
PROVIDER_ID_PREFIX = "example://"


class State:
    """The JSON file, read and written whole under one lock."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def read(self):
        with open(self.path) as f:
            return json.load(f)

    def write(self, data):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


def machine_of(data, node):
    name = node.name
    if node.provider_id.startswith(PROVIDER_ID_PREFIX):
        name = node.provider_id[len(PROVIDER_ID_PREFIX):]
    return name, data.get("machines", {}).get(name)


class Identity(rpc.IdentityServicer):
    def GetPluginInfo(self, request, context):
        return pb.GetPluginInfoResponse(
            name=NAME,
            version="0.1.0",
            capabilities=[pb.CAPABILITY_INSTANCES, pb.CAPABILITY_LOAD_BALANCER,
                          pb.CAPABILITY_ROUTES],
            protocol_version=pb.PROTOCOL_VERSION_1,
        )

    def Probe(self, request, context):
        return pb.ProbeResponse(ready=True)


class Instances(rpc.InstancesServicer):
    def __init__(self, state):
        self.state = state

    def _machine(self, request, context):
        if not request.HasField("node") or not request.node.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "node.name: Required value")
        with self.state.lock:
            return machine_of(self.state.read(), request.node)

    def InstanceExists(self, request, context):
        _, m = self._machine(request, context)
        return pb.InstanceExistsResponse(exists=m is not None)

    def InstanceShutdown(self, request, context):
        name, m = self._machine(request, context)
        if m is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"machine {name!r} is not known")
        return pb.InstanceShutdownResponse(shutdown=m.get("state") == "shutdown")

    def InstanceMetadata(self, request, context):
        name, m = self._machine(request, context)
        if m is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"machine {name!r} is not known")
        return pb.InstanceMetadataResponse(
            provider_id=PROVIDER_ID_PREFIX + name,
            instance_type=m.get("instanceType", "example"),
            zone=m.get("zone", ""),
            region=m.get("region", "example"),
        )


class LoadBalancer(rpc.LoadBalancerServicer):
    def __init__(self, state):
        self.state = state

    def _key(self, request, context):
        svc = request.service
        if not svc.uid:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "service.uid: Required value")
        return svc.uid

    def GetLoadBalancer(self, request, context):
        key = self._key(request, context)
        with self.state.lock:
            lb = self.state.read().get("loadBalancers", {}).get(key)
        if lb is None:
            return pb.GetLoadBalancerResponse(exists=False)
        status = pb.LoadBalancerStatus(ingress=[pb.LoadBalancerIngress(ip=lb["ip"])])
        return pb.GetLoadBalancerResponse(exists=True, status=status)

    def EnsureLoadBalancer(self, request, context):
        key = self._key(request, context)
        svc = request.service
        with self.state.lock:
            data = self.state.read()
            lbs = data.setdefault("loadBalancers", {})
            lb = lbs.get(key)
            if lb is None:
                used = {b["ip"] for b in lbs.values()}
                wanted = svc.load_balancer_ip
                free = [ip for ip in data.get("pool", []) if ip not in used]
                if wanted:
                    if wanted not in free:
                        context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                      f"loadBalancerIP {wanted} is not free in the pool")
                    ip = wanted
                elif free:
                    ip = free[0]
                else:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "the pool is empty")
                lb = {"ip": ip}
            lb["service"] = f"{svc.namespace}/{svc.name}"
            lb["ports"] = [[p.protocol, p.port, p.node_port] for p in svc.ports]
            lb["backends"] = sorted(n.name for n in request.nodes)
            lbs[key] = lb
            self.state.write(data)
        return pb.LoadBalancerStatus(ingress=[pb.LoadBalancerIngress(ip=lb["ip"])])

    def UpdateLoadBalancer(self, request, context):
        self.EnsureLoadBalancer(request, context)
        return pb.UpdateLoadBalancerResponse()

    def EnsureLoadBalancerDeleted(self, request, context):
        key = self._key(request, context)
        with self.state.lock:
            data = self.state.read()
            if data.get("loadBalancers", {}).pop(key, None) is not None:
                self.state.write(data)
        return pb.EnsureLoadBalancerDeletedResponse()


class Routes(rpc.RoutesServicer):
    """Routes are kept in the state file by name; the cluster name is part of the key."""

    def __init__(self, state):
        self.state = state

    def ListRoutes(self, request, context):
        with self.state.lock:
            routes = self.state.read().get("routes", {}).get(request.cluster_name, {})
        return pb.ListRoutesResponse(routes=[
            pb.Route(name=name, target_node=r["node"], destination_cidr=r["cidr"])
            for name, r in sorted(routes.items())
        ])

    def CreateRoute(self, request, context):
        r = request.route
        if not r.target_node or not r.destination_cidr:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "route.target_node and route.destination_cidr are required")
        name = request.name_hint or f"{r.target_node}-{r.destination_cidr}"
        with self.state.lock:
            data = self.state.read()
            routes = data.setdefault("routes", {}).setdefault(request.cluster_name, {})
            routes[name] = {"node": r.target_node, "cidr": r.destination_cidr}
            self.state.write(data)
        return pb.CreateRouteResponse()

    def DeleteRoute(self, request, context):
        with self.state.lock:
            data = self.state.read()
            routes = data.get("routes", {}).get(request.cluster_name, {})
            if routes.pop(request.route.name, None) is not None:
                self.state.write(data)
        return pb.DeleteRouteResponse()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default=os.environ.get("RKUBE_CLOUD_PLUGIN_SOCKET"),
                    help="the unix socket to listen on")
    ap.add_argument("--state", required=True, help="the JSON state file")
    ap.add_argument("--generated", help="where protoc wrote the cloudprovider modules")
    args = ap.parse_args()
    if not args.socket:
        ap.error("--socket (or RKUBE_CLOUD_PLUGIN_SOCKET) is required")
    state = State(args.state)
    state.read()
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rpc.add_IdentityServicer_to_server(Identity(), server)
    rpc.add_InstancesServicer_to_server(Instances(state), server)
    rpc.add_LoadBalancerServicer_to_server(LoadBalancer(state), server)
    rpc.add_RoutesServicer_to_server(Routes(state), server)
    old = os.umask(0o077)
    server.add_insecure_port("unix://" + args.socket)
    server.start()
    os.umask(old)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if os.environ.get("RKUBE_CLOUD_PLUGIN_PARENT"):
        # Started by a cloud-controller-manager: stop when it goes (stdin ends).
        def watch_stdin():
            while sys.stdin.buffer.read(64):
                pass
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait()
    server.stop(grace=2).wait()


if __name__ == "__main__":
    main()
