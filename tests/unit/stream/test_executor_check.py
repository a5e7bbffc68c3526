"""The start-up check that a cluster's executors can run the job's Python (one small task
an executor core before the query starts), with an in-memory SparkContext double."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from stream.checks import check_executor_python
from stream.errors import ConfigError


class _Rdd:
    def __init__(self, items: Iterable[Any], failure: Exception | None) -> None:
        self.items, self.failure = list(items), failure

    def map(self, fn: Callable[[Any], Any]) -> _Rdd:
        return _Rdd([fn(i) for i in self.items], self.failure)

    def collect(self) -> list[Any]:
        if self.failure is not None:
            raise self.failure
        return self.items


class _Context:
    def __init__(self, master: str, failure: Exception | None = None) -> None:
        self.master, self.failure, self.defaultParallelism = master, failure, 2
        self.jobs: list[int] = []

    def parallelize(self, items: Iterable[Any], slices: int) -> _Rdd:
        self.jobs.append(slices)
        return _Rdd(items, self.failure)


class _Spark:
    def __init__(self, context: _Context) -> None:
        self.sparkContext = context


def test_executors_that_run_python_pass_with_one_task_a_core() -> None:
    context = _Context("spark://127.0.0.1:7077")
    check_executor_python(_Spark(context))
    assert context.jobs == [2]


def test_local_mode_is_not_checked() -> None:
    context = _Context("local[2]", failure=RuntimeError("never run"))
    check_executor_python(_Spark(context))
    assert context.jobs == []


def test_a_worker_without_the_shipped_interpreter_is_named_with_the_fix() -> None:
    failure = RuntimeError(
        "Job aborted due to stage failure: Task 0 failed 4 times: java.io.IOException: Cannot "
        'run program "./prognos-env/bin/python": error=2, No such file or directory'
    )
    with pytest.raises(ConfigError) as raised:
        check_executor_python(_Spark(_Context("spark://m:7077", failure)))
    message = str(raised.value)
    assert "cannot run the Python environment" in message
    assert "(./prognos-env/bin/python)" in message and "PROGNOS_EXECUTOR_PYTHON" in message


def test_another_failure_of_the_check_is_raised_as_it_is() -> None:
    failure = RuntimeError("Job aborted: executor lost")
    with pytest.raises(RuntimeError, match="executor lost"):
        check_executor_python(_Spark(_Context("spark://m:7077", failure)))
