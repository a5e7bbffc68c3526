"""The session ``prognos`` builds hands the query's file system client the settings the job
relies on for a checkpoint on HDFS (stream/session.py, ``HDFS_CLIENT``)."""

from __future__ import annotations

from typing import Any

from stream.session import HDFS_CLIENT


def test_the_checkpoint_client_asks_again_soon_after_a_file_is_closed(spark: Any) -> None:
    # The Hadoop configuration the streaming query's checkpoint and state files are
    # written with (a fresh one from the session, as the query makes it).
    conf = spark._jsparkSession.sessionState().newHadoopConf()
    for key, value in HDFS_CLIENT.items():
        name = key.removeprefix("spark.hadoop.")
        assert conf.get(name) == value, f"{name} is {conf.get(name)!r}, not {value!r}"
    assert int(conf.get("dfs.client.block.write.locateFollowingBlock.initial.delay.ms")) < 400
