"""Catalog: what an organization sells (``products``, with stock) and to whom (``contacts``).

In: validated API input. Out: product and contact rows; stock moves are made by ``hub.orders.stock``.
Owns tables: ``products``, ``contacts``.
"""
