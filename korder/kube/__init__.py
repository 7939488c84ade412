"""The Kubernetes layer: the Order CRD and the async client the components share.

Used by the facade and the operator; knows the domain's models, not their HTTP.
"""
