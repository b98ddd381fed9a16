"""The ``stratus`` command line, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def stratus(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stratus", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})}, check=False)


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    data = str(tmp_path)
    created = stratus("keys", "create", "--account", "team-a", "--name", "laptop",
                      "--data-dir", data)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("sk-stratus-") and "shown only once" in created.stderr
    listing = stratus("keys", "list", "--data-dir", data)
    assert "team-a" in listing.stdout and "laptop" in listing.stdout
    assert secret not in listing.stdout and "active" in listing.stdout
    key_id = listing.stdout.splitlines()[1].split()[0]
    revoked = stratus("keys", "revoke", key_id, "--data-dir", data)
    assert revoked.returncode == 0 and key_id in revoked.stdout
    assert "revoked" in stratus("keys", "list", "--data-dir", data).stdout
    missing = stratus("keys", "revoke", "key_nope", "--data-dir", data)
    assert missing.returncode == 2 and "no API key with id" in missing.stderr


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[server]\nprot = 1\n")
    done = stratus("serve", "--config", str(config), "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert "server.prot" in done.stderr and "Traceback" not in done.stderr


def test_first_start_prints_a_key_that_works_and_only_once(make_server) -> None:
    import re

    import httpx

    server = make_server(env={"STRATUS_BOOTSTRAP_KEY": ""})
    log = server.log()
    secret = re.search(r"^\s+(sk-stratus-\S+)$", log, re.MULTILINE).group(1)
    assert f"curl -s http://127.0.0.1:{server.port}/v1/claude-3-haiku" in log
    assert f"x-api-key: {secret}" in log
    response = httpx.post(server.url + "/v1/claude-3-haiku", headers={"x-api-key": secret},
                          json={"messages": [{"role": "user", "content": "hello"}]})
    assert response.status_code == 200
    server.kill()
    make_server(data_dir=server.data_dir, env={"STRATUS_BOOTSTRAP_KEY": ""})
    assert server.log().count("sk-stratus-") == log.count("sk-stratus-")


def test_keys_with_scope_limits_and_credits(tmp_path: Path) -> None:
    data = str(tmp_path)
    created = stratus("keys", "create", "--account", "team-b", "--models", "claude-3-haiku",
                      "--rpm", "30", "--tpm", "5000", "--credits", "2.5", "--data-dir", data)
    assert created.returncode == 0, created.stderr
    admin = stratus("keys", "create", "--account", "ops", "--admin", "--data-dir", data)
    assert admin.returncode == 0, admin.stderr
    listing = stratus("keys", "list", "--data-dir", data).stdout
    assert "models=claude-3-haiku rpm=30 tpm=5000" in listing
    assert "admin" in listing.splitlines()[2]
    unknown = stratus("keys", "create", "--models", "gpt-9", "--data-dir", data)
    assert unknown.returncode == 2 and "unknown model 'gpt-9'" in unknown.stderr


def test_credits_add_set_show(tmp_path: Path) -> None:
    data = str(tmp_path)
    stratus("keys", "create", "--account", "team-c", "--credits", "1", "--data-dir", data)
    added = stratus("credits", "add", "team-c", "4.5", "--note", "invoice 7", "--data-dir", data)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "team-c: $5.500000 (reserved $0.000000)"
    taken = stratus("credits", "add", "team-c", "-10", "--data-dir", data)
    assert taken.returncode == 2 and "below zero" in taken.stderr
    unlimited = stratus("credits", "set", "team-c", "unlimited", "--data-dir", data)
    assert "team-c: unlimited" in unlimited.stdout
    refused = stratus("credits", "add", "team-c", "1", "--data-dir", data)
    assert refused.returncode == 2 and "unlimited credits" in refused.stderr
    assert stratus("credits", "set", "team-c", "3", "--data-dir", data).returncode == 0
    shown = stratus("credits", "show", "--data-dir", data).stdout
    assert "team-c: $3.000000" in shown
    bad = stratus("credits", "set", "team-c", "lots", "--data-dir", data)
    assert bad.returncode == 2 and "not an amount" in bad.stderr
    missing = stratus("credits", "show", "nobody", "--data-dir", data)
    assert missing.returncode == 2 and "no account 'nobody'" in missing.stderr


def test_credit_amounts_that_cannot_be_counted_are_refused(tmp_path: Path) -> None:
    data = str(tmp_path)
    stratus("keys", "create", "--account", "team-d", "--credits", "1", "--data-dir", data)
    for amount in ("nan", "inf", "1e20"):
        for args in (("credits", "add", "team-d", amount), ("credits", "set", "team-d", amount),
                     ("keys", "create", "--account", "team-e", "--credits", amount)):
            done = stratus(*args, "--data-dir", data)
            assert done.returncode == 2, (args, done.stderr)
            assert "Traceback" not in done.stderr and "USD" in done.stderr
    stratus("credits", "set", "team-d", "1000000000", "--data-dir", data)
    over = stratus("credits", "add", "team-d", "1", "--data-dir", data)
    assert over.returncode == 2 and "largest balance" in over.stderr
    assert "$1000000000.000000" in stratus("credits", "show", "team-d", "--data-dir", data).stdout


def test_credits_added_by_the_cli_reach_the_running_server(make_server) -> None:
    import httpx

    server = make_server()
    secret = stratus("keys", "create", "--account", "live", "--credits", "0",
                     "--data-dir", str(server.data_dir)).stdout.strip()
    with httpx.Client(base_url=server.url, headers={"x-api-key": secret}) as client:
        body = {"messages": [{"role": "user", "content": "a b"}]}
        assert client.post("/v1/echo-priced", json=body).status_code == 406
        assert stratus("credits", "add", "live", "1", "--data-dir",
                       str(server.data_dir)).returncode == 0
        assert client.post("/v1/echo-priced", json=body).status_code == 200
        assert client.get("/v1/account").json()["credits"]["balance"] < 1.0


def test_the_cli_and_the_server_share_the_configured_database(make_server,
                                                              tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared/accounts.db"
    env = {"STRATUS_DATABASE_URL": url}
    server = make_server(env=env)
    assert (tmp_path / "shared" / "accounts.db").is_file()
    assert not (server.data_dir / "stratus.db").exists()
    secret = stratus("keys", "create", "--account", "via-url", "--data-dir",
                     str(tmp_path / "elsewhere"), env=env).stdout.strip()
    with server.client(secret) as client:
        assert client.get("/v1/account").json()["name"] == "via-url"


def test_keys_and_credits_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    env = {"STRATUS_DATABASE_URL": postgres_url}
    created = stratus("keys", "create", "--account", "pg-team", "--credits", "2.5",
                      "--data-dir", str(tmp_path), env=env)
    assert created.returncode == 0, created.stderr
    listing = stratus("keys", "list", env=env)
    assert "pg-team" in listing.stdout
    added = stratus("credits", "add", "pg-team", "1.25", env=env)
    assert added.returncode == 0, added.stderr
    assert "pg-team: $3.750000" in stratus("credits", "show", "pg-team", env=env).stdout
    assert not (tmp_path / "stratus.db").exists()  # nothing went to SQLite


def test_the_roles_need_a_shared_database(tmp_path: Path) -> None:
    for role in ("api", "worker"):
        done = stratus(role, "--data-dir", str(tmp_path))
        assert done.returncode == 2
        assert "postgresql://" in done.stderr and "Traceback" not in done.stderr
