"""A stream job that stops on a fault says why in its one-line error.

The Redis outage test of the long variant (``make chaos``) found the job's error line
saying only "An exception was raised by the Python Proxy. Return Message: Traceback (most
recent call last):" when Redis was gone: Spark puts the sink's ``SinkError`` inside a
traceback under that generic first line. These are the shapes Spark 4.2 gives
``query.exception()`` (captured from real runs), no services needed.
"""

from __future__ import annotations

from stream.runner import failure_reason

FOREACH_BATCH = """An exception was raised by the Python Proxy. Return Message: Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/py4j/clientserver.py", line 644, in _call_proxy
    return_value = getattr(self.pool[obj_id], method)(*params)
  File "/venv/lib/python3.11/site-packages/pyspark/sql/utils.py", line 163, in call
    self.func(DataFrame(jdf, wrapped_session_jdf), batch_id)
  File "/work/main/stream/sink.py", line 131, in write
    return self._write(by_device)
redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused.

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/work/main/stream/sink.py", line 136, in write
    raise SinkError(
stream.errors.SinkError: Redis at redis://127.0.0.1:6379/0 failed 5 times: Error 111 connecting to 127.0.0.1:6379. Connection refused. The batch is not committed; the job can be restarted on its checkpoint once Redis is back.

=== Streaming Query ===
Identifier: [id = 8acf6c06, runId = d80ed70d]
Current State: ACTIVE
Logical Plan:
~WriteToMicroBatchDataSourceV1 ForeachBatchSink, ValueError: not a cause
"""

PYTHON_WORKER = """[PYTHON_EXCEPTION] An exception was thrown from the Python worker: Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/pyspark/worker.py", line 1400, in main
pyspark.errors.exceptions.captured.PythonException: An exception was thrown from the Python worker:
AttributeError: Can't get attribute 'score_frame' on <module 'stream.scoring'>
"""

JVM = """[STREAM_FAILED] Query [id = 1, runId = 2] terminated with exception: Timeout of 60000ms expired before the position for partition t-0 could be determined
org.apache.kafka.common.errors.TimeoutException: Timeout of 60000ms expired
"""


def test_a_sink_error_inside_foreach_batch_is_the_reason() -> None:
    assert failure_reason(Exception(FOREACH_BATCH)) == (
        "stream.errors.SinkError: Redis at redis://127.0.0.1:6379/0 failed 5 times: Error 111 "
        "connecting to 127.0.0.1:6379. Connection refused. The batch is not committed; the job "
        "can be restarted on its checkpoint once Redis is back"
    )


def test_a_python_worker_error_is_the_reason() -> None:
    assert failure_reason(Exception(PYTHON_WORKER)).startswith(
        "AttributeError: Can't get attribute 'score_frame'"
    )


def test_a_jvm_error_keeps_its_first_line() -> None:
    assert failure_reason(Exception(JVM)).startswith("[STREAM_FAILED] Query [id = 1, runId = 2]")
    assert failure_reason(Exception("")) == "Exception"
