"""Local control-plane tooling: builds and runs kube-apiserver + etcd, and the whole system.

Serves ``make run`` and the tests. Product code (domain, kube, api, operator) never
imports it (an import-linter contract holds that).

- :mod:`.binaries` finds or builds kube-apiserver, etcd and kubectl;
- :mod:`.certificates` makes the CA, serving and admin certificates, and the service-account key;
- :mod:`.processes` spawns child processes that die with their parent;
- :mod:`.controlplane` starts etcd and kube-apiserver and writes an admin kubeconfig;
- :mod:`.system` runs everything for ``make run``.
"""
