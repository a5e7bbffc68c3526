"""The one line a failed query's message carries: the cause, and for failures whose raw text
does not say what to do, what to do."""

from __future__ import annotations

from stream.runner import failure_reason


def test_a_python_error_in_a_worker_is_its_last_line() -> None:
    error = Exception(
        "An exception was raised by the Python Proxy. Return Message: Traceback (most recent "
        "call last):\n  File x\nstream.errors.SinkError: Redis failed 3 times"
    )
    assert failure_reason(error) == "stream.errors.SinkError: Redis failed 3 times"


def test_executors_that_cannot_run_the_shipped_python_are_told_the_fix() -> None:
    error = Exception(
        "Job aborted due to stage failure: java.io.IOException: Cannot run program "
        '"./prognos-env/bin/python": error=2, No such file or directory'
    )
    reason = failure_reason(error)
    assert "cannot run the Python environment" in reason
    assert "./prognos-env/bin/python" in reason and "PROGNOS_EXECUTOR_PYTHON" in reason


def test_a_namenode_that_does_not_answer_is_named() -> None:
    refused = Exception(
        "Traceback (most recent call last):\npy4j.protocol.Py4JJavaError: x\nCaused by: "
        "java.net.ConnectException: Call From vm/127.0.0.1 to nn:8020 failed on connection "
        "exception: java.net.ConnectException: Connection refused"
    )
    assert "a NameNode at nn:8020" in failure_reason(refused)
    cut = Exception(
        'java.io.EOFException: End of File Exception between local host is: "vm/1.2.3.4"; '
        'destination host is: "nn":8020; : java.io.EOFException'
    )
    assert "a NameNode at nn:8020" in failure_reason(cut)
    assert "prognos cluster status" in failure_reason(cut)


def test_a_failed_spark_job_of_a_batch_gives_its_stage_failure_not_py4js_first_line() -> None:
    error = Exception(
        "An exception was raised by the Python Proxy. Return Message: Traceback (most recent "
        "call last):\n  File x\npy4j.protocol.Py4JJavaError: An error occurred while calling "
        "o3554.collectToPython.\n: org.apache.spark.SparkException: Job aborted due to stage "
        "failure: ResultStage 1 has failed the maximum allowable number of times: 4. Most "
        "recent failure reason: org.apache.spark.shuffle.MetadataFetchFailedException: "
        "Missing an output location for shuffle 0 partition 0\n\tat org.apache.spark.X"
    )
    reason = failure_reason(error)
    assert reason.startswith("Job aborted due to stage failure: ResultStage 1 has failed")
    assert reason.endswith("Missing an output location for shuffle 0 partition 0")
