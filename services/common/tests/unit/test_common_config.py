"""mend_common.config.load_settings: safe defaults, environment overrides, clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from mend_common.config import ConfigError, load_settings, var_dir


@pytest.fixture
def env(tmp_path):
    return {"MEND_VAR_DIR": str(tmp_path)}


def test_defaults_for_referrals(env, tmp_path):
    s = load_settings("referrals", env)
    assert s.service == "referrals" and s.schema == "referrals"
    assert (s.grpc_port, s.http_port, s.worker_http_port) == (50051, 8081, 9101)
    assert s.amqp_uri == "amqp://guest:guest@127.0.0.1:5672/"
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'referrals.db'}"
    assert s.bind_host == "127.0.0.1"
    assert s.token_public_key_file == tmp_path.resolve() / "token-signing.pub.pem"
    assert s.token_private_key_file == tmp_path.resolve() / "token-signing.pem"
    assert s.token_issuer == "mend-local"
    assert s.max_delivery_attempts == 5 and s.retry_delay_ms == 1000
    assert s.relay_enabled is True
    assert s.api_key_cache_seconds == 10.0 and isinstance(s.api_key_cache_seconds, float)
    assert s.amqp_timeout_seconds == 10.0
    assert s.log_level == "INFO"


def test_defaults_for_cases_and_for_an_unknown_service(env, tmp_path):
    cases = load_settings("cases", env)
    assert (cases.grpc_port, cases.http_port, cases.worker_http_port) == (50052, 8082, 9102)
    assert cases.database_url.endswith("/cases.db")
    risk = load_settings("risk", env)
    assert (risk.grpc_port, risk.http_port, risk.worker_http_port) == (50053, 8083, 9103)
    other = load_settings("something-new", env)
    assert (other.grpc_port, other.http_port, other.worker_http_port) == (50050, 8080, 9100)


def test_var_dir_defaults_to_var_under_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert var_dir({}) == (tmp_path / "var").resolve()
    assert load_settings("cases", {}).database_url == f"sqlite:///{(tmp_path / 'var' / 'cases.db').resolve()}"


def test_environment_overrides(env):
    env.update({
        "MEND_AMQP_URI": "amqp://u:p@rabbit:5672/mend",
        "MEND_DATABASE_URL": "postgresql://mend@db/mend",
        "MEND_GRPC_PORT": "6000", "MEND_HTTP_PORT": "6001", "MEND_WORKER_HTTP_PORT": "6002",
        "MEND_BIND_HOST": "0.0.0.0",
        "MEND_TOKEN_PUBLIC_KEY_FILE": "/keys/pub.pem", "MEND_TOKEN_PRIVATE_KEY_FILE": "/keys/priv.pem",
        "MEND_TOKEN_ISSUER": "https://idp.example",
        "MEND_MAX_DELIVERY_ATTEMPTS": "3", "MEND_RETRY_DELAY_MS": "0",
        "MEND_RELAY_ENABLED": "false", "MEND_GRPC_THREADS": "4", "MEND_WORKER_CONCURRENCY": "2",
        "MEND_DB_POOL_SIZE": "7", "MEND_API_KEY_CACHE_SECONDS": "0", "MEND_AMQP_TIMEOUT_SECONDS": "30",
        "MEND_LOG_LEVEL": "debug",
    })
    s = load_settings("referrals", env)
    assert s.amqp_uri == "amqp://u:p@rabbit:5672/mend"
    assert s.database_url == "postgresql://mend@db/mend"
    assert (s.grpc_port, s.http_port, s.worker_http_port) == (6000, 6001, 6002)
    assert s.bind_host == "0.0.0.0"
    assert s.token_public_key_file == Path("/keys/pub.pem") and s.token_private_key_file == Path("/keys/priv.pem")
    assert s.token_issuer == "https://idp.example"
    assert (s.max_delivery_attempts, s.retry_delay_ms) == (3, 0)
    assert s.relay_enabled is False
    assert (s.grpc_threads, s.worker_max_concurrency, s.db_pool_size) == (4, 2, 7)
    assert s.api_key_cache_seconds == 0.0 and s.amqp_timeout_seconds == 30.0
    assert s.log_level == "DEBUG"


def test_a_service_database_url_overrides_the_shared_one(env):
    env.update({"MEND_DATABASE_URL": "postgresql://db/shared", "MEND_REFERRALS_DATABASE_URL": "postgresql://db/ref"})
    assert load_settings("referrals", env).database_url == "postgresql://db/ref"
    assert load_settings("cases", env).database_url == "postgresql://db/shared"


def test_empty_values_mean_the_default(env):
    env.update({"MEND_GRPC_PORT": "", "MEND_RELAY_ENABLED": "", "MEND_DATABASE_URL": ""})
    s = load_settings("referrals", env)
    assert s.grpc_port == 50051 and s.relay_enabled is True and s.database_url.startswith("sqlite:///")


@pytest.mark.parametrize("raw, expected", [("1", True), ("TRUE", True), ("yes", True), ("On", True),
                                           ("0", False), ("False", False), ("no", False), ("OFF", False)])
def test_boolean_spellings(env, raw, expected):
    env["MEND_RELAY_ENABLED"] = raw
    assert load_settings("referrals", env).relay_enabled is expected


@pytest.mark.parametrize("name, raw", [
    ("MEND_GRPC_PORT", "abc"), ("MEND_GRPC_PORT", "50051.0"), ("MEND_HTTP_PORT", "8o81"),
    ("MEND_WORKER_HTTP_PORT", "0x10"), ("MEND_MAX_DELIVERY_ATTEMPTS", "five"), ("MEND_RETRY_DELAY_MS", "1s"),
    ("MEND_DB_POOL_SIZE", "ten"), ("MEND_API_KEY_CACHE_SECONDS", "1.5"),
])
def test_a_malformed_number_names_the_variable(env, name, raw):
    env[name] = raw
    with pytest.raises(ConfigError) as info:
        load_settings("referrals", env)
    assert name in str(info.value) and "whole number" in str(info.value) and repr(raw) in str(info.value)


@pytest.mark.parametrize("name, raw", [
    ("MEND_GRPC_PORT", "0"), ("MEND_GRPC_PORT", "65536"), ("MEND_HTTP_PORT", "-1"),
    ("MEND_MAX_DELIVERY_ATTEMPTS", "0"), ("MEND_MAX_DELIVERY_ATTEMPTS", "101"), ("MEND_RETRY_DELAY_MS", "-5"),
    ("MEND_GRPC_THREADS", "0"), ("MEND_AMQP_TIMEOUT_SECONDS", "0"),
])
def test_a_number_out_of_range_names_the_variable(env, name, raw):
    env[name] = raw
    with pytest.raises(ConfigError) as info:
        load_settings("referrals", env)
    assert name in str(info.value) and "between" in str(info.value)


def test_range_limits_are_inclusive(env):
    env.update({"MEND_GRPC_PORT": "1", "MEND_HTTP_PORT": "65535", "MEND_MAX_DELIVERY_ATTEMPTS": "100"})
    s = load_settings("referrals", env)
    assert (s.grpc_port, s.http_port, s.max_delivery_attempts) == (1, 65535, 100)


def test_a_malformed_boolean_names_the_variable(env):
    env["MEND_RELAY_ENABLED"] = "maybe"
    with pytest.raises(ConfigError, match="MEND_RELAY_ENABLED must be true or false, got 'maybe'"):
        load_settings("referrals", env)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
