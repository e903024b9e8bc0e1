"""``TTSWinRateCallback``: periodic WER and judge win-rate checks of a TTS (or joint audio-video) model.

Every ``every_n_epochs`` validation epochs the callback asks the LightningModule to read a fixed prompt set
aloud (``pl_module.synthesize(texts) -> list[waveform]``), transcribes the audio (WER against the prompt text)
and lets an audio judge compare each rendering with a baseline rendering of the same prompt (win-rate), per
EmergentTTS-Eval category. It logs, through ``pl_module.log`` (any logger, ModelCheckpoint/EarlyStopping can
monitor them)::

    {log_prefix}/WER, {log_prefix}/{category}/WER          mean of per-utterance WER (EmergentTTS / Table 1)
    {log_prefix}/WER_corpus, .../{category}/WER_corpus      pooled (corpus) WER
    {log_prefix}/WinRate, .../{category}/WinRate            (wins + 0.5 ties) / valid judgements
    {log_prefix}/TieRate, WinRate_ci_low, WinRate_ci_high   tie rate, Wilson 95 % interval (also per category)
    {log_prefix}/invalid, .../{category}/invalid            judge verdicts that failed (excluded from WinRate)
    {log_prefix}/asr_failed, {log_prefix}/synthesis_failed  ASR failures / unusable synthesised audio

``category`` is the category name in snake case (``"Syntactic Complexity"`` -> ``syntactic_complexity``);
rates are fractions. WER keys appear when a ``transcriber`` is given, WinRate keys when a ``judge`` and a
``baseline_audio`` are given. With a ``WandbLogger`` among ``trainer.loggers``, rank 0 also logs a table with
a few audio samples (candidate and baseline) and the judge's reasoning; wandb is imported only then.

Robustness: judge and ASR failures are retried (by the judge / :func:`transcribe_with_retries`), then counted
and logged as invalid; they never raise. Unusable synthesised audio (NaN/Inf, wrong shape) counts as a loss
and as an empty transcript, because the system failed to read the prompt. Errors in the module's own
``synthesize`` are the user's bug and propagate.

DDP: prompts are split across ranks (``prompts[rank::world_size]``), each share padded to the largest one
(:func:`~jwbdh_callbacks.tts.prompts.shard_prompts` repeats its last prompt) so that every rank makes the same
number of ``synthesize`` calls with the same batch sizes: a sharded model (FSDP, DeepSpeed ZeRO-3) runs
collectives inside its forward and would hang if one rank called it more often. The padding's audio is
discarded (never transcribed, judged or counted). The metrics are sum-reduced and ``compute()`` runs on every
rank in the same order; the candidate's position for a prompt depends only on ``(seed, prompt index)``, so
results do not depend on the number of ranks.

Example::

    from jwbdh_callbacks.tts.judges import GeminiJudge
    from metrics.transcribers import WhisperTranscriber
    cb = TTSWinRateCallback(every_n_epochs=5, baseline_audio="data/baseline_audios", judge=GeminiJudge(),
                            transcriber=WhisperTranscriber(), max_prompts=32)
    trainer = L.Trainer(callbacks=[cb])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from jwbdh_callbacks.tts.prompts import TTSPrompt, category_slug, load_prompts, select_prompts, shard_prompts
from metrics.functional.speech import (
    Normalization,
    Outcome,
    as_mono_waveform,
    candidate_position,
    get_normalizer,
)
from metrics.speech import (
    Judge,
    Judgement,
    OrderRule,
    Verdict,
    WinRate,
    WordErrorRate,
    judge_candidate,
    read_wav,
)
from metrics.transcribers import Transcriber, transcribe_with_retries

__all__ = ["BaselineSource", "TTSWinRateCallback"]

logger = logging.getLogger(__name__)


BaselineSource = (
    Sequence[Any] | Mapping[str, Any] | str | os.PathLike[str] | Callable[[list[str]], Sequence[Any]] | None
)


class TTSWinRateCallback(Callback):
    """Periodic WER and judge win-rate of the module's speech against a baseline, per category.

    Args:
        every_n_epochs: run after the validation of every N-th epoch (``(epoch + 1) % N == 0``); never during
            the sanity check.
        prompts: JSONL path, sequence of ``{"id", "category", "text_to_synthesize"}`` mappings or
            :class:`TTSPrompt`, or None for the packaged set.
        baseline_audio: the baseline's renderings, one per prompt: a sequence aligned with ``prompts``, a
            mapping ``id -> waveform``, a directory of ``{id}.wav`` or ``{index}.wav`` files (EmergentTTS
            layout), or a callable ``texts -> waveforms``. Items may be ``(waveform, sample_rate)`` tuples.
        judge: a :class:`~metrics.speech.Judge`; with ``baseline_audio`` it enables the win-rate.
        transcriber: a :class:`~metrics.transcribers.Transcriber`; enables WER.
        categories: categories to evaluate (default: every category in ``prompts``, in order of appearance).
        max_prompts: at most this many prompts, taken round-robin over the categories.
        sample_rate: the module's output rate; default ``pl_module.sample_rate``.
        baseline_sample_rate: rate of baseline waveforms given without one (default: ``sample_rate``).
        normalization: WER text normalisation (see :class:`~metrics.speech.WordErrorRate`).
        seed: seed of the position randomisation (None: EmergentTTS-Eval's per-row rule).
        both_orders: judge every pair twice with the order swapped; ``order_rule`` says how to count them
            (``"conservative"``: one result per pair, a win only if both orders agree; ``"separate"``: both).
        synthesis_batch_size: texts per ``synthesize`` call.
        judge_workers: concurrent judge requests (the judge's own rate limit still applies).
        asr_max_attempts: attempts per utterance for a failing transcriber.
        asr_retry_backoff: seconds between transcription attempts (times the attempt number).
        num_table_samples: rows of the W&B sample table (0 disables it).
        log_prefix: prefix of every logged key.
        run_on: ``"validation"`` (``on_validation_epoch_end``) or ``"train"`` (``on_train_epoch_end``, for
            fits without a validation loop).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        prompts: str | os.PathLike[str] | Sequence[Any] | None = None,
        baseline_audio: BaselineSource = None,
        judge: Judge | None = None,
        transcriber: Transcriber | None = None,
        categories: Sequence[str] | None = None,
        max_prompts: int | None = None,
        sample_rate: int | None = None,
        baseline_sample_rate: int | None = None,
        normalization: Normalization | Callable[[str], str] = "emergent",
        seed: int | None = 0,
        both_orders: bool = False,
        order_rule: OrderRule = "conservative",
        synthesis_batch_size: int = 8,
        judge_workers: int = 4,
        asr_max_attempts: int = 2,
        asr_retry_backoff: float = 0.5,
        num_table_samples: int = 4,
        log_prefix: str = "val/tts",
        run_on: Literal["validation", "train"] = "validation",
    ) -> None:
        super().__init__()

        def _pos_int(name: str, value: Any, allow_zero: bool = False) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
                raise ValueError(f"{name} must be an int >= {0 if allow_zero else 1}, got {value!r}")
            return value

        self.every_n_epochs = _pos_int("every_n_epochs", every_n_epochs)
        self.max_prompts = None if max_prompts is None else _pos_int("max_prompts", max_prompts)
        self.synthesis_batch_size = _pos_int("synthesis_batch_size", synthesis_batch_size)
        self.judge_workers = _pos_int("judge_workers", judge_workers)
        self.asr_max_attempts = _pos_int("asr_max_attempts", asr_max_attempts)
        self.num_table_samples = _pos_int("num_table_samples", num_table_samples, allow_zero=True)
        if (
            isinstance(asr_retry_backoff, bool)
            or not isinstance(asr_retry_backoff, (int, float))
            or asr_retry_backoff < 0
        ):
            raise ValueError(f"asr_retry_backoff must be a number >= 0 (seconds), got {asr_retry_backoff!r}")
        self.asr_retry_backoff = float(asr_retry_backoff)
        for name, rate in (("sample_rate", sample_rate), ("baseline_sample_rate", baseline_sample_rate)):
            if rate is not None:
                _pos_int(name, rate)
        if judge is not None and not hasattr(judge, "judge"):
            raise ValueError(
                "judge must have a judge(text, category, audio_a, audio_b, sample_rate) method, "
                f"got {judge!r}"
            )
        if transcriber is not None and not hasattr(transcriber, "transcribe"):
            raise ValueError(
                f"transcriber must have a transcribe(waveforms, sample_rate) method, got {transcriber!r}"
            )
        if judge is not None and baseline_audio is None:
            raise ValueError(
                "baseline_audio is required when a judge is given (the judge compares against it)"
            )
        if judge is None and transcriber is None:
            raise ValueError(
                "give a judge (with baseline_audio), a transcriber, or both: nothing would be measured"
            )
        if order_rule not in ("conservative", "separate"):
            raise ValueError(f"order_rule must be 'conservative' or 'separate', got {order_rule!r}")
        if run_on not in ("validation", "train"):
            raise ValueError(f"run_on must be 'validation' or 'train', got {run_on!r}")
        if not isinstance(log_prefix, str) or not log_prefix:
            raise ValueError(f"log_prefix must be a non-empty str, got {log_prefix!r}")

        all_prompts = load_prompts(prompts)
        present = list(dict.fromkeys(p.category for p in all_prompts))
        if categories is None:
            cats = present
        else:
            if isinstance(categories, str) or not isinstance(categories, Sequence) or not categories:
                raise ValueError(f"categories must be a non-empty sequence of str, got {categories!r}")
            cats = list(categories)
            missing = [c for c in cats if c not in present]
            if missing:
                raise ValueError(
                    f"categories {missing} have no prompt; the prompts have categories {present}"
                )
        slugs = [category_slug(c) for c in cats]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"categories must have distinct log names, got {dict(zip(cats, slugs))}")
        self.categories: list[str] = cats
        self._slugs = dict(zip(cats, slugs))
        self.all_prompts = all_prompts
        self.prompts = select_prompts(all_prompts, cats, self.max_prompts)
        self.baseline_audio = baseline_audio
        self.judge = judge
        self.transcriber = transcriber
        self.sample_rate = sample_rate
        self.baseline_sample_rate = baseline_sample_rate
        self.normalization = normalization
        self.seed = seed
        self.both_orders = bool(both_orders)
        self.order_rule: OrderRule = order_rule
        self.log_prefix = log_prefix.rstrip("/")
        self.run_on = run_on

        if transcriber is not None:
            # Fail now (e.g. when whisper-normalizer is missing), not at the first check.
            get_normalizer(normalization)
        # The metrics are built in setup(), in each process: ddp_spawn pickles the callback, and CPU tensors
        # pickled by torch.multiprocessing go to shared memory, so states built here would be shared by ranks.
        self.wer: WordErrorRate | None = None
        self.win_rate: WinRate | None = None
        self._baseline: dict[int, tuple[Tensor, int]] | None = None
        self.last_evaluated_epoch: int | None = None
        self.last_results: dict[str, float] = {}
        self.last_judgements: list[Judgement] = []
        self.last_transcripts: dict[int, str | None] = {}

    # ------------------------------------------------------------------------------------------------ setup
    @property
    def state_key(self) -> str:
        return self._generate_state_key(log_prefix=self.log_prefix)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not callable(getattr(pl_module, "synthesize", None)):
            raise ValueError(
                f"{type(pl_module).__name__} must define synthesize(texts: list[str]) -> list[waveform] "
                "to be used with TTSWinRateCallback"
            )
        self._module_rate(pl_module)
        if self.transcriber is not None:
            self.wer = WordErrorRate(categories=self.categories, normalization=self.normalization)
            self.wer.to(pl_module.device)
        if self.judge is not None:
            self.win_rate = WinRate(categories=self.categories)
            self.win_rate.to(pl_module.device)

    def _module_rate(self, pl_module: pl.LightningModule) -> int:
        rate = self.sample_rate if self.sample_rate is not None else getattr(pl_module, "sample_rate", None)
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            raise ValueError(
                "the output sample rate is unknown: pass sample_rate=... to TTSWinRateCallback or give the "
                f"module an int attribute sample_rate (got {rate!r})"
            )
        return rate

    def _resolve_baseline(self, default_rate: int) -> dict[int, tuple[Tensor, int]]:
        if self._baseline is not None:
            return self._baseline
        src = self.baseline_audio
        rate = self.baseline_sample_rate or default_rate
        raw: dict[int, Any] = {}
        if isinstance(src, (str, os.PathLike)):
            folder = Path(src)
            if not folder.is_dir():
                raise ValueError(
                    f"baseline_audio must be an existing directory of WAV files, got {str(folder)!r}"
                )
            missing = []
            for p in self.prompts:
                for name in (f"{p.id}.wav", f"{p.index}.wav"):
                    if (folder / name).is_file():
                        raw[p.index] = read_wav(folder / name)
                        break
                else:
                    missing.append(p.id)
            if missing:
                raise ValueError(
                    f"baseline_audio directory {str(folder)!r} lacks {{id}}.wav for prompts {missing[:10]}"
                )
        elif isinstance(src, Mapping):
            missing = [p.id for p in self.prompts if p.id not in src]
            if missing:
                raise ValueError(f"baseline_audio mapping lacks the prompt ids {missing[:10]}")
            raw = {p.index: src[p.id] for p in self.prompts}
        elif callable(src):
            out = list(src([p.text for p in self.prompts]))
            if len(out) != len(self.prompts):
                raise ValueError(
                    f"baseline_audio(texts) must return {len(self.prompts)} waveforms, got {len(out)}"
                )
            raw = {p.index: w for p, w in zip(self.prompts, out)}
        elif isinstance(src, Sequence):
            if len(src) != len(self.all_prompts):
                raise ValueError(
                    f"baseline_audio must have one waveform per prompt ({len(self.all_prompts)}), "
                    f"got {len(src)}"
                )
            raw = {p.index: src[p.index] for p in self.prompts}
        else:
            raise ValueError(f"baseline_audio has an unsupported type {type(src).__name__}")
        resolved: dict[int, tuple[Tensor, int]] = {}
        for index, item in raw.items():
            wav, sr = item if isinstance(item, tuple) and len(item) == 2 else (item, rate)
            resolved[index] = (as_mono_waveform(wav, f"baseline_audio[{index}]"), int(sr))
        self._baseline = resolved
        return resolved

    # ------------------------------------------------------------------------------------------------ hooks
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run_on == "validation":
            self._maybe_run(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run_on == "train":
            self._maybe_run(trainer, pl_module)

    def _maybe_run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0:  # identical on every rank
            return
        was_training = pl_module.training
        pl_module.eval()  # no dropout while synthesising (matters for run_on="train")
        try:
            with torch.inference_mode():
                self.evaluate(trainer, pl_module)
        finally:
            pl_module.train(was_training)
        self.last_evaluated_epoch = trainer.current_epoch

    # ------------------------------------------------------------------------------------------- evaluation
    def _synthesize(
        self, pl_module: pl.LightningModule, prompts: list[TTSPrompt], n_real: int
    ) -> list[Tensor | None]:
        """Synthesise every prompt in batches; return the audio of the first ``n_real`` (the rest is padding).

        Every prompt, padding included, goes through ``synthesize`` so that all ranks make the same calls.
        """
        out: list[Tensor | None] = []
        for start in range(0, len(prompts), self.synthesis_batch_size):
            chunk = prompts[start : start + self.synthesis_batch_size]
            waves = pl_module.synthesize([p.text for p in chunk])
            if isinstance(waves, Tensor) and waves.ndim >= 2:
                waves = list(waves.unbind(0))
            if not isinstance(waves, Sequence) or len(waves) != len(chunk):
                raise ValueError(
                    f"{type(pl_module).__name__}.synthesize(texts) must return one waveform per text "
                    f"({len(chunk)}), got {type(waves).__name__} "
                    f"of length {getattr(waves, '__len__', lambda: '?')()}"
                )
            for i, (p, w) in enumerate(zip(chunk, waves), start):
                if i >= n_real:  # padding: synthesised only to keep the ranks in step, then dropped
                    continue
                try:
                    out.append(as_mono_waveform(w, f"synthesized audio for prompt {p.id!r}"))
                except ValueError as err:
                    logger.warning("unusable synthesized audio: %s; scored as a failed rendering", err)
                    out.append(None)
        return out

    def _judge_all(
        self,
        prompts: list[TTSPrompt],
        audio: list[Tensor | None],
        rate: int,
        baseline: dict[int, tuple[Tensor, int]],
    ) -> list[Judgement]:
        assert self.judge is not None
        judge = self.judge

        def one(item: tuple[TTSPrompt, Tensor | None]) -> Judgement:
            p, wav = item
            if wav is None:  # the model produced no usable audio: it loses
                pos = candidate_position(p.index, self.seed)
                verdict = Verdict(
                    winner=3 - pos, reasoning="candidate audio unusable (NaN/Inf or bad shape)", attempts=0
                )
                return Judgement(p.index, p.category, pos, (verdict,), (Outcome.LOSS,), Outcome.LOSS)
            base_wav, base_rate = baseline[p.index]
            return judge_candidate(
                judge,
                p.text,
                p.category,
                wav,
                base_wav,
                rate,
                index=p.index,
                seed=self.seed,
                both_orders=self.both_orders,
                baseline_sample_rate=base_rate,
            )

        items = list(zip(prompts, audio))
        if self.judge_workers == 1 or len(items) <= 1:
            return [one(it) for it in items]
        with ThreadPoolExecutor(max_workers=min(self.judge_workers, len(items))) as pool:
            return list(pool.map(one, items))

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """Run one check now (on every rank) and log it; returns the logged values."""
        rate = self._module_rate(pl_module)
        world, rank = max(1, trainer.world_size), trainer.global_rank
        padded, n_real = shard_prompts(self.prompts, rank, world)
        local = padded[:n_real]
        audio = self._synthesize(pl_module, padded, n_real)
        failed_synthesis = _global_sum(sum(w is None for w in audio), pl_module.device, world)
        values: dict[str, Tensor] = {f"{self.log_prefix}/synthesis_failed": failed_synthesis}

        transcripts: dict[int, str | None] = {}
        if self.wer is not None and self.transcriber is not None:
            ok = [i for i, w in enumerate(audio) if w is not None]
            texts = transcribe_with_retries(
                self.transcriber,
                [audio[i] for i in ok],
                rate,
                max_attempts=self.asr_max_attempts,
                backoff=self.asr_retry_backoff,
            )
            hyps: list[str | None] = ["" for _ in local]  # unusable audio reads as nothing
            for i, text in zip(ok, texts):
                hyps[i] = text
            transcripts = {p.index: h for p, h in zip(local, hyps)}
            self.wer.update([p.text for p in local], hyps, categories=[p.category for p in local])
            out = self.wer.compute()
            self.wer.reset()
            values[f"{self.log_prefix}/WER"] = out["wer_utterance_mean"]
            values[f"{self.log_prefix}/WER_corpus"] = out["wer"]
            values[f"{self.log_prefix}/asr_failed"] = out["asr_failed"]
            for c in self.categories:
                s = self._slugs[c]
                values[f"{self.log_prefix}/{s}/WER"] = out[f"{c}/wer_utterance_mean"]
                values[f"{self.log_prefix}/{s}/WER_corpus"] = out[f"{c}/wer"]

        judgements: list[Judgement] = []
        if self.win_rate is not None:
            baseline = self._resolve_baseline(rate)
            judgements = self._judge_all(local, audio, rate, baseline)
            outcomes = [o for j in judgements for o in j.outcomes(self.order_rule)]
            cats = [j.category for j in judgements for _ in j.outcomes(self.order_rule)]
            self.win_rate.update(outcomes, categories=cats)
            out = self.win_rate.compute()
            self.win_rate.reset()
            for prefix, src in [(self.log_prefix, "")] + [
                (f"{self.log_prefix}/{self._slugs[c]}", f"{c}/") for c in self.categories
            ]:
                values[f"{prefix}/WinRate"] = out[f"{src}win_rate"]
                values[f"{prefix}/TieRate"] = out[f"{src}tie_rate"]
                values[f"{prefix}/WinRate_ci_low"] = out[f"{src}ci_low"]
                values[f"{prefix}/WinRate_ci_high"] = out[f"{src}ci_high"]
                values[f"{prefix}/invalid"] = out[f"{src}invalid"]
            n_invalid = int(out["invalid"])
            if n_invalid:
                logger.warning(
                    "TTS judge: %d invalid verdict(s) this check (excluded from WinRate)", n_invalid
                )

        for key, value in values.items():
            # compute() and _global_sum have already synced across ranks: sync_dist would double count sums.
            pl_module.log(key, value.to(torch.float32), on_step=False, on_epoch=True, sync_dist=False)

        self.last_results = {k: float(v) for k, v in values.items()}
        self.last_judgements = judgements
        self.last_transcripts = transcripts
        if trainer.is_global_zero and self.num_table_samples:
            self._log_table(trainer, local, audio, rate, judgements, transcripts)
        return self.last_results

    # ------------------------------------------------------------------------------------------------ media
    def _log_table(
        self,
        trainer: pl.Trainer,
        prompts: list[TTSPrompt],
        audio: list[Tensor | None],
        rate: int,
        judgements: list[Judgement],
        transcripts: dict[int, str | None],
    ) -> None:
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not wandb_loggers:
            return
        try:
            import wandb
        except ImportError:
            logger.warning(
                "a WandbLogger is configured but wandb cannot be imported; skipping the TTS sample table"
            )
            return
        try:
            by_index = {j.index: j for j in judgements}
            columns = [
                "id",
                "category",
                "text",
                "transcript",
                "candidate",
                "baseline",
                "candidate_position",
                "outcome",
                "reasoning",
            ]
            rows = []
            baseline = self._baseline or {}
            for p, wav in list(zip(prompts, audio))[: self.num_table_samples]:
                j = by_index.get(p.index)
                cand = wandb.Audio(wav.numpy(), sample_rate=rate, caption=p.id) if wav is not None else None
                base = baseline.get(p.index)
                base_audio = wandb.Audio(base[0].numpy(), sample_rate=base[1], caption=p.id) if base else None
                rows.append(
                    [
                        p.id,
                        p.category,
                        p.text,
                        transcripts.get(p.index),
                        cand,
                        base_audio,
                        j.candidate_position if j else None,
                        j.outcome.name.lower() if j else None,
                        j.reasoning if j else None,
                    ]
                )
            for lg in wandb_loggers:
                lg.log_table(
                    key=f"{self.log_prefix}/samples", columns=columns, data=rows, step=trainer.global_step
                )
        except Exception as err:  # media logging must never stop training
            logger.warning("could not log the TTS sample table to W&B: %s: %s", type(err).__name__, err)

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"last_evaluated_epoch": self.last_evaluated_epoch, "last_results": dict(self.last_results)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_evaluated_epoch = state_dict.get("last_evaluated_epoch")
        self.last_results = dict(state_dict.get("last_results", {}))


def _global_sum(count: int, device: torch.device, world_size: int) -> Tensor:
    """``count`` summed over the ranks (a collective when ``world_size > 1``): a float32 scalar on ``device``.

    Every rank calls it at the same point of :meth:`TTSWinRateCallback.evaluate`.
    """
    total = torch.tensor(float(count), dtype=torch.float32, device=device)
    if world_size > 1 and dist.is_available() and dist.is_initialized():
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total
