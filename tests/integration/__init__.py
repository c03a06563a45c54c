"""Integration tests: moto as a server on 127.0.0.1, handlers driven with real AWS event shapes.

A package so that its conftest is imported as ``integration.conftest`` and never shadows the
top-level ``conftest`` module that other test modules import from.
"""
