"""Thin HTTP handlers; business logic lives in ``hub.services``."""
