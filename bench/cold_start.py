"""Cold start: import and initialise each handler in a fresh process, beside bare ``import boto3``.

Every measurement is a new ``python -c`` process with the environment a Lambda function of the
template would have (dummy resource names, ``AWS_LAMBDA_FUNCTION_NAME`` set so Powertools behaves
as on Lambda, tracing active as ``Tracing: Active`` asks). The child reports wall-clock times; the
parent took the time just before starting it, so each figure runs from process start:

- ``import``: the handler module imported (``python -c "import ensemble_gateway.handlers.X"``);
- ``init``: plus its first gateway objects built (the handler's ``default_dependencies()``), without
  calling AWS — what a real cold start pays before the first event;
- ``+clients``: plus the boto3 clients the handler's first event needs (still no network).

Bytecode: every process (handlers and baselines alike) reads and writes its ``.pyc`` files under
one private ``PYTHONPYCACHEPREFIX``, warmed before the timed rounds, so no timed run compiles
anything (the shell may set ``PYTHONDONTWRITEBYTECODE``, which would make our own modules — not
boto3, whose .pyc pip wrote at install — compile in every process). A Lambda package should ship
compiled ``.pyc`` files for the same reason.

Baselines in the same rounds: ``python -c pass`` and ``python -c "import boto3"`` (and boto3 with
one client, and the *floor*: boto3 plus what the project's rules put in every handler — Powertools
Logger/Metrics and the pydantic settings model validated at cold start). The rounds are
interleaved so drift affects all alike; times are medians, and each ratio is the median of the
per-round ratios (handler and boto3 of the same round). The target compares ``init`` with bare
``import boto3``. ``python -X importtime`` then shows which
heavy modules each handler pulls in, and which of our modules imports them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from .common import median, say, table

TARGET_RATIO = 1.3  # init vs bare ``import boto3`` (the first target; below the floor, see README)
FLOOR_TARGET_RATIO = 1.10  # init vs the floor measured in the same round (issue 19)
_PYCACHE = os.path.join(tempfile.gettempdir(), f"ensemble-gateway-bench-pycache-{os.getuid()}")

# Every handler's cold start builds its ``default_dependencies()``.
BUILD = "default_dependencies()"
# handler -> (what its cold start builds, the clients its first event uses)
HANDLERS: dict[str, tuple[str, list[str]]] = {
    "new_prediction": (BUILD, ["dynamodb", "s3"]),
    "results": (BUILD, ["dynamodb", "s3"]),
    "process_input": (BUILD, ["dynamodb", "s3", "sagemaker-runtime", "stepfunctions", "sqs"]),
    "get_transform_call": (BUILD, ["dynamodb", "s3", "sagemaker-runtime", "stepfunctions", "sqs"]),
    "notifications": (BUILD, ["dynamodb", "s3", "stepfunctions", "sqs"]),
    "webhook_delivery": (BUILD, ["dynamodb", "s3", "sqs"]),
    "sweeper": (BUILD, ["dynamodb"]),
    "cancel_prediction": (BUILD, ["dynamodb", "s3", "stepfunctions", "sqs"]),
    "batches": (BUILD, ["dynamodb", "s3", "sqs"]),
    "shadow_dispatch": (BUILD, ["dynamodb", "s3", "sagemaker-runtime"]),
    "batch_driver": (BUILD, ["dynamodb", "s3", "sqs", "stepfunctions"]),
}
# Functions whose template Environment adds SHADOW_QUEUE_URL to the Globals' variables.
_SHADOW_QUEUE_FUNCTIONS = {"process-input", "get-transform-call", "batch-driver"}

_CHILD = """
import json, sys, time
marks = {{"start": time.time()}}
{body}
print(json.dumps(marks))
"""

_HANDLER_BODY = """
import ensemble_gateway.handlers.{name}
marks["import"] = time.time()
from ensemble_gateway.handlers.{name} import default_dependencies
{build}
marks["init"] = time.time()
from ensemble_gateway.adapters.aws import client
for service in {clients!r}:
    client(service)
