"""Ops: what the on-call engineer sees and does: queue and delivery statistics, metrics, retry actions.

In: reads of every table (``stats``, ``counts``) and the Prometheus registry (``metrics``).
Out: the ops page's JSON, ``hub status``'s summary and ``/metrics``; ``actions`` holds the
ops page's buttons, which call the same retry functions as the REST API. Owns no table.
"""
