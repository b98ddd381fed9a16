"""The admin pages: keys created (their secret shown once) and revoked, accounts' credits and
ledger; a key that is not an admin's does not see them."""

from __future__ import annotations

import time

import httpx
from selenium.webdriver.common.by import By

from tests._server import ServerProcess
from tests.console.conftest import Console


def test_an_admin_creates_a_key_then_revokes_it(console: Console,
                                                server: ServerProcess) -> None:
    account = f"made-in-console-{time.monotonic_ns()}"
    console.sign_in(server.key)
    console.go("keys")
    console.type("#new-account", account)
    console.type("#new-name", "laptop")
    console.type("#new-credits", "5")
    console.type("#new-rpm", "60")
    console.choose("#new-models", "echo")
    console.find("#create-key-submit").click()
    secret = console.text_of("#new-secret", lambda t: t.startswith("sk-"), "the new secret")
    console.shot("keys-created")

    with httpx.Client(base_url=server.url, headers={"x-api-key": secret}) as made:
        me = made.get("/v1/account")
        assert me.status_code == 200, me.text
        body = me.json()
        assert body["name"] == account and body["credits"]["balance"] == 5
        assert body["key"]["models"] == ["echo"] and body["key"]["name"] == "laptop"
        assert body["key"]["rate_limits"]["requests_per_minute"] == 60
        key_id = body["key"]["id"]
        row = console.shown(f"#keys-table tr[data-key-id='{key_id}']")
        assert row.get_attribute("data-revoked") == "no"
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        assert cells[1:7] == ["laptop", body["key"]["prefix"], account, "", "echo",
                              "60 req/min"], cells
        assert cells[8] == "active"
        # the page says the secret once: a reload shows the key, never its secret
        console.driver.refresh()
        console.shown(f"#keys-table tr[data-key-id='{key_id}']")
        assert secret not in console.find("main").text

        revoke = console.shown(f"#keys-table button[data-key-id='{key_id}']")
        revoke.click()
        assert revoke.text == "Confirm revoke"
        assert made.get("/v1/account").status_code == 200  # one click is not enough
        revoke.click()
        console.wait(lambda d: d.find_element(
            By.CSS_SELECTOR, f"#keys-table tr[data-key-id='{key_id}']"
        ).get_attribute("data-revoked") == "yes", "the key as revoked")
        refused = made.get("/v1/account")
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    console.shot("keys")

    console.go("accounts")
    console.shown(f"#accounts-table tr[data-account='{account}'] a").click()
    console.text_of("#account-balance", lambda t: t == "$5.00", "the balance")
    console.type("#credit-amount", "2.5")
    console.type("#credit-note", "top-up from the console")
    console.find("#add-credits").click()
    console.text_of("#account-balance", lambda t: t == "$7.50", "the new balance")
    lines = [[c.text for c in row.find_elements(By.TAG_NAME, "td")][1:]
             for row in console.all("#ledger-table tbody tr")]
    assert lines == [["grant", "$2.50", "$7.50", "", "top-up from the console"],
                     ["set", "$5.00", "$5.00", "", "account created"]], lines
    console.shot("account")


def test_a_key_that_is_not_an_admins_does_not_see_the_admin_pages(
        console: Console, user_key: str) -> None:
    console.sign_in(user_key)
    for page in ("keys", "accounts"):
        assert not console.find(f"#nav a[data-page='{page}']").is_displayed()
        console.open(f"/console#/{page}")
        notice = console.text_of("main", lambda t: "Admin only" in t, "the admin-only notice")
        assert "needs an admin key" in notice
        assert console.all("#keys-table, #accounts-table, #create-key") == []
    console.shot("admin-only")
