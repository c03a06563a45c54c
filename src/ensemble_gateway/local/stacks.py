"""Endpoint stacks on the local runtime: the local deployer in CloudFormation's place.

:class:`LocalEndpointStacks` is what ``adapters.cloudformation.CloudFormationStacks`` is on AWS,
for a process talking to a running local runtime (the runtime itself, or the CLI through its
client factory): it deploys a stack's template with the local deployer, and keeps each stack's
record (template, parameters, resources) in the local S3, where every process using that
runtime finds it, as CloudFormation keeps its stacks. An update compares with that record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..endpoint_stack import EndpointStackError, StackEvent
from .deployer import DeployedStack, LocalDeployer, StackRolledBackError
from .template import TemplateError

#: The local stand-in for CloudFormation's own storage of stacks.
STACK_RECORDS_BUCKET = "ensemble-gateway-local-cloudformation"


class LocalStackRecords:
    """Stack records (:meth:`DeployedStack.to_json`) in a bucket of the local S3, one object per stack."""

    def __init__(self, client_factory: Callable[[str], Any], bucket: str = STACK_RECORDS_BUCKET) -> None:
        self._client_factory = client_factory
        self.bucket = bucket
        self._bucket_ready = False

    def load(self, stack_name: str) -> DeployedStack | None:
        s3 = self._client_factory("s3")
        try:
            body = s3.get_object(Bucket=self.bucket, Key=self._key(stack_name))["Body"].read()
        except Exception as error:
            if _missing(error):
                return None
            raise
        return DeployedStack.from_json(body.decode("utf-8"))

    def save(self, stack: DeployedStack) -> None:
        s3 = self._client_factory("s3")
        if not self._bucket_ready:
            try:
                s3.create_bucket(Bucket=self.bucket)
            except Exception as error:
                if "BucketAlreadyOwnedByYou" not in str(error) and "BucketAlreadyExists" not in str(error):
                    raise
            self._bucket_ready = True
        s3.put_object(
            Bucket=self.bucket,
            Key=self._key(stack.stack_name),
            Body=stack.to_json().encode("utf-8"),
            ContentType="application/json",
        )

    def delete(self, stack_name: str) -> None:
        s3 = self._client_factory("s3")
        try:
            s3.delete_object(Bucket=self.bucket, Key=self._key(stack_name))
        except Exception as error:
            if not _missing(error):
                raise

    @staticmethod
    def _key(stack_name: str) -> str:
        return f"stacks/{stack_name}.json"


class LocalEndpointStacks:
    """Deploys and deletes endpoint stacks on the local runtime (the ``EndpointStacks`` of ``endpoint_stack``).

    Parameters
    ----------
    client_factory
        Returns boto3 clients of the running local runtime's AWS endpoint.
    region
        The local runtime's region.
    endpoint_timeout_seconds
        How long an endpoint may take to load its model.
    """

    #: The services the local deployer calls for an endpoint stack.
    SERVICES = ("s3", "iam", "sagemaker", "application-autoscaling", "cloudwatch")

    def __init__(
        self,
        client_factory: Callable[[str], Any],
        *,
        region: str = "us-east-1",
        endpoint_timeout_seconds: float = 600.0,
    ) -> None:
        self.region = region
        self.endpoint_timeout_seconds = endpoint_timeout_seconds
        # One client per service, all created here, in the caller's thread: stacks are deployed
        # side by side, and creating a botocore client reads the whole of os.environ, which the
        # local runtime changes while a model's code imports (its environment variables). The
        # CLI's factory also makes a new client at each call.
        self._clients = {service: client_factory(service) for service in self.SERVICES}
        self.records = LocalStackRecords(self._client)

    def _client(self, service: str) -> Any:
        return self._clients[service]

    def deploy(
        self,
        stack_name: str,
        template_body: str,
        parameters: Mapping[str, str],
        on_event: Callable[[StackEvent], None] | None = None,
    ) -> dict[str, str]:
        """Create or update the stack from ``template_body``; return its outputs.

        Raises
        ------
        EndpointStackError
            The stack was rolled back (naming the resource that failed and why), or the template
            or a parameter is invalid.
        """
        previous = self.records.load(stack_name)
        try:
            deployer = LocalDeployer(
                None,
                self._client,
                stack_name=stack_name,
                region=self.region,
                parameter_overrides=dict(parameters),
                template_body=template_body,
                previous=previous,
                on_event=on_event,
                endpoint_timeout_seconds=self.endpoint_timeout_seconds,
            )
            if (
                previous is not None
                and previous.template_body == template_body
                and previous.parameters == deployer.stack.parameters
            ):
                return _text_outputs(previous)  # CloudFormation: "No updates are to be performed"
            stack = deployer.deploy()
        except StackRolledBackError as error:
            raise EndpointStackError(
                f"stack {stack_name} {error.stack_status}: {error.logical_id} ({error.resource_type}): {error.reason}",
                resource=error.logical_id,
                reason=error.reason,
            ) from None
        except TemplateError as error:
            raise EndpointStackError(f"stack {stack_name}: {error}") from None
        self.records.save(stack)
        return _text_outputs(stack)

    def delete(self, stack_name: str, on_event: Callable[[StackEvent], None] | None = None) -> None:
        """Delete the stack's resources and its record.

        Raises
        ------
        EndpointStackError
            There is no such stack.
        """
        stack = self.records.load(stack_name)
        if stack is None or stack.template_body is None:
            raise EndpointStackError(f"there is no stack {stack_name}")
        deployer = LocalDeployer(
            None,
            self._client,
            stack_name=stack_name,
            region=self.region,
            parameter_overrides=stack.parameters,
            template_body=stack.template_body,
            on_event=on_event,
        )
        deployer.delete_stack(stack)
        self.records.delete(stack_name)

    def outputs(self, stack_name: str) -> dict[str, str] | None:
        """The outputs of a stack, or None when there is none of that name."""
        stack = self.records.load(stack_name)
        return _text_outputs(stack) if stack is not None else None


def _text_outputs(stack: DeployedStack) -> dict[str, str]:
    return {name: str(value) for name, value in stack.outputs.items() if value is not None}


def _missing(error: Exception) -> bool:
    code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound")
