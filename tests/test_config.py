from __future__ import annotations

from pathlib import Path

import pytest

from stratus.config import ConfigError, ModelConfig, load_config


def test_builtin_default_needs_no_file() -> None:
    config = load_config(None, env={})
    assert config.server.port == 8000 and config.server.result_ttl == 3600
    assert config.models[0].aliases == ("claude-3-haiku",)
    assert (config.models[0].price_input, config.models[0].price_output) == (0.25, 1.25)


def test_file_then_env_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = 9000\nresult_ttl = 10\nsync_timeout = 5\n'
                    '[[models]]\nslug = "a"\n[models.options]\ndelay_ms = 3\n')
    config = load_config(path, env={"STRATUS_RESULT_TTL": "20", "STRATUS_PORT": "9100"},
                         overrides={"port": 9200, "host": None})
    assert config.server.port == 9200
    assert config.server.result_ttl == 20
    assert config.server.sync_timeout == 5
    assert config.models[0].options == {"delay_ms": 3}


@pytest.mark.parametrize(("text", "needle"), [
    ("[server]\nprot = 1\n", "server.prot"),
    ("[server]\nport = 'x'\n", "server.port"),
    ("[[models]]\nslug = 'a'\nengine = 'gpt'\n", "models.0.engine"),
    ("[[models]]\nslug = 'a'\n[models.options]\ndelay = 3\n", "models.0.options"),
    ("[[models]]\nslug = 'a'\nengine = 'llamacpp'\nweights = 'w.gguf'\n[models.options]\n"
     "chat_format = 'chatml'\n", "chat_format"),
    ("[[models]]\nslug = 'a'\n[[models]]\nslug = 'a'\n", "used twice"),
    ("[[models]]\nslug = 'a'\ndefault_max_tokens = 99\nmax_output_tokens = 10\n",
     "default_max_tokens"),
    ("not toml [", "not valid TOML"),
])
def test_bad_config_says_which_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(path, env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


def test_redis_url_from_file_or_environment(tmp_path: Path) -> None:
    assert load_config(None, env={}).redis.url is None
    path = tmp_path / "c.toml"
    path.write_text('[redis]\nurl = "redis://10.0.0.5:6379/0"\napi_nodes = 3\n')
    config = load_config(path, env={})
    assert (config.redis.url, config.redis.api_nodes) == ("redis://10.0.0.5:6379/0", 3)
    env = load_config(path, env={"STRATUS_REDIS_URL": "redis://127.0.0.1:7000/1"})
    assert env.redis.url == "redis://127.0.0.1:7000/1" and env.redis.api_nodes == 3
    path.write_text('[redis]\nurl = "http://x"\n')
    with pytest.raises(ConfigError, match=r"redis\.url"):
        load_config(path, env={})


def test_database_url_defaults_to_the_data_dir(tmp_path: Path) -> None:
    from stratus.backends import database_url

    config = load_config(None, env={}, overrides={"data_dir": tmp_path})
    assert database_url(config) == f"sqlite:///{tmp_path}/stratus.db"
    env = load_config(None, env={"STRATUS_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert database_url(env) == f"sqlite:///{tmp_path}/x.db"
    path = tmp_path / "c.toml"
    path.write_text('[database]\nurl = "mysql://db/stratus"\n')
    with pytest.raises(ConfigError, match=r"database\.url"):
        load_config(path, env={})


def test_cached_input_tokens_are_priced_as_configured() -> None:
    full = ModelConfig(slug="m", price_input=1.0, price_output=2.0)
    assert full.cost_usd(1000, 10, cached_input=800) == full.cost_usd(1000, 10)
    tenth = ModelConfig(slug="m", price_input=1.0, price_output=2.0, price_cached_input=0.1)
    assert tenth.cost_usd(1000, 10, cached_input=800) == pytest.approx(
        (200 * 1.0 + 800 * 0.1 + 10 * 2.0) / 1e6)


def test_packaged_models_sample_as_their_authors_advise() -> None:
    qwen, gemma = load_config(None, env={}).models
    assert qwen.sampling.model_dump() == {"temperature": 0.7, "top_p": 0.8, "top_k": 20,
                                          "min_p": 0.0, "repeat_penalty": 1.05}
    assert (gemma.sampling.temperature, gemma.sampling.top_k) == (1.0, 64)
