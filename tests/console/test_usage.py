"""The usage page: spend and tokens per day and per model, drawn as charts."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests._server import ServerProcess
from tests.conftest import user
from tests.console.conftest import Console, usd


def test_usage_charts_spend_and_tokens_per_model(console: Console, user_key: str,
                                                 server: ServerProcess) -> None:
    with server.client(user_key) as client:
        for model, text in (("echo-priced", "one two three"), ("echo", "four five"),
                            ("echo-priced", "six")):
            assert client.post(f"/v1/{model}", json=user(text)).status_code == 200
        report = client.get("/v1/usage", params={"days": 30}).json()
    assert [m["model"] for m in report["models"]] == ["echo", "echo-priced"]
    console.sign_in(user_key)
    console.go("usage")
    console.shown("#usage-spend svg")
    assert console.find("#usage-requests").text == "3"
    assert console.find("#usage-spend-total").text == usd(report["total"]["cost"])
    today = report["daily"][-1]["date"]
    for chart in ("#usage-spend", "#usage-tokens"):
        bars = console.all(f"{chart} svg rect[data-date='{today}']")
        assert {bar.get_attribute("data-model") for bar in bars} == {"echo", "echo-priced"}
        assert len(console.all(f"{chart} svg rect")) == 2  # no other day had requests
        legend = console.find(f"{chart} .legend").text.split("\n")
        assert legend == ["echo", "echo-priced"]
    # the priced model's bar is the taller one on the spend chart
    heights = {bar.get_attribute("data-model"): float(bar.get_attribute("height"))
               for bar in console.all(f"#usage-spend svg rect[data-date='{today}']")}
    assert heights["echo-priced"] > heights["echo"]
    rows = {row.get_attribute("data-model"): [c.text for c in row.find_elements(By.TAG_NAME,
                                                                                 "td")]
            for row in console.all("#usage-models tbody tr")}
    priced = next(m for m in report["models"] if m["model"] == "echo-priced")
    assert rows["echo-priced"] == ["echo-priced", "2", "0", str(priced["input_tokens"]),
                                   str(priced["output_tokens"]), usd(priced["cost"])]
    console.shot("usage")
