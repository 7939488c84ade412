"""The operator: Kopf handlers that drive each Order through its saga.

:mod:`.handlers` wires Kopf to the domain; :mod:`.__main__` starts the process.
It never imports the facade: the two meet only through the Order resource.
"""
