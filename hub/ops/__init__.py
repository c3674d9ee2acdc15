"""Ops: what the on-call engineer sees and does: queue and delivery statistics, metrics, retry actions.

In: reads of every table (``stats``, ``counts``), the arq queue (``arq_queue``), the receiver's
reject counters in Redis (``rejects``). Out: the ops page's JSON, ``hub status``'s summary and
``/metrics`` (``metrics`` renders them); ``actions`` holds the ops page's buttons, which call the
same retry functions as the REST API. Imports run one way: rejects/counts/arq_queue → stats → metrics
→ actions. Owns no table.
"""
