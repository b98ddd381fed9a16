"""The playground streams an answer from the echo engine; the request then shows in the
history, with its input, output, metrics and webhook attempts."""

from __future__ import annotations

import re

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests._server import ServerProcess
from tests.api.test_webhooks import Receiver
from tests.conftest import eventually
from tests.console.conftest import Console, usd

DURATION = re.compile(r"^\d+ ms$|^\d+\.\d\d s$")


def run_prompt(console: Console, model: str, text: str, *, system: str = "",
               max_tokens: int = 256) -> str:
    """Fill in the playground, run it, wait for the end; returns the request id."""
    console.choose("#model", model)
    console.type("#system", system)
    console.type("#turns .content", text)
    console.type("#max-tokens", str(max_tokens))
    console.find("#run").click()
    console.text_of("#run-state", lambda t: t in ("Done", "Failed"), "the end of the run")
    assert console.find("#run-state").text == "Done", console.find("#run-error").text
    return console.text_of("#stat-request", lambda t: t != "—", "the request id")


def test_an_answer_streams_in_with_tokens_cost_and_ttft(console: Console, user_key: str,
                                                        server: ServerProcess) -> None:
    console.sign_in(user_key)
    prompt = ("The echo engine answers with the words of the last message, one token at a "
              "time, so this sentence streams into the page word by word while the console "
              "measures the time to its first token.")
    console.choose("#model", "echo-slow")  # 100 ms a token: the answer takes 3.5 s
    console.type("#system", "Repeat after me.")
    console.type("#turns .content", prompt)
    console.type("#temperature", "0.5")
    console.find("#run").click()
    partial = console.text_of(
        "#output", lambda t: t != "" and len(t) < len(prompt)
        and console.find("#run-state").text == "Streaming…", "part of the answer, streaming")
    assert prompt.startswith(partial)
    assert console.find("#stat-ttft").text != "—"  # known from the first token
    console.text_of("#run-state", lambda t: t == "Done", "the end of the answer")
    assert console.find("#output").text == prompt
    cost = console.text_of("#stat-cost", lambda t: t != "—", "the cost")
    request_id = console.find("#stat-request").text
    with server.client(user_key) as client:
        entry = client.get(f"/v1/requests/{request_id}").json()
    assert entry["status"] == "COMPLETED" and entry["model"] == "echo-slow"
    assert entry["credits_deduction"] > 0 and cost == usd(entry["credits_deduction"])
    assert console.find("#stat-input").text == str(entry["input_tokens"])
    assert console.find("#stat-output").text == str(entry["output_tokens"])
    assert entry["output_tokens"] == len(prompt.split())  # the echo engine: a word a token
    assert DURATION.match(console.find("#stat-ttft").text), console.find("#stat-ttft").text
    assert DURATION.match(console.find("#stat-total").text)
    assert console.find("#stat-stop").text == "end_turn"
    console.shot("playground")

    console.find("#copy-curl").click()
    curl = console.text_of("#snippet pre", lambda t: "curl" in t, "the curl snippet")
    assert f"{server.url}/v1/messages" in curl and '"model": "echo-slow"' in curl
    assert '"temperature": 0.5' in curl and '"stream": true' in curl
    assert "$STRATUS_API_KEY" in curl and user_key not in curl
    console.find("#copy-python").click()
    python = console.text_of("#snippet pre", lambda t: "anthropic" in t, "the Python snippet")
    assert f'base_url="{server.url}"' in python and 'model="echo-slow"' in python
    assert 'system="Repeat after me."' in python and "temperature=0.5" in python
    assert 'os.environ["STRATUS_API_KEY"]' in python and user_key not in python


def test_a_refused_request_says_why(console: Console, user_key: str) -> None:
    console.sign_in(user_key)
    console.choose("#model", "echo-small")  # 8 output tokens at most
    console.type("#max-tokens", "500")
    console.find("#turns .content").send_keys(Keys.CONTROL, Keys.ENTER)  # runs it
    console.text_of("#run-state", lambda t: t == "Failed", "the refusal")
    assert "max_tokens" in console.find("#run-error").text


def test_the_request_shows_in_history_with_input_output_and_webhook(
        console: Console, user_key: str, server: ServerProcess) -> None:
    receiver = Receiver([500])  # the first delivery fails, the retry is accepted
    try:
        with server.client(user_key) as client:
            assert client.put("/v1/account/webhook",
                              json={"url": receiver.url}).status_code == 200
            console.sign_in(user_key)
            request_id = run_prompt(console, "echo", "the rain in spain",
                                    system="You are terse.")
            assert eventually(lambda: client.get(f"/v1/requests/{request_id}/webhook")
                              .json()["status"] == "delivered")
            entry = client.get(f"/v1/requests/{request_id}").json()
    finally:
        receiver.close()

    console.go("history")
    row = console.shown(f"#history-table tr[data-request-id='{request_id}']")
    cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1:4] == [request_id, "echo", "COMPLETED"], cells
    assert cells[4:7] == [str(entry["input_tokens"]), "4",
                          usd(entry["credits_deduction"])], cells
    console.shot("history")

    # filters: no FAILED request here; COMPLETED and the model find it again
    console.choose("#filter-status", "FAILED")
    console.find("#apply-filters").click()
    console.text_of("#history-table tbody", lambda t: "No requests match" in t,
                    "an empty page for FAILED")
    console.choose("#filter-status", "COMPLETED")
    console.choose("#filter-model", "echo")
    console.find("#apply-filters").click()
    console.shown(f"#history-table tr[data-request-id='{request_id}']")

    console.find(f"#history-table tr[data-request-id='{request_id}'] a").click()
    console.text_of("#entry-status", lambda t: t == "COMPLETED", "the request's status")
    assert console.find("h1").text == request_id
    inputs = console.text_of("#request-input", lambda t: "the rain" in t, "the input")
    assert "You are terse." in inputs and "the rain in spain" in inputs
    assert re.search(r"max_tokens\s+256", inputs), inputs
    output = console.find("#request-output").text
    assert "the rain in spain" in output and "end_turn" in output
    attempts = console.shown("#webhook-attempts")
    statuses = [row.find_elements(By.TAG_NAME, "td")[2].text
                for row in attempts.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert statuses == ["500", "200"]
    assert "delivered" in console.find("#request-webhook").text
    console.shot("request")
