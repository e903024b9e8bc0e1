"""TTSWinRateCallback inside real Lightning fits with a tiny synthetic TTS module, fake and HTTP judges."""

from __future__ import annotations

import json
import math
import pickle
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import Logger, WandbLogger
from torch.utils.data import DataLoader, TensorDataset

from jwbdh_callbacks.tts import TTSWinRateCallback, category_slug, load_prompts
from jwbdh_callbacks.tts.judges import OpenAICompatibleJudge
from metrics.functional.speech import candidate_position
from metrics.speech import Verdict, encode_wav

SR = 22_050
PROMPTS = load_prompts()
CODE = {p.text: p.index for p in PROMPTS}


class TinyTTS(pl.LightningModule):
    """A linear regressor that 'speaks': each text becomes a tone whose first sample encodes the prompt."""

    sample_rate = SR

    def __init__(self, nan_text: str | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.nan_text = nan_text
        self.synth_calls = 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def synthesize(self, texts: list[str]) -> list[torch.Tensor]:
        self.synth_calls += 1
        out = []
        for text in texts:
            n = SR // 10 + 200 * len(text.split())
            w = 0.5 * torch.sin(2 * math.pi * 220 * torch.arange(n) / SR)
            w[0] = CODE[text] / 1000
            if text == self.nan_text:
                w[5] = float("nan")
            out.append(w)
        return out


class CodeTranscriber:
    """Recovers the prompt from the first sample; drops the last word for Complex Pronunciation prompts."""

    def transcribe(self, waveforms, sample_rate):
        assert sample_rate == SR
        out = []
        for w in waveforms:
            p = PROMPTS[round(float(w[0]) * 1000)]
            words = p.text.split()
            out.append(" ".join(words[:-1] if p.category == "Complex Pronunciation" else words))
        return out


class LoudnessJudge:
    """Picks the louder clip (always the candidate here), except for Questions where it calls a tie."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def judge(self, text, category, audio_a, audio_b, sample_rate):
        with self.lock:
            self.calls += 1
        if category == "Questions":
            return Verdict(winner=0, reasoning="equally good questions")
        louder = 1 if audio_a.pow(2).mean() > audio_b.pow(2).mean() else 2
        return Verdict(winner=louder, reasoning=f"system {louder} is clearer")


class RecordingLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics, step=None) -> None:
        self.records.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def logged(self, key: str) -> list[float]:
        return [m[key] for _, m in self.records if key in m]


def baseline_audio() -> list[torch.Tensor]:
    return [0.05 * torch.sin(2 * math.pi * 330 * torch.arange(8000) / 16_000) for _ in PROMPTS]


def fit(module: pl.LightningModule, callback: TTSWinRateCallback, tmp_path, epochs: int = 2, loggers=None):
    data = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    rec = RecordingLogger()
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=[rec, *(loggers or [])],
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=1,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))
    return trainer, rec


def test_fit_logs_expected_keys_and_values(tmp_path):
    cb = TTSWinRateCallback(
        every_n_epochs=2,
        baseline_audio=baseline_audio(),
        baseline_sample_rate=16_000,
        judge=LoudnessJudge(),
        transcriber=CodeTranscriber(),
        max_prompts=8,
        normalization=str.lower,
        num_table_samples=2,
    )
    module = TinyTTS()
    trainer, rec = fit(module, cb, tmp_path, epochs=2)
    assert trainer.state.finished and module.synth_calls == 1  # sanity check and epoch 0 skipped

    # 8 prompts round-robin over the 6 packaged categories: every category is present
    assert len(cb.prompts) == 8 and {p.category for p in cb.prompts} == set(cb.categories)
    slugs = [category_slug(c) for c in cb.categories]
    assert slugs == [
        "emotions",
        "paralinguistics",
        "complex_pronunciation",
        "syntactic_complexity",
        "foreign_words",
        "questions",
    ]
    expected_keys = {
        f"val/tts/{k}"
        for k in (
            "WER",
            "WER_corpus",
            "asr_failed",
            "synthesis_failed",
            "WinRate",
            "TieRate",
            "WinRate_ci_low",
            "WinRate_ci_high",
            "invalid",
        )
    }
    for s in slugs:
        expected_keys |= {
            f"val/tts/{s}/{k}"
            for k in (
                "WER",
                "WER_corpus",
                "WinRate",
                "TieRate",
                "WinRate_ci_low",
                "WinRate_ci_high",
                "invalid",
            )
        }
    logged = {k for _, m in rec.records for k in m if k.startswith("val/tts")}
    assert logged == expected_keys
    assert all(len(rec.logged(k)) == 1 for k in expected_keys)  # logged once, at epoch 1

    # WER, derived by hand: only Complex Pronunciation transcripts lose their last word
    pron = [p for p in cb.prompts if p.category == "Complex Pronunciation"]
    per_utt = [1 / len(p.text.split()) for p in pron]
    assert rec.logged("val/tts/complex_pronunciation/WER")[0] == pytest.approx(sum(per_utt) / len(per_utt))
    assert rec.logged("val/tts/WER")[0] == pytest.approx(sum(per_utt) / len(cb.prompts))
    total_words = sum(len(p.text.split()) for p in cb.prompts)
    assert rec.logged("val/tts/WER_corpus")[0] == pytest.approx(len(pron) / total_words)
    assert rec.logged("val/tts/emotions/WER")[0] == 0.0
    # WinRate: the candidate always wins, except Questions (always a tie)
    n_q = sum(p.category == "Questions" for p in cb.prompts)
    assert rec.logged("val/tts/emotions/WinRate")[0] == 1.0
    assert (
        rec.logged("val/tts/questions/WinRate")[0] == 0.5
        and rec.logged("val/tts/questions/TieRate")[0] == 1.0
    )
    assert rec.logged("val/tts/WinRate")[0] == pytest.approx((8 - n_q + 0.5 * n_q) / 8)
    assert rec.logged("val/tts/invalid")[0] == 0 and rec.logged("val/tts/synthesis_failed")[0] == 0
    assert rec.logged("val/tts/WinRate_ci_low")[0] < rec.logged("val/tts/WinRate")[0]
    # positions were randomised per prompt and recorded
    assert [j.candidate_position for j in cb.last_judgements] == [
        candidate_position(p.index, 0) for p in cb.prompts
    ]
    assert cb.state_dict()["last_evaluated_epoch"] == 1


class SlowAPI:
    """An OpenAI-compatible server that never answers in time."""

    def __init__(self, delay: float) -> None:
        self.count = 0
        self.stop = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                api.count += 1
                end = time.monotonic() + delay
                while time.monotonic() < end and not api.stop.is_set():
                    time.sleep(0.01)
                body = json.dumps({"choices": [{"message": {"content": '{"winner": 1}'}}]}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_judge_that_always_times_out_leaves_training_running(tmp_path):
    api = SlowAPI(delay=3.0)
    try:
        judge = OpenAICompatibleJudge(
            model="slow",
            base_url=api.url,
            api_key_env=None,
            timeout=0.2,
            max_attempts=2,
            backoff_initial=0.01,
            backoff_max=0.02,
        )
        cb = TTSWinRateCallback(
            every_n_epochs=1,
            baseline_audio=baseline_audio(),
            baseline_sample_rate=16_000,
            judge=judge,
            max_prompts=4,
            judge_workers=4,
        )
        start = time.monotonic()
        trainer, rec = fit(TinyTTS(), cb, tmp_path, epochs=2)
        elapsed = time.monotonic() - start
    finally:
        api.close()
    assert trainer.state.finished and trainer.current_epoch == 2 and trainer.global_step == 4
    assert rec.logged("val/tts/invalid") == [4.0, 4.0]  # every verdict invalid, in both epochs
    assert all(math.isnan(v) for v in rec.logged("val/tts/WinRate"))
    assert api.count == 16  # 4 prompts x 2 attempts x 2 epochs
    assert elapsed < 20
    assert "val/tts/WER" not in {k for _, m in rec.records for k in m}  # no transcriber, no WER keys


def test_unusable_audio_counts_as_a_failed_rendering(tmp_path):
    cb = TTSWinRateCallback(
        every_n_epochs=1,
        baseline_audio=baseline_audio(),
        baseline_sample_rate=16_000,
        judge=LoudnessJudge(),
        transcriber=CodeTranscriber(),
        categories=["Emotions"],
        max_prompts=3,
        normalization=str.lower,
        synthesis_batch_size=2,
    )
    bad = cb.prompts[1].text
    _, rec = fit(TinyTTS(nan_text=bad), cb, tmp_path, epochs=1)
    assert rec.logged("val/tts/synthesis_failed") == [1.0]
    assert rec.logged("val/tts/emotions/WinRate") == [pytest.approx(2 / 3)]  # the NaN rendering loses
    assert rec.logged("val/tts/emotions/WER") == [pytest.approx(1 / 3)]  # and reads as an empty transcript
    assert rec.logged("val/tts/asr_failed") == [0.0]


class BrokenTranscriber:
    def __init__(self) -> None:
        self.calls = 0

    def transcribe(self, waveforms, sample_rate):
        self.calls += 1
        raise RuntimeError("CUDA out of memory (simulated)")


def test_failing_asr_is_counted_and_training_continues(tmp_path):
    asr = BrokenTranscriber()
    cb = TTSWinRateCallback(
        transcriber=asr,
        max_prompts=3,
        normalization=str.lower,
        asr_max_attempts=2,
        asr_retry_backoff=0.01,
        run_on="train",
    )
    module = TinyTTS()
    trainer, rec = fit(module, cb, tmp_path, epochs=2)
    assert trainer.state.finished and trainer.global_step == 4
    assert rec.logged("val/tts/asr_failed") == [3.0, 3.0]
    assert all(math.isnan(v) for v in rec.logged("val/tts/WER"))
    assert asr.calls == 2 * (1 + 3 * 2)  # per epoch: one batch call, then 2 attempts per utterance
    assert module.training  # train mode restored after synthesising in eval mode


class FakeWandbLogger(WandbLogger):
    """A WandbLogger look-alike (isinstance works) that records tables instead of talking to W&B."""

    def __init__(self) -> None:
        Logger.__init__(self)
        self.tables: list[dict[str, Any]] = []

    @property
    def experiment(self) -> None:
        return None

    @property
    def name(self) -> str:
        return "fake-wandb"

    @property
    def version(self) -> str:
        return "0"

    @property
    def save_dir(self) -> None:
        return None

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_table(self, key, columns=None, data=None, dataframe=None, step=None) -> None:
        self.tables.append({"key": key, "columns": columns, "data": data, "step": step})

    def after_save_checkpoint(self, checkpoint_callback) -> None:
        pass

    def finalize(self, status) -> None:
        pass


def test_wandb_table_with_audio_and_reasoning(tmp_path, monkeypatch):
    class Audio:
        def __init__(self, data, sample_rate, caption=None):
            self.data, self.sample_rate, self.caption = data, sample_rate, caption

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Audio=Audio))
    wb = FakeWandbLogger()
    cb = TTSWinRateCallback(
        every_n_epochs=1,
        baseline_audio=baseline_audio(),
        baseline_sample_rate=16_000,
        judge=LoudnessJudge(),
        transcriber=CodeTranscriber(),
        max_prompts=6,
        normalization=str.lower,
        num_table_samples=3,
    )
    fit(TinyTTS(), cb, tmp_path, epochs=1, loggers=[wb])
    assert len(wb.tables) == 1
    table = wb.tables[0]
    assert table["key"] == "val/tts/samples"
    assert table["columns"][:6] == ["id", "category", "text", "transcript", "candidate", "baseline"]
    assert len(table["data"]) == 3
    row = dict(zip(table["columns"], table["data"][0]))
    assert isinstance(row["candidate"], Audio) and row["candidate"].sample_rate == SR
    assert isinstance(row["baseline"], Audio) and row["baseline"].sample_rate == 16_000
    assert "clearer" in row["reasoning"] or "questions" in row["reasoning"]
    assert row["outcome"] in ("win", "tie") and row["candidate_position"] in (1, 2)


def test_wandb_logger_without_wandb_installed_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    wb = FakeWandbLogger()
    cb = TTSWinRateCallback(transcriber=CodeTranscriber(), max_prompts=2, normalization=str.lower)
    trainer, rec = fit(TinyTTS(), cb, tmp_path, epochs=1, loggers=[wb])
    assert trainer.state.finished and wb.tables == [] and rec.logged("val/tts/WER") == [0.0]


# ------------------------------------------------------------------------------------------ configuration
def test_baseline_from_a_directory_of_wavs(tmp_path):
    folder = tmp_path / "baseline"
    folder.mkdir()
    cb = TTSWinRateCallback(baseline_audio=folder, judge=LoudnessJudge(), categories=["Questions"])
    for p in cb.prompts:
        (folder / f"{p.id}.wav").write_bytes(encode_wav(0.1 * torch.ones(1600), 16_000))
    resolved = cb._resolve_baseline(SR)
    assert set(resolved) == {p.index for p in cb.prompts}
    wav, rate = resolved[cb.prompts[0].index]
    assert rate == 16_000 and wav.shape == (1600,) and wav.mean().item() == pytest.approx(0.1, abs=1e-4)
    cb2 = TTSWinRateCallback(baseline_audio=folder, judge=LoudnessJudge(), categories=["Emotions"])
    with pytest.raises(ValueError, match="lacks"):
        cb2._resolve_baseline(SR)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"judge": LoudnessJudge()}, "baseline_audio is required"),
        ({}, "nothing would be measured"),
        ({"transcriber": CodeTranscriber(), "categories": ["Whispering"]}, "have no prompt"),
        ({"transcriber": CodeTranscriber(), "every_n_epochs": 0}, "every_n_epochs"),
        ({"transcriber": CodeTranscriber(), "max_prompts": -2}, "max_prompts"),
        ({"transcriber": CodeTranscriber(), "order_rule": "mean"}, "order_rule"),
        ({"transcriber": object()}, "transcriber"),
        ({"transcriber": CodeTranscriber(), "prompts": [{"text": "hi"}]}, "category"),
        ({"transcriber": CodeTranscriber(), "prompts": "/nonexistent.jsonl"}, "JSONL"),
    ],
)
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TTSWinRateCallback(**kwargs)


def test_module_contract_checked_at_setup(tmp_path):
    class NoSynth(TinyTTS):
        synthesize = None

    cb = TTSWinRateCallback(transcriber=CodeTranscriber(), max_prompts=2, normalization=str.lower)
    with pytest.raises(ValueError, match="synthesize"):
        fit(NoSynth(), cb, tmp_path, epochs=1)

    class NoRate(TinyTTS):
        sample_rate = None

    cb = TTSWinRateCallback(transcriber=CodeTranscriber(), max_prompts=2, normalization=str.lower)
    with pytest.raises(ValueError, match="sample_rate"):
        fit(NoRate(), cb, tmp_path, epochs=1)
    cb = TTSWinRateCallback(judge=LoudnessJudge(), baseline_audio=[torch.zeros(10)], max_prompts=2)
    with pytest.raises(ValueError, match="one waveform per prompt"):
        cb._resolve_baseline(SR)


def test_callback_with_http_judge_pickles_for_ddp_spawn():
    judge = OpenAICompatibleJudge(model="m", base_url="http://127.0.0.1:8000/v1", api_key_env=None)
    cb = TTSWinRateCallback(
        judge=judge,
        baseline_audio=baseline_audio(),
        transcriber=CodeTranscriber(),
        normalization="standardize",
        max_prompts=4,
    )
    clone = pickle.loads(pickle.dumps(cb))
    assert [p.id for p in clone.prompts] == [p.id for p in cb.prompts]
    assert clone.wer is None and clone.win_rate is None  # metric states are created per process in setup()


def test_old_tts_callback_path_reexports_the_same_objects():
    import jwbdh_callbacks.tts.callback as callback
    import jwbdh_callbacks.tts.prompts as prompts
    import jwbdh_callbacks.tts_callback as old

    assert old.TTSWinRateCallback is callback.TTSWinRateCallback is TTSWinRateCallback
    for name in ("TTSPrompt", "category_slug", "load_prompts"):
        assert getattr(old, name) is getattr(prompts, name), name


def test_prompt_set_and_state_roundtrip():
    cats = {p.category for p in PROMPTS}
    assert {"Emotions", "Paralinguistics", "Complex Pronunciation", "Syntactic Complexity"} <= cats
    assert all(p.text and p.id for p in PROMPTS) and len({p.id for p in PROMPTS}) == len(PROMPTS)
    cb = TTSWinRateCallback(transcriber=CodeTranscriber(), normalization="jiwer")
    cb.load_state_dict({"last_evaluated_epoch": 4, "last_results": {"val/tts/WER": 0.1}})
    assert cb.state_dict() == {"last_evaluated_epoch": 4, "last_results": {"val/tts/WER": 0.1}}


class PositionBiasedJudge:
    """Lock-free (picklable for ddp_spawn): ties on Questions, always 'first' on Emotions, else the louder."""

    def judge(self, text, category, audio_a, audio_b, sample_rate):
        if category == "Questions":
            return Verdict(winner=0)
        if category == "Emotions":
            return Verdict(winner=1)
        return Verdict(winner=1 if audio_a.pow(2).mean() > audio_b.pow(2).mean() else 2)


def _ddp_fit(devices: int, tmp_path) -> dict[str, float]:
    cb = TTSWinRateCallback(
        baseline_audio=baseline_audio(), baseline_sample_rate=16_000, judge=PositionBiasedJudge(),
        transcriber=CodeTranscriber(), max_prompts=9, normalization=str.lower, judge_workers=1,
    )  # fmt: skip
    data = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=devices, strategy="ddp_spawn" if devices > 1 else "auto",
        logger=False, callbacks=[cb], enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
        limit_train_batches=1, limit_val_batches=1,
    )  # fmt: skip
    trainer.fit(TinyTTS(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=4))
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/tts")}


@pytest.mark.ddp
@pytest.mark.slow
def test_ddp_spawn_two_processes_log_the_same_as_one(tmp_path):
    single = _ddp_fit(1, tmp_path / "one")
    double = _ddp_fit(2, tmp_path / "two")  # 9 prompts split 5 / 4 over the ranks
    assert set(single) == set(double) and "val/tts/emotions/WinRate_ci_high" in single
    assert double == pytest.approx(single, nan_ok=True)
