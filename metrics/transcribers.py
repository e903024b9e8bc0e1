"""Speech recognisers for WER: the :class:`Transcriber` protocol and Whisper (transformers or openai-whisper).

EmergentTTS-Eval transcribes every synthesised utterance with ``openai/whisper-large-v3`` through Hugging Face
transformers (``shared/spec/tts.md`` s3): 16 kHz mono input, long-form features (``truncation=False``,
``padding="longest"``, attention mask), ``language="english"``, ``task="transcribe"``,
``return_timestamps=True``, greedy decoding, special tokens skipped, result stripped, one utterance at a
time. :class:`WhisperTranscriber` does the same; ``backend="openai-whisper"`` uses the ``openai-whisper``
package instead. Both packages are optional and imported only when the model is first used.

A failing recogniser must not stop training: :func:`transcribe_with_retries` retries and returns ``None`` for
utterances that still fail, which the WER metric counts apart.

Example:
    >>> class Echo:  # any object with ``transcribe(waveforms, sample_rate) -> list[str]`` is a Transcriber
    ...     def transcribe(self, waveforms, sample_rate):
    ...         return ["hello" for _ in waveforms]
    >>> import torch
    >>> transcribe_with_retries(Echo(), [torch.zeros(160)], 16_000)
    ['hello']
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import torch

from metrics.functional.speech import JUDGE_SAMPLE_RATE, TTS_EXTRA_HINT, as_mono_waveform, resample_audio

__all__ = ["Transcriber", "WhisperTranscriber", "transcribe_with_retries"]

logger = logging.getLogger(__name__)

_LANGUAGE_NAMES = {
    "en": "english",
    "zh": "chinese",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "ja": "japanese",
}


@runtime_checkable
class Transcriber(Protocol):
    """Anything with ``transcribe(waveforms, sample_rate) -> list[str]`` (one transcript per waveform)."""

    def transcribe(self, waveforms: Sequence[Any], sample_rate: int) -> list[str]: ...


def _check_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
    return sample_rate


class WhisperTranscriber:
    """Whisper ASR as EmergentTTS-Eval runs it.

    Args:
        model: Hugging Face model id (transformers backend) or an openai-whisper model name; an
            ``openai/whisper-*`` id is mapped to the openai-whisper name (``large-v3``) for that backend.
        backend: ``"transformers"`` (the reference) or ``"openai-whisper"``.
        device: torch device; default CUDA when available, else CPU.
        language: ISO code ("en") or Whisper language name.
        dtype: model dtype for transformers (default float16 on CUDA, float32 on CPU).

    The model is loaded lazily on first use (thread-safe); missing packages raise ImportError with the
    install command.

    Example:
        >>> asr = WhisperTranscriber("openai/whisper-tiny.en", device="cpu")  # nothing is loaded yet
        >>> asr.backend
        'transformers'
    """

    def __init__(
        self,
        model: str = "openai/whisper-large-v3",
        backend: Literal["transformers", "openai-whisper"] = "transformers",
        device: str | torch.device | None = None,
        language: str = "en",
        dtype: torch.dtype | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty str, got {model!r}")
        if backend not in ("transformers", "openai-whisper"):
            raise ValueError(f"backend must be 'transformers' or 'openai-whisper', got {backend!r}")
        if not isinstance(language, str) or not language:
            raise ValueError(f"language must be a non-empty str such as 'en', got {language!r}")
        self.model_name = model
        self.backend = backend
        self.device = torch.device(device) if device is not None else None
        self.language = language
        self.dtype = dtype
        self._model: Any = None
        self._processor: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        args = f"model={self.model_name!r}, backend={self.backend!r}, language={self.language!r}"
        return f"WhisperTranscriber({args})"

    def __getstate__(self) -> dict[str, Any]:
        # Picklable (DDP spawn pickles callbacks): the lock is recreated, the model reloaded lazily.
        state = self.__dict__.copy()
        state.update(_lock=None, _model=None, _processor=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _resolved_device(self) -> torch.device:
        if self.device is None:
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return self.device

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            device = self._resolved_device()
            if self.backend == "transformers":
                try:
                    from transformers import WhisperForConditionalGeneration, WhisperProcessor
                except ImportError as err:
                    raise ImportError(
                        "WhisperTranscriber(backend='transformers') needs the `transformers` package: "
                        f"{TTS_EXTRA_HINT} (or `pip install transformers`)"
                    ) from err
                dtype = self.dtype or (torch.float16 if device.type == "cuda" else torch.float32)
                self.dtype = dtype
                self._processor = WhisperProcessor.from_pretrained(self.model_name)
                model = WhisperForConditionalGeneration.from_pretrained(self.model_name, torch_dtype=dtype)
                self._model = model.to(device).eval()
            else:
                try:
                    import whisper
                except ImportError as err:
                    raise ImportError(
                        "WhisperTranscriber(backend='openai-whisper') needs the `openai-whisper` package: "
                        f"{TTS_EXTRA_HINT} (or `pip install openai-whisper`)"
                    ) from err
                name = self.model_name
                if name.startswith("openai/whisper-"):
                    name = name[len("openai/whisper-") :]
                self._model = whisper.load_model(name, device=str(device))

    def _prepare(self, waveforms: Sequence[Any], sample_rate: int) -> list[torch.Tensor]:
        if isinstance(waveforms, (str, bytes)) or not isinstance(waveforms, Sequence):
            raise ValueError(f"waveforms must be a sequence of waveforms, got {type(waveforms).__name__}")
        out = []
        for i, w in enumerate(waveforms):
            x = as_mono_waveform(w, f"waveforms[{i}]")
            out.append(resample_audio(x, sample_rate, JUDGE_SAMPLE_RATE))
        return out

    @torch.no_grad()
    def transcribe(self, waveforms: Sequence[Any], sample_rate: int) -> list[str]:
        """Transcribe each waveform (``[T]`` or ``[channels, T]`` at ``sample_rate``), one at a time."""
        sample_rate = _check_rate(sample_rate)
        audios = self._prepare(waveforms, sample_rate)
        self._load()
        language = _LANGUAGE_NAMES.get(self.language, self.language)
        texts = []
        for audio in audios:
            array = audio.numpy()
            if self.backend == "transformers":
                proc = self._processor
                inputs = proc(
                    array,
                    sampling_rate=JUDGE_SAMPLE_RATE,
                    return_tensors="pt",
                    truncation=False,
                    padding="longest",
                    return_attention_mask=True,
                )
                if inputs["input_features"].shape[-1] < 3000:  # short-form: pad to Whisper's 30 s window
                    inputs = proc(
                        array,
                        sampling_rate=JUDGE_SAMPLE_RATE,
                        return_tensors="pt",
                        return_attention_mask=True,
                    )
                device = self._resolved_device()
                ids = self._model.generate(
                    inputs["input_features"].to(device=device, dtype=self.dtype),
                    attention_mask=inputs["attention_mask"].to(device),
                    language=language,
                    task="transcribe",
                    return_timestamps=True,
                )
                texts.append(proc.batch_decode(ids, skip_special_tokens=True)[0].strip())
            else:
                result = self._model.transcribe(
                    array,
                    language=self.language,
                    task="transcribe",
                    temperature=0.0,
                    fp16=self._resolved_device().type == "cuda",
                )
                texts.append(str(result["text"]).strip())
        return texts


def transcribe_with_retries(
    transcriber: Transcriber,
    waveforms: Sequence[Any],
    sample_rate: int,
    max_attempts: int = 2,
    backoff: float = 0.5,
) -> list[str | None]:
    """Transcribe, retrying failures; ``None`` marks an utterance whose transcription failed every attempt.

    The whole batch is tried once; if that raises (or returns the wrong number of strings), each utterance is
    then tried on its own up to ``max_attempts`` times, so one bad clip cannot void the others.
    ImportError (a missing optional package) is a configuration error and is raised.
    """
    if not hasattr(transcriber, "transcribe"):
        raise ValueError(
            f"transcriber must have a transcribe(waveforms, sample_rate) method, got {transcriber!r}"
        )
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    waveforms = list(waveforms)
    if not waveforms:
        return []

    def _valid(out: Any, n: int) -> bool:
        return isinstance(out, (list, tuple)) and len(out) == n and all(isinstance(t, str) for t in out)

    try:
        out = transcriber.transcribe(waveforms, sample_rate)
        if _valid(out, len(waveforms)):
            return list(out)
        logger.warning(
            "transcriber returned %r for %d waveforms; retrying one by one",
            type(out).__name__,
            len(waveforms),
        )
    except ImportError:
        raise
    except Exception as err:
        logger.warning(
            "transcription of %d waveforms failed (%s: %s); retrying one by one",
            len(waveforms),
            type(err).__name__,
            err,
        )
    results: list[str | None] = []
    for i, w in enumerate(waveforms):
        text: str | None = None
        for attempt in range(1, max_attempts + 1):
            try:
                out = transcriber.transcribe([w], sample_rate)
                if _valid(out, 1):
                    text = out[0]
                    break
                logger.warning("transcriber returned %r for waveform %d", out, i)
            except ImportError:
                raise
            except Exception as err:
                logger.warning(
                    "transcription of waveform %d failed (attempt %d/%d): %s: %s",
                    i,
                    attempt,
                    max_attempts,
                    type(err).__name__,
                    err,
                )
            if attempt < max_attempts and backoff > 0:
                time.sleep(backoff * attempt)
        results.append(text)
    return results
