"""The CLI's arguments, help, exit statuses and how it finds the local runtime (no runtime started)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ensemble_gateway import cli
from ensemble_gateway.local.session import LocalClientCredentials, load_local_client, store_local_client


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port something listens on (a runtime that is alive, as far as the CLI can tell)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


@pytest.fixture
def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ENSEMBLE_GATEWAY_STATE, a per-user state directory of the test's own, and a project dir."""
    monkeypatch.delenv(cli.STATE_ENV, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    project = tmp_path / "project" / "sub" / "dir"
    project.mkdir(parents=True)
    monkeypatch.chdir(project)
    return tmp_path


def record(path: Path, port: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"api_url": f"http://127.0.0.1:{port}", "pid": os.getpid(), "api_key": "egk_k"}))


# -- help ---------------------------------------------------------------------------------------
def test_the_top_level_help_is_plain_text_and_lists_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN the top-level help is shown
    with pytest.raises(SystemExit) as shown:
        cli.main(["--help"])
    out = capsys.readouterr().out

    # THEN it exits 0, has no reStructuredText markup, and documents every exit status and the state
    assert shown.value.code == 0
    assert "``" not in out and ":func:" not in out
    for line in ("  0    done", "  1    the prediction ended", "  2    usage or input error", "  3    the prediction"):
        assert line in out
    assert "  4    the gateway cannot be reached" in out and "  130  interrupted" in out
    assert "$XDG_STATE_HOME/ensemble-gateway/state.json" in out and "ENSEMBLE_GATEWAY_STATE" in out


@pytest.mark.parametrize(
    ("command", "option"),
    [(["local"], "--catalog"), (["demo"], "--catalog"), (["predict"], "--timeout"), (["upload"], "--timeout")],
)
def test_every_option_says_what_it_does(capsys: pytest.CaptureFixture[str], command: list[str], option: str) -> None:
    # WHEN a command's help is shown / THEN the option has a description, not just its name
    with pytest.raises(SystemExit):
        cli.main([*command, "--help"])
    lines = capsys.readouterr().out.splitlines()
    described = [line for line in lines if line.strip().startswith(option)]
    assert described and any(len(line.split(maxsplit=2)) > 2 for line in described), described


