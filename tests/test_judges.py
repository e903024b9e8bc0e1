"""Judges end to end against a real HTTP server on 127.0.0.1 that mimics the OpenAI and Gemini APIs.

Also the layout: the judge logic in ``metrics.speech``, the HTTP clients in ``jwbdh_callbacks.tts``, and the
old ``metrics.judges`` path re-exporting both (the clients lazily, so ``metrics`` never imports Lightning).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import pickle
import threading
import time
import wave
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import torch

from jwbdh_callbacks.tts.http_judge import _HTTPJudge
from jwbdh_callbacks.tts.judges import GeminiJudge, OpenAICompatibleJudge, RateLimiter
from metrics.speech import (
    CATEGORY_RUBRICS,
    SYSTEM_PROMPT,
    Judge,
    JudgeResponseError,
    Verdict,
    build_judge_prompt,
    decode_wav,
    encode_wav,
    parse_judge_response,
    rubric_for,
)

SECRET = "sk-test-SECRET-0123456789abcdef"


# ---------------------------------------------------------------------------------------------- test server
class MockAPI:
    """Local HTTP server; ``responder(n, request) -> (status, body, headers, delay)`` scripts each answer."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.responder: Callable[[int, dict], tuple[int, Any, dict, float]] = lambda n, r: (200, {}, {}, 0.0)
        self.stop = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                req = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": json.loads(raw),
                    "time": time.monotonic(),
                }
                api.requests.append(req)
                status, body, headers, delay = api.responder(len(api.requests) - 1, req)
                end = time.monotonic() + delay
                while time.monotonic() < end and not api.stop.is_set():
                    time.sleep(0.01)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api():
    server = MockAPI()
    yield server
    server.close()


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", SECRET)
    return "TEST_JUDGE_KEY"


def openai_reply(content: Any = None, refusal: str | None = None, finish: str = "stop") -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if refusal is not None:
        message["refusal"] = refusal
    return {"id": "x", "choices": [{"index": 0, "message": message, "finish_reason": finish}]}


def gemini_reply(text: str | None, finish: str = "STOP", thought: str | None = None) -> dict:
    parts = []
    if thought is not None:
        parts.append({"text": thought, "thought": True})
    if text is not None:
        parts.append({"text": text})
    cand: dict[str, Any] = {"finishReason": finish}
    if parts:
        cand["content"] = {"role": "model", "parts": parts}
    return {"candidates": [cand]}


ANSWER = {
    "reasoning_system_1": "Flat reading; the stutter at 1.2 s is skipped.",
    "reasoning_system_2": "Renders the groan and the stutter clearly.",
    "system_comparison": "System 2 renders more cues.",
    "score_1": 1,
    "score_2": 3,
    "winner": 2,
}


def tone(freq: float, amp: float, sr: int, seconds: float = 0.25) -> torch.Tensor:
    t = torch.arange(int(sr * seconds), dtype=torch.float32) / sr
    return amp * torch.sin(2 * math.pi * freq * t)


def rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


def fast_openai(api: MockAPI, env: str | None, **kw: Any) -> OpenAICompatibleJudge:
    opts = dict(timeout=2.0, max_attempts=3, backoff_initial=0.01, backoff_max=0.05)
    opts.update(kw)
    return OpenAICompatibleJudge(model="omni-test", base_url=f"{api.url}/v1", api_key_env=env, **opts)


def fast_gemini(api: MockAPI, env: str, **kw: Any) -> GeminiJudge:
    opts = dict(timeout=2.0, max_attempts=3, backoff_initial=0.01, backoff_max=0.05)
    opts.update(kw)
    return GeminiJudge(model="gemini-test", base_url=api.url, api_key_env=env, **opts)


