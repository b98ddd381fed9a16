"""An OpenAI-compatible upstream that answers at once: every chat completion streams the same
few words, a usage chunk and ``[DONE]`` (or, not streamed, the whole completion). What a
gateway in front of it adds is all that a benchmark against it measures.

    python bench/_instant_upstream.py PORT
"""

from __future__ import annotations

import json
import sys
import time

import uvicorn

WORDS = ["The", " answer", " is", " forty", "-two", "."]


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    data: dict = {"id": "chatcmpl-instant", "object": "chat.completion.chunk",
                  "created": int(time.time()), "model": "instant",
                  "choices": [] if usage else [{"index": 0, "delta": delta,
                                                "finish_reason": finish}]}
    if usage:
        data["usage"] = usage
    return b"data: " + json.dumps(data).encode() + b"\n\n"


USAGE = {"prompt_tokens": 12, "completion_tokens": len(WORDS), "total_tokens": 12 + len(WORDS)}
STREAM = b"".join([_chunk({"role": "assistant", "content": ""}),
                   *(_chunk({"content": w}) for w in WORDS), _chunk({}, "stop"),
                   _chunk({}, usage=USAGE), b"data: [DONE]\n\n"])
WHOLE = json.dumps({"id": "chatcmpl-instant", "object": "chat.completion", "created": 0,
                    "model": "instant", "usage": USAGE,
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": "".join(WORDS)}}]}).encode()
MODELS = json.dumps({"object": "list", "data": [{"id": "instant", "object": "model",
                                                 "created": 0, "owned_by": "bench"}]}).encode()


async def app(scope: dict, receive, send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"].endswith("/models"):
        content, kind = MODELS, b"application/json"
    elif json.loads(body or b"{}").get("stream"):
        content, kind = STREAM, b"text/event-stream"
    else:
        content, kind = WHOLE, b"application/json"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", kind),
                            (b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": content})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, http="httptools", loop="uvloop")
