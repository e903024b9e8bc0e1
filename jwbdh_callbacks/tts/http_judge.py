"""The HTTP machinery shared by the audio judges: rate limiting, retries with back-off, redaction.

:class:`_HTTPJudge` runs the request/retry/parse loop; a provider subclass (:mod:`jwbdh_callbacks.tts.judges`)
only builds its request (``_request``) and pulls the answer text out of the response (``_extract_text``).
The settings are keyword-only arguments.

Robustness rules (a failing judge must never stop training):

* :meth:`_HTTPJudge.judge` never raises for anything the remote side does. HTTP 408/409/429/5xx, connection
  errors, time-outs and unreadable envelopes are retried with exponential back-off and jitter
  (``Retry-After`` is honoured, capped at ``backoff_max``); other 4xx answers, refusals and unparseable
  answers are not retried. Whatever fails in the end gives an *invalid* :class:`~metrics.speech.Verdict`
  (``winner == -1``), the reason in ``error``.
* Invalid arguments (text not a str or empty, audio with NaN/Inf or of the wrong shape, a bad sample rate)
  are the caller's bug and raise ValueError before anything is sent.
* Requests are spaced by a thread-safe :class:`RateLimiter` (``requests_per_minute``).
* API keys are read from environment variables at request time and never stored, logged or put in an error
  string (anything echoed back by a server is redacted).
* Only the standard library is used (``urllib``, ``json``): no SDK is needed. Everything pickles (DDP spawn).

Example:
    >>> limiter = RateLimiter(requests_per_minute=600)  # at most one request every 0.1 s
    >>> limiter.interval
    0.1
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any

from metrics.speech.judging import (
    JudgePrompt,
    JudgeResponseError,
    Verdict,
    build_judge_prompt,
    parse_judge_response,
)
from metrics.speech.wav import encode_wav

__all__ = ["RateLimiter"]

logger = logging.getLogger(__name__)


class RateLimiter:
    """Spaces calls to ``acquire`` at least ``60 / requests_per_minute`` seconds apart (thread-safe)."""

    def __init__(self, requests_per_minute: float | None) -> None:
        if requests_per_minute is not None and (
            isinstance(requests_per_minute, bool)
            or not isinstance(requests_per_minute, (int, float))
            or not requests_per_minute > 0
        ):
            raise ValueError(
                f"requests_per_minute must be a positive number or None, got {requests_per_minute!r}"
            )
        self.interval = 0.0 if requests_per_minute is None else 60.0 / float(requests_per_minute)
        self._lock = threading.Lock()
        self._next = 0.0

    def acquire(self) -> float:
        """Block until the next request may start; returns the seconds waited."""
        if self.interval <= 0:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return wait

    def __getstate__(self) -> dict[str, Any]:  # locks do not pickle (DDP spawn pickles callbacks)
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class _RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _FatalError(Exception):
    pass


class _Refusal(Exception):
    pass


_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


def _positive_number(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        raise ValueError(
            f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}"
        )
    return float(value)


@dataclass
class _Stats:
    requests: int = 0
    retries: int = 0
    valid: int = 0
    invalid: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()


class _HTTPJudge:
    """Shared request/retry/parse loop of the HTTP judges; every setting is a keyword-only argument.

    Args:
        model: model name sent in the request.
        base_url: API root (http or https).
        api_key_env: environment variable holding the key (read at each request), or None for no key.
        require_api_key: raise at construction when ``api_key_env`` is unset or empty.
        timeout: seconds per HTTP request (connect and each read).
        max_attempts: total attempts for retryable failures.
        backoff_initial, backoff_max, backoff_multiplier: exponential back-off (seconds), with jitter.
        requests_per_minute: client-side rate limit, None for none.
        temperature, top_p, max_output_tokens: sampling settings sent with the request.
        json_mode: ask the provider for a JSON answer (when it supports it).
        extra_headers: added to every request (e.g. an organisation header).

    Subclasses implement ``_request(prompt, wav_a, wav_b, key) -> (url, headers, body)`` and
    ``_extract_text(payload) -> str`` (raising ``_Refusal`` or ``_FatalError`` for answers without text).
    """

    provider = "http"

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key_env: str | None = None,
        require_api_key: bool = False,
        timeout: float = 120.0,
        max_attempts: int = 5,
        backoff_initial: float = 2.0,
        backoff_max: float = 60.0,
        backoff_multiplier: float = 2.0,
        requests_per_minute: float | None = None,
        temperature: float = 0.0,
        top_p: float = 0.9,
        max_output_tokens: int = 4096,
        json_mode: bool = False,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty str, got {model!r}")
        if not isinstance(base_url, str) or not re.match(r"^https?://", base_url):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
            raise ValueError(
                f"api_key_env must be the name of an environment variable or None, got {api_key_env!r}"
            )
        if require_api_key and (api_key_env is None or not os.environ.get(api_key_env)):
            raise ValueError(
                f"{type(self).__name__} needs an API key in the environment variable "
                f"{api_key_env or '<api_key_env>'}, which is not set"
            )
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        if (
            isinstance(max_output_tokens, bool)
            or not isinstance(max_output_tokens, int)
            or max_output_tokens < 1
        ):
            raise ValueError(f"max_output_tokens must be a positive int, got {max_output_tokens!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.timeout = _positive_number("timeout", timeout)
        self.max_attempts = max_attempts
        self.backoff_initial = _positive_number("backoff_initial", backoff_initial, allow_zero=True)
        self.backoff_max = _positive_number("backoff_max", backoff_max, allow_zero=True)
        self.backoff_multiplier = _positive_number("backoff_multiplier", backoff_multiplier)
        self.temperature = _positive_number("temperature", temperature, allow_zero=True)
        self.top_p = _positive_number("top_p", top_p)
        self.max_output_tokens = max_output_tokens
        self.json_mode = bool(json_mode)
        self.extra_headers = dict(extra_headers or {})
        self.rate_limiter = RateLimiter(requests_per_minute)
        self.stats = _Stats()
        self._rng = random.Random()
        self._opener = self._build_opener()

    def _build_opener(self) -> urllib.request.OpenerDirector:
        # Proxies from the environment, except that loopback addresses are always reached directly.
        return urllib.request.build_opener(
            urllib.request.ProxyHandler({} if _is_loopback(self.base_url) else None)
        )

    def __getstate__(self) -> dict[str, Any]:  # picklable for DDP spawn; the opener is rebuilt
        state = self.__dict__.copy()
        del state["_opener"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._opener = self._build_opener()

    def __repr__(self) -> str:  # never shows the key
        name = type(self).__name__
        return f"{name}(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    # -- subclass hooks --------------------------------------------------------------------------------
    def _request(
        self, prompt: JudgePrompt, wav_a: bytes, wav_b: bytes, key: str | None
    ) -> tuple[str, dict, dict]:
        raise NotImplementedError

    def _extract_text(self, payload: Any) -> str:
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------------------
    def _api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    @staticmethod
    def _redact(text: str, key: str | None) -> str:
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.backoff_max, self.backoff_initial * self.backoff_multiplier ** (attempt - 1))
        delay *= 0.5 + 0.5 * self._rng.random()  # jitter, so parallel workers do not retry in lockstep
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def _post(self, url: str, headers: dict, body: dict, key: str | None) -> Any:
        data = json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            try:
                detail = err.read(400).decode("utf-8", "replace")
            except Exception:
                detail = ""
            detail = self._redact(" ".join(detail.split())[:300], key)
            msg = f"HTTP {err.code} {err.reason}" + (f": {detail}" if detail else "")
            if err.code in _RETRY_STATUS:
                retry_after = None
                header = err.headers.get("Retry-After") if err.headers else None
                if header:
                    try:
                        retry_after = max(0.0, float(header))
                    except ValueError:
                        retry_after = None
                raise _RetryableError(msg, retry_after) from None
            raise _FatalError(msg) from None
        except TimeoutError as err:
            raise _RetryableError(f"timed out after {self.timeout:g} s ({type(err).__name__})") from None
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, TimeoutError):
                raise _RetryableError(f"timed out after {self.timeout:g} s") from None
            raise _RetryableError(self._redact(f"connection failed: {reason}", key)) from None
        except (ConnectionError, HTTPException, OSError) as err:
            raise _RetryableError(
                self._redact(f"connection failed: {type(err).__name__}: {err}", key)
            ) from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            snippet = self._redact(raw[:200].decode("utf-8", "replace"), key)
            raise _RetryableError(
                f"the server answered with something that is not JSON: {snippet!r}"
            ) from None

    # -- the protocol ----------------------------------------------------------------------------------
    def judge(self, text: str, category: str, audio_a: Any, audio_b: Any, sample_rate: int) -> Verdict:
        """Compare ``audio_a`` (system 1) with ``audio_b`` (system 2) ; never raises on API errors."""
        prompt = build_judge_prompt(text, category)
        wav_a = encode_wav(audio_a, sample_rate)
        wav_b = encode_wav(audio_b, sample_rate)
        key = self._api_key()
        url, headers, body = self._request(prompt, wav_a, wav_b, key)
        headers = {"Content-Type": "application/json", **self.extra_headers, **headers}
        last_error = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            self.rate_limiter.acquire()
            self.stats.add(requests=1)
            try:
                payload = self._post(url, headers, body, key)
                answer = self._extract_text(payload)
            except _RetryableError as err:
                last_error = str(err)
                if attempt < self.max_attempts:
                    delay = self._backoff(attempt, err.retry_after)
                    logger.warning(
                        "%s judge (%s): attempt %d/%d failed: %s; retrying in %.2f s",
                        self.provider,
                        self.model,
                        attempt,
                        self.max_attempts,
                        last_error,
                        delay,
                    )
                    self.stats.add(retries=1)
                    time.sleep(delay)
                    continue
                break
            except _Refusal as err:
                return self._invalid(f"refused: {self._redact(str(err), key)}", attempt)
            except _FatalError as err:
                return self._invalid(self._redact(str(err), key), attempt)
            try:
                parsed = parse_judge_response(answer)
            except JudgeResponseError as err:
                return self._invalid(f"unparseable answer: {err}", attempt, raw=self._redact(answer, key))
            self.stats.add(valid=1)
            return Verdict(
                winner=parsed["winner"],
                reasoning=self._redact(parsed["reasoning"], key),
                raw=self._redact(answer, key),
                score_a=parsed["score_1"],
                score_b=parsed["score_2"],
                attempts=attempt,
            )
        return self._invalid(f"gave up after {self.max_attempts} attempt(s): {last_error}", self.max_attempts)

    def _invalid(self, error: str, attempts: int, raw: str = "") -> Verdict:
        self.stats.add(invalid=1)
        logger.warning("%s judge (%s): invalid verdict: %s", self.provider, self.model, error)
        return Verdict.invalid(error, raw=raw, attempts=attempts)


def _is_loopback(url: str) -> bool:
    host = urllib.request.urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
