"""SageMaker control-plane adapter: models, endpoint configurations and endpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .aws import LazyClient, error_code

#: Statuses an endpoint passes through while a configuration rolls out.
_IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack")


class SageMakerEndpoints(LazyClient):
    """Creates a model and its endpoint configuration, then creates or updates the endpoint."""

    service_name = "sagemaker"

    def current_config(self, endpoint: str) -> tuple[str, str, str] | None:
        """(status, endpoint configuration, its model) of ``endpoint``, or None when it does not exist."""
        try:
            described = self.client.describe_endpoint(EndpointName=endpoint)
        except Exception as error:
            if error_code(error) in ("ValidationException", "ValidationError"):
                return None
            raise
        status, config_name = str(described["EndpointStatus"]), str(described["EndpointConfigName"])
        try:
            config = self.client.describe_endpoint_config(EndpointConfigName=config_name)
        except Exception as error:
            if error_code(error) in ("ValidationException", "ValidationError"):
                return status, config_name, ""
            raise
        return status, config_name, str(config["ProductionVariants"][0]["ModelName"])

    def delete_endpoint(self, endpoint: str) -> None:
        self.client.delete_endpoint(EndpointName=endpoint)

    def create_model(self, name: str, container: dict[str, Any], role_arn: str) -> None:
        self.client.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=role_arn)

    def create_endpoint_config(
        self, name: str, model_name: str, variant: dict[str, Any], async_config: dict[str, Any] | None
    ) -> None:
        arguments: dict[str, Any] = {
            "EndpointConfigName": name,
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": model_name, **variant}],
        }
        if async_config is not None:
            arguments["AsyncInferenceConfig"] = async_config
        self.client.create_endpoint_config(**arguments)

    def roll_out(self, endpoint: str, config_name: str, *, exists: bool) -> None:
        if exists:
            self.client.update_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
        else:
            self.client.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)

    def wait(
        self,
        endpoint: str,
        config_name: str,
        timeout_seconds: float,
        poll_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> str | None:
        """Wait for the roll-out of ``config_name``; None when it serves, else the failure reason."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            described = self.client.describe_endpoint(EndpointName=endpoint)
            status = described["EndpointStatus"]
            if status not in _IN_PROGRESS:
                if status == "InService" and described["EndpointConfigName"] == config_name:
                    return None
                return str(described.get("FailureReason") or f"the endpoint is {status}")
            if time.monotonic() > deadline:
                return f"the endpoint was still {status} after {timeout_seconds:.0f} s"
            sleep(poll_seconds)

    def delete(self, config_name: str, model_name: str) -> None:
        """Remove a superseded configuration and model (missing ones are fine)."""
        for call, argument in (
            (self.client.delete_endpoint_config, {"EndpointConfigName": config_name}),
            (self.client.delete_model, {"ModelName": model_name}),
        ):
            if not next(iter(argument.values())):
                continue
            try:
                call(**argument)
            except Exception as error:
                if error_code(error) not in ("ValidationException", "ValidationError"):
                    raise
