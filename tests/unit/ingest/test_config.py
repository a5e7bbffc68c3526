def test_default_bootstrap_follows_the_local_stack_port() -> None:
    from ingest.config import KafkaConfig

    assert KafkaConfig.from_env({}).bootstrap_servers == "127.0.0.1:9092"
    assert (
        KafkaConfig.from_env({"PROGNOS_KAFKA_PORT": "19092"}).bootstrap_servers == "127.0.0.1:19092"
    )
    explicit = {"PROGNOS_KAFKA_PORT": "19092", "PROGNOS_KAFKA_BOOTSTRAP": "k:9092"}
    assert KafkaConfig.from_env(explicit).bootstrap_servers == "k:9092"
