from __future__ import annotations

import socket
from pathlib import Path

import pytest

from deploy.config import StackConfig
from deploy.errors import ConfigError, NotRunningError, PortInUseError, RedisMissingError
from deploy.stack import RedisServer, Stack, install_redis, port_is_free, tail
from stream.redis_config import RedisConfig, redact_url


def test_defaults_and_environment(tmp_path: Path) -> None:
    config = StackConfig.from_env({"PROGNOS_HOME": str(tmp_path)})
    assert config.state_dir == tmp_path / ".prognos" / "state"
    assert config.kafka_bootstrap == "127.0.0.1:9092"
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    custom = StackConfig.from_env(
        {
            "PROGNOS_HOME": str(tmp_path),
            "PROGNOS_KAFKA_PORT": "19092",
            "PROGNOS_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
        }
    )
    assert custom.kafka_port == 19092
    assert custom.kafka_bootstrap == "k1:9092,k2:9092"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROGNOS_REDIS_PORT", "sixty"),
        ("PROGNOS_KAFKA_PORT", "abc"),
        ("PROGNOS_KAFKA_PORT", "70000"),
        ("PROGNOS_START_TIMEOUT", "-5"),
    ],
)
def test_bad_number_setting_names_the_variable_and_the_fix(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{name}='{value}' is not .*; set it to a whole number"):
        StackConfig.from_env({"PROGNOS_HOME": str(tmp_path), name: value})


def test_redis_password_never_in_repr(tmp_path: Path) -> None:
    config = StackConfig.from_env(
        {"PROGNOS_HOME": str(tmp_path), "PROGNOS_REDIS_URL": "redis://u:hunter2@h:1/0"}
    )
    assert "hunter2" not in repr(config)
    assert redact_url(config.redis_url) == "redis://u:***@h:1/0"


def test_external_services_are_not_started(tmp_path: Path) -> None:
    config = StackConfig.from_env(
        {
            "PROGNOS_HOME": str(tmp_path),
            "PROGNOS_KAFKA_BOOTSTRAP": "k:9092",
            "PROGNOS_REDIS_URL": "redis://r:6379/0",
        }
    )
    assert Stack(config).services == []


def test_port_in_use_is_reported_with_the_setting(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free(port)
        config = StackConfig.from_env(
            {"PROGNOS_HOME": str(tmp_path)}, state_dir=tmp_path, redis_port=port
        )
        with pytest.raises(PortInUseError, match=f"port {port}.*PROGNOS_"):
            RedisServer(config).start()


def test_down_when_nothing_runs_says_so(tmp_path: Path) -> None:
    config = StackConfig.from_env({"PROGNOS_HOME": str(tmp_path)}, state_dir=tmp_path)
    with pytest.raises(NotRunningError, match="nothing to stop"):
        Stack(config).down()


def test_stale_pid_file_is_not_trusted(tmp_path: Path) -> None:
    """A PID file naming some other process must never lead to killing it."""
    config = StackConfig.from_env({"PROGNOS_HOME": str(tmp_path)}, state_dir=tmp_path)
    server = RedisServer(config)
    server.pid_file.parent.mkdir(parents=True)
    server.pid_file.write_text("1\n")  # PID 1 is not our redis-server
    assert server.running_pid() is None
    assert server.status().state == "stale"


def test_tail_of_missing_and_present_logs(tmp_path: Path) -> None:
    assert "no log" in tail(tmp_path / "missing.log")
    log = tmp_path / "x.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)))
    assert tail(log, 3) == "line 97\nline 98\nline 99"


def test_redis_missing_without_root_says_how_to_provide_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROGNOS_REDIS_SERVER", raising=False)
    monkeypatch.setattr("deploy.stack.shutil.which", lambda name: None)
    monkeypatch.setattr("deploy.stack.Path.is_file", lambda self: False)
    monkeypatch.setattr("deploy.stack.os.geteuid", lambda: 1000)
    with pytest.raises(RedisMissingError, match="PROGNOS_REDIS_URL"):
        install_redis()


def test_a_cluster_id_starting_with_a_dash_is_one_argument(tmp_path: Path) -> None:
    from deploy.stack import storage_format_args

    args = storage_format_args("-AbC_def123", tmp_path / "server.properties")
    assert "--cluster-id=-AbC_def123" in args
    assert "-AbC_def123" not in args  # never a token of its own, where it would read as an option


def test_secure_profile_switch_is_read_strictly(tmp_path: Path) -> None:
    base = {"PROGNOS_HOME": str(tmp_path)}
    assert not StackConfig.from_env(base).secure
    assert StackConfig.from_env({**base, "PROGNOS_STACK_SECURE": "1"}).secure
    assert not StackConfig.from_env({**base, "PROGNOS_STACK_SECURE": "off"}).secure
    with pytest.raises(ConfigError, match=r"PROGNOS_STACK_SECURE='maybe': use 1 \(on\) or 0"):
        StackConfig.from_env({**base, "PROGNOS_STACK_SECURE": "maybe"})


def test_secure_profile_files_and_client_settings(tmp_path: Path) -> None:
    from deploy.secure import ensure_secrets, redis_acl_lines

    config = StackConfig.from_env({"PROGNOS_HOME": str(tmp_path), "PROGNOS_STACK_SECURE": "1"})
    files = ensure_secrets(config.secure_dir)
    password = files.read(files.redis_app_password)
    assert len(password) >= 32 and files.read(files.kafka_app_password) != password
    assert ensure_secrets(config.secure_dir).read(files.redis_app_password) == password  # kept
    url = config.redis_url
    assert url.startswith("rediss://prognos:") and "ssl_ca_certs=" in url
    assert password not in redact_url(url)
    acl = redis_acl_lines(files)
    assert "user default off" in acl and "~prognos:* &prognos:*" in acl and "-@dangerous" in acl


def test_java_argument_file_keeps_each_argument_whole() -> None:
    from deploy.stack import _quote_arg

    assert _quote_arg('--add-scram=SCRAM-SHA-512=[name=a,password=p"q\\r]') == (
        '"--add-scram=SCRAM-SHA-512=[name=a,password=p\\"q\\\\r]"'
    )


def test_client_settings_name_files_not_secrets(tmp_path: Path) -> None:
    from deploy.secure import ensure_secrets

    config = StackConfig.from_env({"PROGNOS_HOME": str(tmp_path), "PROGNOS_STACK_SECURE": "1"})
    files = ensure_secrets(config.secure_dir)
    env = config.client_env()
    assert env["PROGNOS_STACK_SECURE"] == "1"
    assert env["PROGNOS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["PROGNOS_KAFKA_SASL_PASSWORD_FILE"] == str(files.kafka_app_password)
    secrets = [files.read(p) for p in (files.kafka_app_password, files.redis_app_password)]
    assert not any(s in v for v in env.values() for s in secrets)
    # The same settings read back give the same stack (and Redis's password from its file).
    again = StackConfig.from_env({"PROGNOS_HOME": str(tmp_path), **env})
    assert again.redis_url == config.redis_url and secrets[1] in again.redis_url
    # A client reading only these variables reaches the same Redis, as the same user.
    assert RedisConfig.from_env(env).url == config.redis_url
    plain = StackConfig.from_env({"PROGNOS_HOME": str(tmp_path)}).client_env()
    assert "PROGNOS_STACK_SECURE" not in plain and "PROGNOS_KAFKA_SECURITY_PROTOCOL" not in plain


@pytest.mark.parametrize(
    ("name", "value", "command"),
    [
        ("PROGNOS_KAFKA_PORT", "abc", ["status"]),
        ("PROGNOS_SHUFFLE_PARTITIONS", "x", ["stream", "--available-now"]),
        ("PROGNOS_REDIS_PORT", "6379x", ["alerts", "tail", "--timeout", "1"]),
        ("PROGNOS_TOPIC_PARTITIONS", "0", ["replay", "missing.csv"]),
    ],
)
def test_a_bad_environment_variable_is_one_line_naming_it_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    command: list[str],
) -> None:
    from deploy.cli import main

    monkeypatch.setenv(name, value)
    assert main(command) == 1
    err = capsys.readouterr().err
    assert f"{name}=" in err and value in err and "Traceback" not in err
    assert err.count("\n") == 1, err


def test_the_redis_fsync_setting_is_checked_and_reaches_the_config_file(tmp_path: Path) -> None:
    base = {"PROGNOS_HOME": str(tmp_path)}
    assert StackConfig.from_env(base).redis_fsync == "everysec"
    with pytest.raises(ConfigError, match=r"PROGNOS_REDIS_FSYNC='sometimes': use everysec"):
        StackConfig.from_env({**base, "PROGNOS_REDIS_FSYNC": "sometimes"})
    durable = StackConfig.from_env({**base, "PROGNOS_REDIS_FSYNC": "ALWAYS"})
    server = RedisServer(durable)
    server.dir.mkdir(parents=True)
    server.prepare()
    assert "appendfsync always" in server.conf_file.read_text()