# --------------------------------------------------------------------------------------------- valid paths
def test_openai_valid_verdict_and_request_body(api, secret_env):
    api.responder = lambda n, r: (200, openai_reply(json.dumps(ANSWER)), {}, 0.0)
    judge = fast_openai(api, secret_env)
    assert isinstance(judge, Judge)
    sr = 24_000
    a, b = tone(440, 0.5, sr), tone(220, 0.05, sr)  # loud first, quiet second
    verdict = judge.judge("Ugh... w-w-what NOW?", "Paralinguistics", a, b, sr)

    assert verdict.valid and verdict.winner == 2 and verdict.attempts == 1
    assert (verdict.score_a, verdict.score_b) == (1, 3)
    assert "stutter at 1.2 s" in verdict.reasoning and "System 2 renders more cues" in verdict.reasoning
    assert len(api.requests) == 1
    req = api.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == f"Bearer {SECRET}"
    body = req["body"]
    assert body["model"] == "omni-test" and body["temperature"] == 0 and body["top_p"] == 0.9
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    content = body["messages"][1]["content"]
    assert [c["type"] for c in content] == ["text", "input_audio", "text", "input_audio"]
    assert '"""Ugh... w-w-what NOW?"""' in content[0]["text"]
    assert "text_category: Paralinguistics" in content[0]["text"]
    assert CATEGORY_RUBRICS["Paralinguistics"] in content[0]["text"]  # the category's rubric is embedded
    assert CATEGORY_RUBRICS["Emotions"] not in content[0]["text"]
    assert "synthesized_speech_2" in content[2]["text"]
    # audio: 16 kHz mono 16-bit WAV, in order (audio_a first)
    decoded = []
    for part in (content[1], content[3]):
        assert part["input_audio"]["format"] == "wav"
        raw = base64.b64decode(part["input_audio"]["data"])
        with wave.open(io.BytesIO(raw)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16_000)
            assert w.getnframes() == math.ceil(a.numel() * 16_000 / sr)
        decoded.append(decode_wav(raw)[0])
    assert rms(decoded[0]) == pytest.approx(rms(a), rel=0.02)
    assert rms(decoded[1]) == pytest.approx(rms(b), rel=0.02)


def test_gemini_valid_verdict_and_request_body(api, secret_env):
    answer = dict(ANSWER, winner=0)
    api.responder = lambda n, r: (200, gemini_reply(json.dumps(answer), thought="thinking about it"), {}, 0.0)
    judge = fast_gemini(api, secret_env)
    verdict = judge.judge(
        "Send it to jo@x.org by 5 p.m.",
        "Complex Pronunciation",
        tone(300, 0.3, 16_000),
        tone(500, 0.3, 16_000),
        16_000,
    )
    assert verdict.valid and verdict.winner == 0
    assert "thinking about it" not in verdict.raw  # thought parts are not the answer
    req = api.requests[0]
    assert req["path"] == "/v1beta/models/gemini-test:generateContent"  # no key in the URL
    assert SECRET not in req["path"]
    assert req["headers"]["x-goog-api-key"] == SECRET
    body = req["body"]
    assert body["systemInstruction"]["parts"][0]["text"] == SYSTEM_PROMPT
    parts = body["contents"][0]["parts"]
    assert [next(iter(p)) for p in parts] == ["text", "inlineData", "text", "inlineData"]
    assert all(p["inlineData"]["mimeType"] == "audio/wav" for p in (parts[1], parts[3]))
    # "Complex Pronunciation" is judged with the Pronunciation rubric; the raw category string is shown
    assert CATEGORY_RUBRICS["Pronunciation"] in parts[0]["text"]
    assert "text_category: Complex Pronunciation" in parts[0]["text"]
    cfg = body["generationConfig"]
    assert cfg["temperature"] == 0 and cfg["topP"] == 0.9 and cfg["thinkingConfig"]["thinkingBudget"] == 256
    assert {s["threshold"] for s in body["safetySettings"]} == {"BLOCK_NONE"}
    wav, rate = decode_wav(base64.b64decode(parts[1]["inlineData"]["data"]))
    assert rate == 16_000 and wav.ndim == 1


# ---------------------------------------------------------------------------------------- malformed answers
def test_tolerant_parse_of_fenced_json_with_trailing_comma(api):
    text = 'Here is my judgement:\n```json\n{"reasoning_system_1": "ok", "score_1": 2, "winner": 1,}\n```'
    api.responder = lambda n, r: (200, openai_reply(text), {}, 0.0)
    verdict = fast_openai(api, None).judge(
        "Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000
    )
    assert verdict.valid and verdict.winner == 1 and verdict.score_a == 2


@pytest.mark.parametrize(
    "content",
    ["I am unable to compare these recordings.", json.dumps(dict(ANSWER, winner=3)), '{"winner": true}'],
)
def test_unparseable_or_out_of_range_answer_is_invalid_and_not_retried(api, content):
    api.responder = lambda n, r: (200, openai_reply(content), {}, 0.0)
    verdict = fast_openai(api, None).judge(
        "Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000
    )
    assert not verdict.valid and verdict.winner == -1
    assert verdict.error.startswith("unparseable answer")
    assert verdict.raw == content
    assert len(api.requests) == 1


def test_envelope_that_is_not_json_is_retried(api):
    api.responder = lambda n, r: (
        (502, b"<html>bad gateway</html>", {}, 0.0)
        if n == 0
        else (200, openai_reply(json.dumps(ANSWER)), {}, 0.0)
    )
    verdict = fast_openai(api, None).judge(
        "Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000
    )
    assert verdict.valid and verdict.attempts == 2


