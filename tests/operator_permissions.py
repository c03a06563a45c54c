"""What each operator command of the CLI calls, as IAM actions: template.yaml's OperatorPolicy must
grant exactly their union (tests/test_template.py), and the commands must call nothing else
(tests/integration/test_service_admin.py records their calls against the local AWS).

``models deploy`` is listed as its CloudFormation adapter and the endpoint stack's resources make
it (CloudFormation acts with the caller's permissions).
"""

from __future__ import annotations

# Every command given --stack-name reads the stack's outputs first.
_STACK = {"cloudformation:DescribeStacks"}

OPERATOR_COMMANDS: dict[str, set[str]] = {
    # the name's reservation, then the client (the directory reads the previous record first)
    "clients create": _STACK | {"dynamodb:GetItem", "dynamodb:PutItem"},
    "clients list": _STACK | {"dynamodb:Scan"},
    "clients rotate-secret": _STACK | {"dynamodb:GetItem", "dynamodb:PutItem"},
    "services plan": _STACK | {"dynamodb:GetItem", "dynamodb:Scan"},
    "services apply": _STACK
    | {
        "dynamodb:GetItem",
        "dynamodb:Scan",
        "dynamodb:PutItem",
        "states:CreateStateMachine",
        # an ensemble registered before: found by name, then updated
        "states:ListStateMachines",
        "states:UpdateStateMachine",
        "iam:PassRole",
    },
    "services delete": _STACK
    | {
        "dynamodb:GetItem",
        "dynamodb:Scan",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "states:ListStateMachines",
        "states:DescribeStateMachine",
        "states:ListExecutions",
        "states:DeleteStateMachine",
    },
    "services deactivate": _STACK | {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"},
    "services activate": _STACK | {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"},
    "services orphans": _STACK
    | {"dynamodb:Scan", "states:ListStateMachines", "states:DescribeStateMachine", "cloudformation:ListStacks"},
    # The version commands: a read, then a conditional put (read again first), of the catalog entry.
    # Without --by they also call sts:GetCallerIdentity, which no policy grants or denies.
    **{
        f"services {action}": _STACK | {"dynamodb:GetItem", "dynamodb:PutItem"}
        for action in ("approve", "reject", "traffic", "shadow", "promote", "rollback")
    },
    "services history": _STACK | {"dynamodb:GetItem"},
    # The catalog entry, a Scan of the predictions table, the outputs in S3 (KMS-encrypted).
    "services compare": _STACK | {"dynamodb:GetItem", "dynamodb:Scan", "s3:GetObject", "kms:Decrypt"},
    # The partitions of the window, a day's listing at a time (audit/ only), and their records.
    "audit export": _STACK | {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"},
    "audit show": _STACK | {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"},
    # The records of the window (as audit export), and the depth of each dead-letter queue.
    "stats": _STACK | {"s3:ListBucket", "s3:GetObject", "kms:Decrypt", "sqs:GetQueueAttributes"},
    "models deploy": _STACK
    | {
        # the archive
        "s3:GetEncryptionConfiguration",
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        # the endpoint stack
        "cloudformation:CreateStack",
        "cloudformation:UpdateStack",
        "cloudformation:DeleteStack",
        "cloudformation:DescribeStackEvents",
        # its resources: the model's execution role ...
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:GetRole",
        "iam:GetRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole",
        "iam:DeleteRolePolicy",
        "iam:DeleteRole",
        "iam:PassRole",
        # ... the model, its configuration and endpoint ...
        "sagemaker:CreateModel",
        "sagemaker:DescribeModel",
        "sagemaker:DeleteModel",
        "sagemaker:CreateEndpointConfig",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:DeleteEndpointConfig",
        "sagemaker:CreateEndpoint",
        "sagemaker:DescribeEndpoint",
        "sagemaker:UpdateEndpoint",
        "sagemaker:DeleteEndpoint",
        "sagemaker:UpdateEndpointWeightsAndCapacities",
        "sagemaker:AddTags",
        "sagemaker:ListTags",
        "sagemaker:DeleteTags",
        # ... and, for async endpoints, autoscaling to zero with its alarm
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:DeregisterScalableTarget",
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:PutScalingPolicy",
        "application-autoscaling:DeleteScalingPolicy",
        "application-autoscaling:DescribeScalingPolicies",
        "application-autoscaling:DescribeScalingActivities",
        "iam:CreateServiceLinkedRole",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DeleteAlarms",
    },
}

# boto3 service name → IAM service prefix, for recorded calls.
IAM_PREFIX = {"stepfunctions": "states", "dynamodb": "dynamodb", "cloudformation": "cloudformation"}

# API operation → the IAM action that authorises it, where the names differ.
IAM_ACTION = {"s3:ListObjectsV2": "s3:ListBucket", "s3:HeadObject": "s3:GetObject"}
