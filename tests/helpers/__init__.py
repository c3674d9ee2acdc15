"""Helpers tests share (conftest.py holds fixtures only): polling for a condition, test data files,
a real worker in the test's loop, and the ops view's seeded state. Test rows come from ``tests.factories``.
"""
