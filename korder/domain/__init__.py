"""The domain: the Order's shape, money, and (later) the saga state machine.

Plain, typed Python. It imports nothing that touches Kubernetes or HTTP (an
import-linter contract holds that), so it can be tested without a cluster.
"""
