"""The operator: Kopf handlers that drive each Order through its saga.

:mod:`.handlers` wires Kopf to :mod:`.reconciling`, which drives one Order through
the domain's state machine, with :mod:`.performing` making the participant calls;
:mod:`.__main__` starts the process, which acts once it holds a Lease
(:mod:`.leadership`), on the range of Orders of that Lease's shard (:mod:`.sharding`).
It never imports the facade: the two meet only through the Order resource.
"""