# -- usage errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["predict", "echo"],
        ["predict", "echo", "x.json", "--metadata", "no-equals-sign"],
        ["predict", "echo", "x.json", "--timeout", "-1"],
        ["list", "--status", "DONE"],
        ["list", "--limit", "0"],
        ["list", "--created-after", "yesterday"],
        ["services", "frobnicate"],
    ],
    ids=["no-command", "no-file", "metadata", "timeout", "status", "limit", "created-after", "unknown-action"],
)
def test_usage_errors_exit_2_with_a_message(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    # WHEN the arguments are wrong / THEN argparse's usage error: exit 2, a message, no traceback
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert "error:" in err and "Traceback" not in err


def test_an_api_url_that_is_not_a_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN --api-url lacks its scheme / THEN exit 2 naming the option, before any connection
    assert cli.main(["services", "list", "--api-url", "localhost:3000", "--api-key", "k"]) == 2
    assert "--api-url takes an http(s) URL such as http://127.0.0.1:3000, got 'localhost:3000'" in (
        capsys.readouterr().err
    )


def test_an_api_that_refuses_connections_exits_4(
    user_home: Path, dead_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an API nothing listens for / WHEN a command calls it / THEN exit 4, one line
    code = cli.main(["services", "list", "--api-url", f"http://127.0.0.1:{dead_port}", "--api-key", "k"])
    assert code == 4
    assert capsys.readouterr().err == (
        f"error: cannot reach http://127.0.0.1:{dead_port}/services: connection refused\n"
    )


def test_created_after_takes_an_age_or_a_moment() -> None:
    # GIVEN / WHEN an age and moments with and without an offset
    two_hours = datetime.fromisoformat(cli._created_after("2h").replace("Z", "+00:00"))
    offset = cli._created_after("2026-12-01T10:00:00+01:00")
    naive = cli._created_after("2026-12-01T10:00:00")

    # THEN each is a UTC moment: the age counted back from now, a naive moment as local time
    assert abs(datetime.now(UTC) - timedelta(hours=2) - two_hours) < timedelta(minutes=1)
    assert offset == "2026-12-01T09:00:00Z"
    expected = datetime(2026, 12, 1, 10).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert naive == expected


def test_statuses_are_accepted_in_any_case() -> None:
    assert cli._status_name("completed") == "COMPLETED"


# -- where the local runtime is found -----------------------------------------------------------
def test_the_state_is_looked_for_up_the_tree_then_per_user(user_home: Path) -> None:
    # GIVEN no ENSEMBLE_GATEWAY_STATE / WHEN the CLI lists where it looks
    candidates = cli.state_file_candidates()

    # THEN .local-runtime/state.json here and in every parent, then $XDG_STATE_HOME's
    here = Path.cwd()
    assert candidates[0] == here / ".local-runtime" / "state.json"
    assert here.parent / ".local-runtime" / "state.json" in candidates
    assert candidates[-1] == user_home / "xdg" / "ensemble-gateway" / "state.json"
    # AND `local` records itself in the per-user place
    assert cli._state_path() == candidates[-1]


def test_an_explicit_state_file_is_the_only_place_looked_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli.STATE_ENV, str(tmp_path / "mine.json"))
    assert cli.state_file_candidates() == [tmp_path / "mine.json"]
    assert cli._state_path() == tmp_path / "mine.json"


def test_a_relative_xdg_state_home_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN XDG_STATE_HOME relative (the XDG specification says to ignore it)
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    monkeypatch.setenv("HOME", str(tmp_path))

    # WHEN / THEN the default ~/.local/state is used
    assert cli.user_state_dir() == tmp_path / ".local" / "state" / "ensemble-gateway"


def test_the_per_user_state_is_found_from_any_directory(user_home: Path, listener: int) -> None:
    # GIVEN a running runtime recorded in the per-user state, and a working directory elsewhere
    record(user_home / "xdg" / "ensemble-gateway" / "state.json", listener)

    # WHEN the CLI looks for the local runtime / THEN it finds it
    state = cli._local_state()
    assert state is not None and state["api_url"] == f"http://127.0.0.1:{listener}"


def test_a_state_file_in_a_parent_directory_is_found(user_home: Path, listener: int) -> None:
    # GIVEN a runtime of an older version, recorded in the project's .local-runtime/
    record(user_home / "project" / ".local-runtime" / "state.json", listener)

    # WHEN the CLI runs two directories below / THEN it finds that runtime
    state = cli._local_state()
    assert state is not None and state["api_url"] == f"http://127.0.0.1:{listener}"


def test_a_stale_state_file_is_skipped_for_a_live_one(user_home: Path, listener: int, dead_port: int) -> None:
    # GIVEN a stale state file in the project, and a live runtime in the per-user state
    stale = user_home / "project" / ".local-runtime" / "state.json"
    record(stale, dead_port)
    record(user_home / "xdg" / "ensemble-gateway" / "state.json", listener)

    # WHEN the CLI looks / THEN it uses the live one and removes the stale file
    state = cli._local_state()
    assert state is not None and state["api_url"] == f"http://127.0.0.1:{listener}"
    assert not stale.exists()


def test_local_refuses_to_start_over_a_running_runtime(
    user_home: Path, listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a runtime recorded as running in the per-user state
    state = user_home / "xdg" / "ensemble-gateway" / "state.json"
    record(state, listener)

    # WHEN another `local` is started / THEN it refuses, naming the other and the way to run two
    assert cli.main(["local", "--port", "0", "--aws-port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"a local runtime is already running (API http://127.0.0.1:{listener}" in err
    assert "ENSEMBLE_GATEWAY_STATE=FILE" in err
    assert json.loads(state.read_text())["api_url"] == f"http://127.0.0.1:{listener}"


def test_local_with_a_catalog_that_does_not_exist_is_a_usage_error(
    user_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["local", "--catalog", "nowhere.json"]) == 2
    assert capsys.readouterr().err == "error: --catalog nowhere.json: no such file\n"


def test_the_local_client_of_an_older_version_is_kept(user_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the local client an older version kept in the project's .local-runtime/
    legacy = user_home / "project" / ".local-runtime" / "local-client.json"
    credentials = LocalClientCredentials("c_0123456789abcdef", "local-user", "egk_old-key", "whsec_c2VjcmV0")
    store_local_client(legacy, credentials)
    target = user_home / "xdg" / "ensemble-gateway" / "local-client.json"

    # WHEN `local` prepares its client file in the per-user place
    cli._adopt_legacy_local_client(target)

    # THEN the same client (API key included) is kept there, and the old file is left alone
    assert load_local_client(target) == credentials
    assert legacy.exists()
    assert f"kept in {target} from now on" in capsys.readouterr().out


def test_an_operator_command_whose_aws_endpoint_is_gone_exits_4(
    user_home: Path, listener: int, dead_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a recorded runtime whose API answers but whose AWS endpoint has gone away
    state = user_home / "xdg" / "ensemble-gateway" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(
        json.dumps(
            {
                "api_url": f"http://127.0.0.1:{listener}",
                "aws_url": f"http://127.0.0.1:{dead_port}",
                "stack_name": "ensemble-gateway",
                "outputs": {"ClientsTableName": "clients"},
                "pid": os.getpid(),
            }
        )
    )

    # WHEN an operator command calls it / THEN exit 4 and one line, not botocore's traceback
    assert cli.main(["clients", "list"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach AWS: Could not connect to the endpoint URL")
    assert err.count("\n") == 1
