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
