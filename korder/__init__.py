"""korder: a Kubernetes-native order management system.

An order is an ``Order`` custom resource (``korder.dev/v1alpha1``). The operator
(:mod:`korder.operator`) drives it through a saga; the REST facade (:mod:`korder.api`)
turns HTTP requests into creates and patches of the resource. Both stand on the
domain (:mod:`korder.domain`) and the Kubernetes client layer (:mod:`korder.kube`).
"""

__version__ = "0.1.0"
