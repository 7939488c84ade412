"""``make chaos``: korder under every fault we can cause, checked against what clients were told.

Jepsen's method on one machine. A seeded workload of clients talks to the REST
façade as shops would (creates with Idempotency-Keys, retries after timeouts,
updates, process, fulfil, cancel) and applies some orders as manifests; every
request and its answer is recorded in a history (:mod:`.history`). Meanwhile
faults are injected (:mod:`.faults`): participant failures and restarts, operator
SIGKILLs at random and right after each kind of participant call, API server and
etcd restarts, a second operator replica whose leader is killed, and the
operator's connection to the API server cut. At the end the checker
(:mod:`.checker`, pure code) holds the history, the orders and the participants'
ledgers against the invariants, each reported with its result.

- :mod:`.history`: what a client asked and was told;
- :mod:`.workload`: the clients;
- :mod:`.proxies`: the two proxies the faults act through;
- :mod:`.faults`: the fault plan and the injectors;
- :mod:`.supervisor`: the processes, restarted when they die (as a kubelet would);
- :mod:`.checker`: the invariants;
- :mod:`.run`: one run, start to report.
"""
