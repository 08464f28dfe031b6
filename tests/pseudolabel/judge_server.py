"""A real OpenAI-compatible chat-completions server for tests (FastAPI + uvicorn on an ephemeral
127.0.0.1 port). It decodes the base64 WAV clips it receives and judges them by their content:
musicality = the clip with the lower spectral flatness (a clean tone beats a noisy one),
alignment = the clip whose dominant pitch is closer to the "<N> Hz" named in the text.

Behaviour switches, by a marker in the instruction text:
  [biased]    always answers "A" (position-biased judge)
  [malformed] answers free text instead of JSON
  [slow]      the first attempt of each request sleeps SLOW_S (longer than the client timeout)
  [flaky]     the first two attempts of each request get HTTP 503
  [dead]      always HTTP 500
  [bad]       HTTP 400 (a request error: must not be retried)
Every request needs "Authorization: Bearer <key>" (401 otherwise).
"""


import asyncio
import base64
import hashlib
import io
import json
import re
from collections import Counter

import numpy as np
import soundfile as sf

from annotate.asgi_server import serve  # noqa: F401  (one implementation for every test server)

SLOW_S = 1.5


def _features(b64: str) -> tuple[float, float]:
    wave, sr = sf.read(io.BytesIO(base64.b64decode(b64)), dtype="float32")
    spec = np.abs(np.fft.rfft(wave)) ** 2 + 1e-12
    flatness = float(np.exp(np.mean(np.log(spec))) / np.mean(spec))
    freqs = np.fft.rfftfreq(len(wave), 1 / sr)
    return flatness, float(freqs[np.argmax(spec)])


def make_app(api_key: str, delay_s: float = 0.0):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()
    app.state.attempts = Counter()  # request-body hash -> attempts
    app.state.markers = Counter()  # marker -> requests
    app.state.requests = 0

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        app.state.requests += 1
        if request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        raw = await request.body()
        body = json.loads(raw)
        digest = hashlib.sha256(raw).hexdigest()
        app.state.attempts[digest] += 1
        attempt = app.state.attempts[digest]
        parts = body["messages"][-1]["content"]
        text = parts[0]["text"]
        audios = [p["input_audio"]["data"] for p in parts if p.get("type") == "input_audio"]
        marker = (re.search(r"\[(\w+)\]", text) or [None, "honest"])[1]
        app.state.markers[marker] += 1
        if delay_s:
            await asyncio.sleep(delay_s)
        if marker == "dead":
            return JSONResponse({"error": {"message": "internal error"}}, status_code=500)
        if marker == "bad":
            return JSONResponse({"error": {"message": "audio too long"}}, status_code=400)
        if marker == "flaky" and attempt <= 2:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        if marker == "slow" and attempt == 1:
            await asyncio.sleep(SLOW_S)
        if marker == "malformed":
            content = "I think the first clip is nicer overall."
        elif marker == "biased":
            content = json.dumps({"musicality": "A", "alignment": "A", "confidence": 5, "reason": "first is best"})
        else:
            (flat_a, pitch_a), (flat_b, pitch_b) = _features(audios[-2]), _features(audios[-1])
            target = float(re.search(r"(\d+) Hz", text).group(1))
            content = json.dumps({
                "musicality": "A" if flat_a < flat_b else "B",
                "alignment": "A" if abs(pitch_a - target) < abs(pitch_b - target) else "B",
                "confidence": 4,
                "reason": "cleaner tone",
            })
        return {"id": "cmpl-test", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}

    return app
