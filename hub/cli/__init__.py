"""The ``hub`` command: ``up``, ``serve``, ``worker``, ``migrate``, ``keys``, ``status``, ``sync``, ``bench``.

Human output on stdout, logs on stderr. ``main`` holds the app and the process commands, ``common``
the helpers every subcommand shares (consoles, settings, attaching to embedded servers), ``status``,
``sync`` and ``connection_sync`` their subcommands.
"""