# --------------------------------------------------------------------------------------- HTTP errors, retry
def test_429_and_500_are_retried_with_backoff_and_retry_after(api, secret_env):
    replies = [
        (429, {"error": {"message": "rate limited"}}, {"Retry-After": "0.2"}, 0.0),
        (500, {"error": {"message": "internal"}}, {}, 0.0),
        (200, openai_reply(json.dumps(ANSWER)), {}, 0.0),
    ]
    api.responder = lambda n, r: replies[n]
    judge = fast_openai(api, secret_env, backoff_max=0.5)
    verdict = judge.judge("Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000)
    assert verdict.valid and verdict.winner == 2 and verdict.attempts == 3
    assert len(api.requests) == 3
    assert api.requests[1]["time"] - api.requests[0]["time"] >= 0.19  # Retry-After honoured
    assert judge.stats.retries == 2 and judge.stats.valid == 1


def test_persistent_500_gives_invalid_after_max_attempts(api, secret_env):
    api.responder = lambda n, r: (500, {"error": "boom"}, {}, 0.0)
    judge = fast_gemini(api, secret_env, max_attempts=3)
    verdict = judge.judge("Hi.", "Questions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000)
    assert verdict.winner == -1 and not verdict.valid
    assert "gave up after 3 attempt(s)" in verdict.error and "HTTP 500" in verdict.error
    assert len(api.requests) == 3 and verdict.attempts == 3


def test_client_error_is_not_retried(api):
    api.responder = lambda n, r: (400, {"error": {"message": "bad audio"}}, {}, 0.0)
    verdict = fast_openai(api, None).judge(
        "Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000
    )
    assert verdict.winner == -1 and "HTTP 400" in verdict.error and "bad audio" in verdict.error
    assert len(api.requests) == 1


def test_timeout_is_retried_then_invalid(api):
    api.responder = lambda n, r: (200, openai_reply(json.dumps(ANSWER)), {}, 2.0)
    judge = fast_openai(api, None, timeout=0.2, max_attempts=2)
    start = time.monotonic()
    verdict = judge.judge("Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000)
    elapsed = time.monotonic() - start
    assert verdict.winner == -1 and "timed out" in verdict.error
    assert len(api.requests) == 2
    assert elapsed < 1.5


def test_connection_refused_is_invalid_not_raised():
    judge = OpenAICompatibleJudge(
        model="m",
        base_url="http://127.0.0.1:9/v1",
        api_key_env=None,
        timeout=0.5,
        max_attempts=2,
        backoff_initial=0.01,
        backoff_max=0.01,
    )
    verdict = judge.judge("Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000)
    assert verdict.winner == -1 and "connection failed" in verdict.error


# ------------------------------------------------------------------------------------------------- refusal
def test_openai_refusal_is_invalid(api):
    api.responder = lambda n, r: (200, openai_reply(None, refusal="I can't help with that."), {}, 0.0)
    verdict = fast_openai(api, None).judge(
        "Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000
    )
    assert verdict.winner == -1 and verdict.error.startswith("refused") and "can't help" in verdict.error
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [{"promptFeedback": {"blockReason": "SAFETY"}}, gemini_reply(None, finish="SAFETY")],
)
def test_gemini_block_is_a_refusal(api, secret_env, reply):
    api.responder = lambda n, r: (200, reply, {}, 0.0)
    verdict = fast_gemini(api, secret_env).judge(
        "Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000
    )
    assert verdict.winner == -1 and verdict.error.startswith("refused")
    assert len(api.requests) == 1


# ----------------------------------------------------------------------------------------------- API keys
def test_api_key_never_leaks_into_logs_errors_or_repr(api, secret_env, caplog):
    def echo(n: int, req: dict) -> tuple[int, Any, dict, float]:
        if n == 0:  # a proxy that echoes the request headers in its error page
            return 500, {"error": f"upstream failed for {req['headers'].get('authorization')}"}, {}, 0.0
        return 200, openai_reply(f"cannot judge, my key is {SECRET}"), {}, 0.0

    api.responder = echo
    caplog.set_level(logging.DEBUG)
    judge = fast_openai(api, secret_env)
    verdict = judge.judge("Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000)
    assert api.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"  # the key was sent...
    assert verdict.winner == -1
    assert "upstream failed" in caplog.text and "***" in caplog.text  # ...the echo was logged, redacted
    for text in (
        caplog.text,
        verdict.error or "",
        verdict.raw,
        verdict.reasoning,
        repr(judge),
        str(vars(judge)),
    ):
        assert SECRET not in text


def test_missing_key_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="GEMINI_API_KEY"):
        GeminiJudge()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAICompatibleJudge()  # OpenAI's own endpoint needs a key; local servers do not
    OpenAICompatibleJudge(base_url="http://127.0.0.1:8000/v1")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"model": ""}, "model"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"timeout": 0}, "timeout"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"requests_per_minute": -1}, "requests_per_minute"),
    ],
)
def test_bad_judge_arguments(kwargs, name):
    opts = dict(base_url="http://127.0.0.1:8000/v1", api_key_env=None)
    opts.update(kwargs)
    with pytest.raises(ValueError, match=name):
        OpenAICompatibleJudge(**opts)


