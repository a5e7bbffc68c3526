"""The model registry's commands with Redis down: a message naming the fix, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.cli import main
from deploy.errors import DeployError
from deploy.promote import model_history, promote, rollback
from models.metadata import DEFAULT_MODEL

DOWN = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(
    "call",
    [
        lambda: promote(Path(DEFAULT_MODEL), DOWN, "p"),
        lambda: rollback(DOWN, "p"),
        lambda: model_history(DOWN, "p"),
    ],
    ids=["promote", "rollback", "history"],
)
def test_redis_down_is_a_message_naming_the_fix(call: object) -> None:
    with pytest.raises(DeployError, match=r"Redis does not answer .*prognos stack up"):
        call()  # type: ignore[operator]


def test_the_commands_exit_1_with_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["model", "rollback"], ["model", "history"]):
        assert main(["--log-level", "WARNING", *argv, "--redis-url", DOWN]) == 1
        err = capsys.readouterr().err
        assert "Redis does not answer" in err and "Traceback" not in err
