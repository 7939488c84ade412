"""The reference participants: small stand-ins for a shop's inventory, payment and shipping.

``python -m korder.participants`` serves all three in one process, so korder runs
on one machine; the operator reaches them through their URLs (settings), so a shop
points korder at its real services instead. They behave predictably (see the
README) so tests and demos reach every path of the saga, are idempotent by the
``Idempotency-Key`` header, and keep a ledger of their effects a test can read.
Their state is one SQLite database (:mod:`.store`): in memory by default, or a
file that a restart keeps, so a restart replays every key and repeats no effect.

They import nothing of korder's domain, Kubernetes layer, facade or operator (an
import-linter contract holds that): honest stand-ins with their own HTTP contract.
"""
