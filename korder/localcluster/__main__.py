"""``python -m korder.localcluster {build,kubectl,up,run}``.

- ``build``: build (or find) kube-apiserver, etcd and kubectl; print their folder.
- ``kubectl``: the same, and print the path of kubectl (the Makefile's deployment targets
  use it, and its built-in kustomize, so no other tool needs installing).
- ``up``: only the control plane, in the foreground, writing ``.korder/kubeconfig``.
- ``run``: the whole system (``make run``).
- ``node``: build (or find) the local cluster's node components; print their folder.
- ``promtool``, ``jaeger``: build (or find) promtool or Jaeger's all-in-one; print its path.
- ``cluster-up`` / ``cluster-down``: the single-node cluster in the background
  (``make cluster-up``, ``make cluster-down``); ``cluster-serve`` is that background process.
- ``load-image IMAGE``: put a podman image into the cluster's containerd (``make cluster-load``).
"""

from __future__ import annotations

import argparse
import sys
import time

from korder import logs
from korder.localcluster import binaries, daemon, images, node, system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m korder.localcluster")
    parser.add_argument(
        "command",
        choices=[
            "build",
            "kubectl",
            "up",
            "run",
            "node",
            "promtool",
            "jaeger",
            "cluster-up",
            "cluster-serve",
            "cluster-down",
            "load-image",
        ],
    )
    parser.add_argument("image", nargs="?", help="load-image: the podman image to load")
    args = parser.parse_args(argv)
    logs.configure(component="localcluster")
    if args.command == "build":
        print(binaries.resolve().kube_apiserver.parent)
        return 0
    if args.command == "kubectl":
        print(binaries.resolve().kubectl)
        return 0
    if args.command == "node":
        print(binaries.resolve_node().kubelet.parent)
        return 0
    if args.command == "promtool":
        print(binaries.resolve_promtool())
        return 0
    if args.command == "jaeger":
        print(binaries.resolve_jaeger())
        return 0
    if args.command == "cluster-up":
        return daemon.up()
    if args.command == "cluster-serve":
        return daemon.serve()
    if args.command == "cluster-down":
        return daemon.down()
    if args.command == "load-image":
        if not args.image:
            parser.error("load-image needs the image")
        if daemon.READY.exists() is False:
            print("the local cluster is not up (make cluster-up)", file=sys.stderr)
            return 1
        name = images.load(node.LocalCluster().ctr, args.image)
        print(f"{args.image} loaded into the node as {name}", file=sys.stderr)
        return 0
    if args.command == "up":
        try:
            with system.cluster() as c:
                c.install_crds()
                print(f"export KUBECONFIG={c.kubeconfig}", flush=True)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            return 0
    return system.run()


if __name__ == "__main__":
    sys.exit(main())
