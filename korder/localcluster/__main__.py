"""``python -m korder.localcluster {build,kubectl,up,run}``.

- ``build``: build (or find) kube-apiserver, etcd and kubectl; print their folder.
- ``kubectl``: the same, and print the path of kubectl (the Makefile's deployment targets
  use it, and its built-in kustomize, so no other tool needs installing).
- ``up``: only the control plane, in the foreground, writing ``.korder/kubeconfig``.
- ``run``: the whole system (``make run``).
"""

from __future__ import annotations

import argparse
import sys
import time

from korder import logs
from korder.localcluster import binaries, system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m korder.localcluster")
    parser.add_argument("command", choices=["build", "kubectl", "up", "run"])
    args = parser.parse_args(argv)
    logs.configure(component="localcluster")
    if args.command == "build":
        print(binaries.resolve().kube_apiserver.parent)
        return 0
    if args.command == "kubectl":
        print(binaries.resolve().kubectl)
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
