"""Contract tests: one set of cases run against the in-memory fakes and the DynamoDB adapters.

A package so that its conftest is imported as ``contract.conftest`` and never shadows the
top-level ``conftest`` module that other test modules import from.
"""
