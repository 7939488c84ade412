"""The domain: the Order's shape (:mod:`.order`), money (:mod:`.money`) and the saga (:mod:`.saga`).

Plain, typed Python. It imports nothing that touches Kubernetes or HTTP (an
import-linter contract holds that), so it can be tested without a cluster.
"""
