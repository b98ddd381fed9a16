"""Signing in and out: the key is checked by the API and kept in the tab's session only."""

from __future__ import annotations

import httpx

from tests._server import ServerProcess
from tests.console.conftest import Console


def test_the_root_leads_to_the_console_and_its_sign_in(console: Console,
                                                       server: ServerProcess) -> None:
    assert httpx.get(server.url + "/").headers["location"] == "/console"
    console.open("/")
    assert console.driver.current_url.startswith(server.url + "/console")
    console.shown("#api-key")
    assert not console.find("#nav").is_displayed()
    console.shot("sign-in")


def test_a_wrong_key_is_refused_with_a_clear_message(console: Console) -> None:
    console.open("/console")
    console.type("#api-key", "sk-stratus-not-a-key-of-this-server")
    console.find("#sign-in").click()
    message = console.text_of("#sign-in-error", bool, "the refusal")
    assert message.startswith("This key was refused: invalid API key"), message
    assert not console.find("#nav").is_displayed()
    assert console.stored_key() is None
    console.shot("sign-in-refused")


def test_signing_in_keeps_the_key_in_the_session_only(console: Console,
                                                      user_key: str) -> None:
    console.sign_in(user_key)
    assert console.stored_key() == user_key
    storage = console.driver.execute_script(
        "return [window.localStorage.length, document.cookie];")
    assert storage == [0, ""]
    who = console.find("#who").text
    assert who.startswith("console-") and who.endswith("unlimited credits"), who
    console.find("#sign-out").click()
    console.shown("#api-key")
    assert console.stored_key() is None
    # a reload with the key still in the session stays signed in
    console.sign_in(user_key)
    console.driver.refresh()
    console.shown("#run")
    assert console.find("#nav").is_displayed()
