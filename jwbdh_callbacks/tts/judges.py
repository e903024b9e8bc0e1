"""Audio judges over HTTP for the TTS win-rate: :class:`OpenAICompatibleJudge` and :class:`GeminiJudge`.

Both implement :class:`metrics.speech.Judge` (``judge(text, category, audio_a, audio_b, sample_rate) ->
Verdict``) with the project's judge prompt (:func:`metrics.speech.build_judge_prompt`) and request settings as
in EmergentTTS-Eval (``shared/spec/tts.md`` s2). The retry/back-off/rate-limit/redaction loop they share is
:class:`~jwbdh_callbacks.tts.http_judge._HTTPJudge`; a failing judge never raises, it returns an invalid
verdict (``winner == -1``) with the reason. API keys come from environment variables only; Gemini's key goes
in the ``x-goog-api-key`` header, never in the URL. Standard library only (no SDK).

These classes were in ``metrics.judges``, which still re-exports them (lazily, so that :mod:`metrics` never
imports this package).

Example (against a local OpenAI-compatible server, e.g. vLLM serving an open audio model)::

    judge = OpenAICompatibleJudge(model="Qwen/Qwen2.5-Omni-7B", base_url="http://127.0.0.1:8000/v1",
                                  api_key_env=None)
    verdict = judge.judge("Is it raining?", "Questions", audio_a, audio_b, sample_rate=24_000)
    verdict.winner      # 1 (audio_a better), 2 (audio_b better), 0 (tie) or -1 (invalid; see verdict.error)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jwbdh_callbacks.tts.http_judge import RateLimiter, _b64, _FatalError, _HTTPJudge, _Refusal
from metrics.speech.judging import JudgePrompt

__all__ = ["GeminiJudge", "OpenAICompatibleJudge", "RateLimiter"]


class OpenAICompatibleJudge(_HTTPJudge):
    """Judge through an OpenAI-style ``/chat/completions`` endpoint with ``input_audio`` content parts.

    Works with OpenAI's audio models (e.g. ``gpt-4o-audio-preview``) and with any OpenAI-compatible server
    (vLLM, SGLang ...) serving an open audio model such as Qwen2.5-Omni. The key is read from the environment
    variable ``api_key_env`` at each request (``None``: no ``Authorization`` header, for local servers); it is
    required when ``base_url`` is OpenAI's own API. Sampling as EmergentTTS-Eval (temperature 0, top_p 0.9).

    Args:
        model: model name sent in the request.
        base_url: API root that ``/chat/completions`` is appended to.
        api_key_env: environment variable holding the key, or None.
        timeout: seconds per HTTP request (connect and each read).
        max_attempts: total attempts for retryable failures (EmergentTTS uses 5 for OpenAI).
        backoff_initial, backoff_multiplier, backoff_max: exponential back-off (seconds), with jitter.
        requests_per_minute: client-side rate limit, None for none.
        json_mode: send ``response_format={"type": "json_object"}`` (not every audio model supports it).

    Example:
        >>> OpenAICompatibleJudge(model="omni", base_url="http://127.0.0.1:8000/v1", api_key_env=None)
        OpenAICompatibleJudge(model='omni', base_url='http://127.0.0.1:8000/v1', api_key_env=None)
    """

    provider = "openai-compatible"

    def __init__(
        self,
        model: str = "gpt-4o-audio-preview",
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        require_api_key: bool | None = None,
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
        if require_api_key is None:
            require_api_key = "api.openai.com" in str(base_url)
        super().__init__(
            model=model,
            base_url=base_url,
            api_key_env=api_key_env,
            require_api_key=require_api_key,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            backoff_multiplier=backoff_multiplier,
            requests_per_minute=requests_per_minute,
            temperature=temperature,
            top_p=top_p,
            max_output_tokens=max_output_tokens,
            json_mode=json_mode,
            extra_headers=extra_headers,
        )

    def _request(
        self, prompt: JudgePrompt, wav_a: bytes, wav_b: bytes, key: str | None
    ) -> tuple[str, dict, dict]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": prompt.before_audio_a},
                        {"type": "input_audio", "input_audio": {"data": _b64(wav_a), "format": "wav"}},
                        {"type": "text", "text": prompt.between},
                        {"type": "input_audio", "input_audio": {"data": _b64(wav_b), "format": "wav"}},
                    ],
                },
            ],
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_output_tokens,
        }
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return f"{self.base_url}/chat/completions", headers, body

    def _extract_text(self, payload: Any) -> str:
        try:
            choice = payload["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise _FatalError("the response has no choices[0].message") from None
        refusal = message.get("refusal") if isinstance(message, dict) else None
        if refusal:
            raise _Refusal(str(refusal)[:300])
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not content:
            if choice.get("finish_reason") == "content_filter":
                raise _Refusal("content filter")
            raise _FatalError(f"empty answer (finish_reason={choice.get('finish_reason')!r})")
        return str(content)


_GEMINI_HARM_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
_GEMINI_BLOCKED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "OTHER"})


class GeminiJudge(_HTTPJudge):
    """Judge with Google's Gemini ``generateContent`` REST API (no SDK needed).

    Request as in EmergentTTS-Eval: system instruction, one user turn ``[text, audio/wav, text, audio/wav]``
    (inline base64), temperature 0, top_p 0.9, the four harm categories at ``BLOCK_NONE`` and a thinking
    budget of 256 tokens (thoughts are not returned). The key comes from ``api_key_env`` (``GEMINI_API_KEY``)
    and is sent in the ``x-goog-api-key`` header. EmergentTTS retries Gemini 10 times.

    Example:
        >>> judge = GeminiJudge(model="gemini-2.5-pro", require_api_key=False)  # key: $GEMINI_API_KEY
        >>> judge.model, judge.api_key_env
        ('gemini-2.5-pro', 'GEMINI_API_KEY')
    """

    provider = "gemini"

    def __init__(
        self,
        model: str = "gemini-2.5-pro",
        base_url: str = "https://generativelanguage.googleapis.com",
        api_key_env: str = "GEMINI_API_KEY",
        require_api_key: bool = True,
        timeout: float = 300.0,
        max_attempts: int = 10,
        backoff_initial: float = 2.0,
        backoff_max: float = 60.0,
        backoff_multiplier: float = 2.0,
        requests_per_minute: float | None = None,
        temperature: float = 0.0,
        top_p: float = 0.9,
        max_output_tokens: int = 8192,
        json_mode: bool = True,
        thinking_budget: int | None = 256,
        api_version: str = "v1beta",
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            model=model,
            base_url=base_url,
            api_key_env=api_key_env,
            require_api_key=require_api_key,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            backoff_multiplier=backoff_multiplier,
            requests_per_minute=requests_per_minute,
            temperature=temperature,
            top_p=top_p,
            max_output_tokens=max_output_tokens,
            json_mode=json_mode,
            extra_headers=extra_headers,
        )
        if thinking_budget is not None and (
            isinstance(thinking_budget, bool) or not isinstance(thinking_budget, int)
        ):
            raise ValueError(f"thinking_budget must be an int or None, got {thinking_budget!r}")
        self.thinking_budget = thinking_budget
        self.api_version = api_version

    def _request(
        self, prompt: JudgePrompt, wav_a: bytes, wav_b: bytes, key: str | None
    ) -> tuple[str, dict, dict]:
        headers = {"x-goog-api-key": key} if key else {}
        config: dict[str, Any] = {
            "temperature": self.temperature,
            "topP": self.top_p,
            "maxOutputTokens": self.max_output_tokens,
        }
        if self.json_mode:
            config["responseMimeType"] = "application/json"
        if self.thinking_budget is not None:
            config["thinkingConfig"] = {"thinkingBudget": self.thinking_budget, "includeThoughts": False}
        body = {
            "systemInstruction": {"parts": [{"text": prompt.system}]},
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": prompt.before_audio_a},
                        {"inlineData": {"mimeType": "audio/wav", "data": _b64(wav_a)}},
                        {"text": prompt.between},
                        {"inlineData": {"mimeType": "audio/wav", "data": _b64(wav_b)}},
                    ],
                }
            ],
            "generationConfig": config,
            "safetySettings": [{"category": c, "threshold": "BLOCK_NONE"} for c in _GEMINI_HARM_CATEGORIES],
        }
        url = f"{self.base_url}/{self.api_version}/models/{self.model}:generateContent"
        return url, headers, body

    def _extract_text(self, payload: Any) -> str:
        if not isinstance(payload, dict):
            raise _FatalError("the response is not a JSON object")
        feedback = payload.get("promptFeedback") or {}
        candidates = payload.get("candidates") or []
        if not candidates:
            if feedback.get("blockReason"):
                raise _Refusal(f"prompt blocked ({feedback['blockReason']})")
            raise _FatalError("the response has no candidates")
        cand = candidates[0] if isinstance(candidates[0], dict) else {}
        parts = (cand.get("content") or {}).get("parts") or []
        text = "".join(p.get("text", "") for p in parts if isinstance(p, dict) and not p.get("thought"))
        if not text.strip():
            reason = cand.get("finishReason")
            if reason in _GEMINI_BLOCKED:
                raise _Refusal(f"finishReason={reason}")
            raise _FatalError(f"empty answer (finishReason={reason!r})")
        return text