def test_bad_audio_raises_before_sending(api):
    judge = fast_openai(api, None)
    with pytest.raises(ValueError, match="waveform"):
        judge.judge("Hi.", "Emotions", torch.full((100,), float("nan")), tone(200, 0.1, 8000), 8000)
    with pytest.raises(ValueError, match="sample_rate"):
        judge.judge("Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 0)
    with pytest.raises(ValueError, match="text"):
        judge.judge("", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000)
    assert api.requests == []


# ------------------------------------------------------------------------------------------- rate limiting
def test_rate_limiter_spaces_requests(api):
    api.responder = lambda n, r: (200, openai_reply(json.dumps(ANSWER)), {}, 0.0)
    judge = fast_openai(api, None, requests_per_minute=600)  # one request every 0.1 s
    args = ("Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000)
    threads = [threading.Thread(target=judge.judge, args=args) for _ in range(4)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(api.requests) == 4
    # sleeps never end early: the 4th request cannot have been sent before 3 intervals had passed
    assert max(r["time"] for r in api.requests) - start >= 0.3
    assert RateLimiter(None).acquire() == 0.0
    limiter = RateLimiter(120)  # 0.5 s apart
    assert limiter.acquire() == 0.0 and 0.4 <= limiter.acquire() <= 0.5


# ------------------------------------------------------------------------------------------ parsing, prompt
@pytest.mark.parametrize(
    "text, winner",
    [
        (json.dumps(ANSWER), 2),
        ("```\n" + json.dumps(dict(ANSWER, winner=1)) + "\n```", 1),
        ("{'winner': 0, 'score_1': 2, 'score_2': 2}", 0),
        ('{"reasoning_system_1": "line one\nline two", "winner": 1}', 1),  # raw newline inside a string
        ('Verdict: {"winner": "2"} as requested', 2),
        ('truncated output ... "score_2": 1, "winner": 1', 1),
    ],
)
def test_parse_judge_response_tolerant(text, winner):
    assert parse_judge_response(text)["winner"] == winner


@pytest.mark.parametrize(
    "text", ["", "no json here", '{"score_1": 2}', '{"winner": 7}', '{"winner": 1.5}', "[1, 2]"]
)
def test_parse_judge_response_rejects(text):
    with pytest.raises(JudgeResponseError):
        parse_judge_response(text)


def test_scores_outside_range_are_dropped():
    out = parse_judge_response(json.dumps(dict(ANSWER, score_1=9)))
    assert out["score_1"] is None and out["score_2"] == 3


def test_prompt_rubrics():
    for cat in CATEGORY_RUBRICS:
        prompt = build_judge_prompt("Some text.", cat)
        assert CATEGORY_RUBRICS[cat] in prompt.before_audio_a
        assert prompt.before_audio_a.rstrip().endswith("synthesized_speech_1:")
    assert rubric_for("complex_pronunciation") == CATEGORY_RUBRICS["Pronunciation"]
    assert rubric_for("EMOTIONS") == CATEGORY_RUBRICS["Emotions"]
    generic = rubric_for("Whispering")
    assert generic not in CATEGORY_RUBRICS.values() and "Evaluation dimension" in generic
    for key in (
        "reasoning_system_1",
        "reasoning_system_2",
        "system_comparison",
        "score_1",
        "score_2",
        "winner",
    ):
        assert f'"{key}"' in build_judge_prompt("x", "Questions").before_audio_a
    with pytest.raises(ValueError, match="category"):
        build_judge_prompt("x", " ")


# ------------------------------------------------------------------------------------------------- WAV codec
def test_encode_wav_resamples_mixes_and_clips():
    sr = 44_100
    left, right = tone(1000, 0.8, sr, 0.5), tone(1000, 0.2, sr, 0.5)
    data = encode_wav(torch.stack([left, right]), sr)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16_000)
        assert w.getnframes() == math.ceil(left.numel() * 16_000 / sr)
    x, rate = decode_wav(data)
    assert rate == 16_000
    expected = tone(1000, 0.5, 16_000, 0.5)[: x.numel()]
    interior = slice(200, -200)
    assert (x[interior] - expected[interior]).abs().max() < 5e-3  # band-limited resampling of a 1 kHz tone
    clipped, _ = decode_wav(encode_wav(torch.tensor([2.0, -3.0, 0.5]), 16_000))
    assert clipped.tolist() == pytest.approx([32767 / 32768, -32767 / 32768, round(0.5 * 32767) / 32768])
    empty, _ = decode_wav(encode_wav(torch.zeros(0), 16_000))
    assert empty.numel() == 0
    with pytest.raises(ValueError, match="waveform"):
        encode_wav(torch.zeros(2, 2, 10), 16_000)
    with pytest.raises(ValueError, match="data"):
        decode_wav(b"not a wav")


def test_verdict_invalid_helper():
    v = Verdict.invalid("boom", attempts=3)
    assert v.winner == -1 and not v.valid and v.attempts == 3


def test_judges_survive_pickling_for_ddp_spawn(api, secret_env):
    api.responder = lambda n, r: (200, openai_reply(json.dumps(ANSWER)), {}, 0.0)
    judge = pickle.loads(pickle.dumps(fast_openai(api, secret_env, requests_per_minute=6000)))
    verdict = judge.judge("Hi.", "Emotions", tone(200, 0.1, 8000), tone(200, 0.1, 8000), 8000)
    assert verdict.valid and judge.stats.valid == 1
    gemini = pickle.loads(pickle.dumps(fast_gemini(api, secret_env)))
    assert gemini.model == "gemini-test" and SECRET not in pickle.dumps(gemini).decode("latin-1")


# ------------------------------------------------------------------------------------------------ layout
def test_http_judge_settings_are_keyword_only():
    with pytest.raises(TypeError, match="positional"):
        _HTTPJudge("m", "http://127.0.0.1:1")  # type: ignore[misc]
    base = _HTTPJudge(model="m", base_url="http://127.0.0.1:1/", max_attempts=3, backoff_initial=0.5)
    assert (base.model, base.base_url) == ("m", "http://127.0.0.1:1")  # trailing '/' dropped
    assert (base.max_attempts, base.backoff_initial) == (3, 0.5)
    assert base.api_key_env is None and base.timeout == 120.0 and base.rate_limiter.interval == 0.0
    # the providers hand every setting through by name, their own defaults included
    gem = GeminiJudge(require_api_key=False, timeout=7.0, max_output_tokens=99, extra_headers={"X-A": "b"})
    assert (gem.timeout, gem.max_attempts, gem.max_output_tokens, gem.json_mode) == (7.0, 10, 99, True)
    assert gem.extra_headers == {"X-A": "b"} and gem.api_key_env == "GEMINI_API_KEY"
    oai = OpenAICompatibleJudge(model="o", base_url="http://127.0.0.1:1/v1", api_key_env=None, top_p=0.5)
    assert (oai.top_p, oai.max_attempts, oai.json_mode, oai.temperature) == (0.5, 5, False, 0.0)


def test_old_metrics_judges_path_reexports_the_same_objects():
    import jwbdh_callbacks.tts.judges as http_judges
    import metrics.judges as old
    import metrics.speech as speech

    for name in ("Verdict", "Judge", "JudgeResponseError", "JudgePrompt", "build_judge_prompt",
                 "parse_judge_response", "rubric_for", "CATEGORY_RUBRICS", "SYSTEM_PROMPT",
                 "encode_wav", "decode_wav", "read_wav"):  # fmt: skip
        assert getattr(old, name) is getattr(speech, name), name
    for name in ("OpenAICompatibleJudge", "GeminiJudge", "RateLimiter"):
        assert getattr(old, name) is getattr(http_judges, name), name
    assert set(old.__all__) <= set(dir(old))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        old.Nope  # noqa: B018


def test_metrics_never_imports_jwbdh_callbacks_or_lightning():
    import subprocess
    import sys

    code = (
        "import sys, metrics, metrics.judges, metrics.speech; "
        "from metrics.judges import Verdict, encode_wav, parse_judge_response; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jwbdh_callbacks', 'lightning', "
        "'pytorch_lightning')); assert not bad, bad; "
        "from metrics.judges import GeminiJudge; "  # the lazy re-export: judges only, still no Lightning
        "assert GeminiJudge.__module__ == 'jwbdh_callbacks.tts.judges'; "
        "assert 'lightning' not in sys.modules, 'a judge import pulled in lightning'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