marks["clients"] = time.time()
"""

_BASELINES = {
    "python": 'marks["done"] = time.time()',
    "boto3": 'import boto3\nmarks["done"] = time.time()',
    "boto3+client": 'import boto3\nboto3.client("dynamodb")\nmarks["done"] = time.time()',
    # What every handler needs under the project's rules before any code of its own: boto3,
    # Powertools Logger and Metrics, and the pydantic settings model validated at cold start.
    "floor": (
        "import boto3\nfrom aws_lambda_powertools import Logger, Metrics\n"
        'from ensemble_gateway.settings import get_settings\nget_settings()\nmarks["done"] = time.time()'
    ),
}


def lambda_environment(function: str) -> dict[str, str]:
    """What a function of template.yaml sees on Lambda (resource names are dummies)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "MOTO_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            "PYTHONPYCACHEPREFIX": _PYCACHE,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "dummy",
            "AWS_SESSION_TOKEN": "dummy",
            "AWS_LAMBDA_FUNCTION_NAME": f"ensemble-gateway-{function}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
            "_X_AMZN_TRACE_ID": "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
            "PREDICTIONS_TABLE": "predictions",
            "SERVICES_TABLE": "services",
            "CLIENTS_TABLE": "clients",
            "BUCKET": "bucket",
            "KMS_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
            "WEBHOOK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks",
            "WEBHOOK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks-dlq",
            "EVENT_BUS_NAME": "ensemble-gateway-events",
            "AUDIT_STREAM_NAME": "ensemble-gateway-audit",
            "BATCHES_TABLE": "batches",
            "BATCH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/batches",
            "UPLOAD_URL_EXPIRY_SECONDS": "900",
            "RESULT_URL_EXPIRY_SECONDS": "3600",
            "MAX_UPLOAD_BYTES": "10485760",
            "RETENTION_DAYS": "30",
            "AUTH_MODE": "iam",
            "STAGE": "dev",
            "XRAY_SDK_TRACING": "false",
            "PYDANTIC_DISABLE_PLUGINS": "__all__",  # as template.yaml's Globals set it
            "POWERTOOLS_SERVICE_NAME": "ensemble-gateway",
            "POWERTOOLS_METRICS_NAMESPACE": "EnsembleGateway",
            "LOG_LEVEL": "INFO",
        }
    )
    if function.replace("_", "-") in _SHADOW_QUEUE_FUNCTIONS:
        env["SHADOW_QUEUE_URL"] = "https://sqs.us-east-1.amazonaws.com/123456789012/shadows"
    return env


def _child_code(name: str) -> str:
    if name in _BASELINES:
        return _CHILD.format(body=_BASELINES[name])
    build, clients = HANDLERS[name]
    return _CHILD.format(body=_HANDLER_BODY.format(name=name, build=build, clients=clients))


def _run_once(name: str) -> dict[str, float]:
    env = lambda_environment(name.replace("_", "-"))
    code = _child_code(name)
    started = time.time()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: the child process failed:\n{done.stderr[-2000:]}")
    marks = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: (v - started) * 1000 for k, v in marks.items()}


def importtime(name: str) -> dict[str, Any]:
    """``-X importtime`` of one handler's import and init: ms by top-level package, our heaviest imports."""
    build, _ = HANDLERS[name]
    code = (
        f"import ensemble_gateway.handlers.{name}\n"
        f"from ensemble_gateway.handlers.{name} import default_dependencies\n"
        f"{build}"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=lambda_environment(name),
        capture_output=True,
        text=True,
        timeout=120,
    )
    entries: list[tuple[int, int, int, str]] = []  # (depth, self us, cumulative us, module)
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3:
            continue
        self_us, cumulative_us, module = parts
        depth = (len(module) - len(module.lstrip(" ")) - 1) // 2
        entries.append((depth, int(self_us), int(cumulative_us), module.strip()))
    # Post-order: a module's children are the entries just before it at depth + 1.
    parents: dict[int, int] = {}
    stack: list[int] = []
    for index, (depth, _, _, _) in enumerate(entries):
        while stack and entries[stack[-1]][0] > depth:
            parents[stack.pop()] = index
        stack.append(index)
    by_package: dict[str, float] = {}
    for _, self_us, _, module in entries:
        top = module.split(".")[0]
        by_package[top] = by_package.get(top, 0.0) + self_us / 1000
    # The outermost third-party imports: imported directly by one of our modules, or at the top
    # (a function-level import run by the init code, e.g. ``from boto3.dynamodb.types import ...``).
    ours: list[tuple[str, str, float]] = []
    for index, (_, _, cumulative_us, module) in enumerate(entries):
        if module.startswith("ensemble_gateway"):
            continue
        parent = parents.get(index)
        if parent is None:
            ours.append(("(function-level import during init)", module, cumulative_us / 1000))
        elif entries[parent][3].startswith("ensemble_gateway"):
            ours.append((entries[parent][3], module, cumulative_us / 1000))
    ours.sort(key=lambda item: -item[2])
    total = sum(e[2] for e in entries if e[0] == 0) / 1000
    return {
        "total_ms": total,
        "by_package_ms": dict(sorted(by_package.items(), key=lambda kv: -kv[1])[:12]),
        "heaviest_imports_by_our_modules": [
            {"importer": importer, "module": module, "cumulative_ms": ms} for importer, module, ms in ours[:10]
        ],
    }


