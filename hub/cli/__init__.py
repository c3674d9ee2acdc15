"""The ``hub`` command: ``up``, ``serve``, ``worker``, ``migrate``, ``keys``, ``status``, ``sync``, ``bench``.

Human output on stdout, logs on stderr. ``main`` holds the app and shared helpers, ``status`` and
``sync`` their subcommands.
"""
