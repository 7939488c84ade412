"""``kubectl korder``: a kubectl plugin for the people who run korder.

A client of the Order resource, like kubectl itself, not of the REST façade: it
talks to the API server with the user's kubeconfig and context, so their RBAC
applies. :mod:`.main` is the executable's commands, :mod:`.session` the
connection, :mod:`.views` what it prints.
"""