def run(quick: bool = False) -> dict[str, Any]:
    runs = 1 if quick else 7
    names = list(_BASELINES) + list(HANDLERS)
    say(
        f"Cold start: {runs} fresh process(es) per handler, interleaved with the baselines, Lambda-like "
        "environment (tracing active)"
    )
    # The import profiles run first: they also compile every module, so no timed run pays for .pyc files.
    profiles: dict[str, Any] = {}
    for name in HANDLERS if not quick else list(HANDLERS)[:1]:
        profiles[name] = importtime(name)
    if not quick:  # compile what the profiles did not import (clients, baselines); not measured
        for name in names:
            _run_once(name)
    samples: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for _ in range(runs):
        for name in names:
            samples[name].append(_run_once(name))

    def med(name: str, mark: str) -> float:
        return median([s[mark] for s in samples[name] if mark in s])

    def paired_ratio(name: str, mark: str, baseline: str = "boto3") -> float:
        # Each round's figure over the same round's baseline: drift between rounds cancels out.
        return median([s[mark] / b["done"] for s, b in zip(samples[name], samples[baseline], strict=True)])

    boto3_ms = med("boto3", "done")
    baselines = {
        "python_ms": med("python", "done"),
        "boto3_ms": boto3_ms,
        "boto3_one_client_ms": med("boto3+client", "done"),
        "floor_ms": med("floor", "done"),
        "floor_ratio_vs_boto3": paired_ratio("floor", "done"),
    }
    handlers: dict[str, Any] = {}
    for name in HANDLERS:
        init = med(name, "init")
        ratio = paired_ratio(name, "init")
        floor_ratio = paired_ratio(name, "init", "floor")
        handlers[name] = {
            "import_ms": med(name, "import"),
            "init_ms": init,
            "with_clients_ms": med(name, "clients"),
            "ratio_init_vs_boto3": ratio,
            "ratio_of_medians": init / boto3_ms,
            "target_met": ratio <= TARGET_RATIO,
            "ratio_init_vs_floor": floor_ratio,
            "floor_target_met": floor_ratio <= FLOOR_TARGET_RATIO,
            "samples_init_ms": [s["init"] for s in samples[name]],
        }
    rows = [
        [
            name.replace("_", "-"),
            h["import_ms"],
            h["init_ms"],
            h["with_clients_ms"],
            f"{h['ratio_init_vs_boto3']:.2f}",
            h["target_met"],
            f"{h['ratio_init_vs_floor']:.2f}",
            h["floor_target_met"],
        ]
        for name, h in handlers.items()
    ]
    headers = ["handler", "import ms", "init ms", "+clients ms", "init / boto3", f"<= {TARGET_RATIO}x"]
    say(table([*headers, "init / floor", f"<= {FLOOR_TARGET_RATIO}x"], rows))
    say(
        f"baselines (median, from process start): python {baselines['python_ms']:.0f} ms, import boto3 "
        f"{boto3_ms:.0f} ms, boto3 + one client {baselines['boto3_one_client_ms']:.0f} ms; floor under the "
        f"project's rules (boto3 + Powertools Logger/Metrics + pydantic settings validated) "
        f"{baselines['floor_ms']:.0f} ms = {baselines['floor_ratio_vs_boto3']:.2f}x boto3"
    )
    say(
        "init / boto3, init / floor: median over rounds of each round's ratio (handler and baseline measured "
        "in the same round)"
    )
    say()
    for name, profile in profiles.items():
        packages = ", ".join(f"{k} {v:.0f}" for k, v in list(profile["by_package_ms"].items())[:8])
        say(
            f"{name.replace('_', '-')}: imports during import+init {profile['total_ms']:.0f} ms (-X importtime); "
            f"by package (self ms): {packages}"
        )
        for item in profile["heaviest_imports_by_our_modules"][:5]:
            say(f"    {item['importer']} -> {item['module']}: {item['cumulative_ms']:.0f} ms")
    say()
    met = all(h["target_met"] for h in handlers.values())
    floor_met = all(h["floor_target_met"] for h in handlers.values())
    return {
        "quick": quick,
        "runs": runs,
        "environment": "Lambda-like: AWS_LAMBDA_FUNCTION_NAME set, tracing active (template Tracing: Active), "
        "bytecode cached (PYTHONPYCACHEPREFIX) for handlers and baselines alike",
        "baselines": baselines,
        "handlers": handlers,
        "target_ratio": TARGET_RATIO,
        "target_met": met,
        "floor_target_ratio": FLOOR_TARGET_RATIO,
        "floor_target_met": floor_met,
        "importtime": profiles,
    }
