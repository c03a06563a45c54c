"""Powertools Logger, Tracer and Metrics shared by the handlers."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="ensemble-gateway")
tracer = Tracer(service="ensemble-gateway")
metrics = Metrics(namespace="EnsembleGateway", service="ensemble-gateway")
