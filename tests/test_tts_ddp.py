"""TTSWinRateCallback on 2 gloo processes with uneven prompt shares (issue 12 item 2, TTS case).

A sharded model (FSDP, DeepSpeed ZeRO-3) runs collectives inside its forward, so every rank must call
``synthesize`` the same number of times. The stand-in model below does what such a forward does, an
all-reduce per call, and records its calls. Each rank's share is padded to the largest one; the padding is
synthesised and dropped, never transcribed, judged or counted, so the logged values equal a 1-process run.
"""

from __future__ import annotations

import types

import pytest
import torch
import torch.distributed as dist

from jwbdh_callbacks.tts import TTSWinRateCallback, shard_prompts
from metrics.functional.speech import candidate_position
from tests.ddp import run_ddp
from tests.test_tts_callback import CodeTranscriber, PositionBiasedJudge, TinyTTS, baseline_audio


class ShardedTTS(TinyTTS):
    """TinyTTS whose ``synthesize`` is a collective (as a sharded forward); ``log`` records the values."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.logged: dict[str, float] = {}

    def synthesize(self, texts: list[str]) -> list[torch.Tensor]:
        self.calls.append(list(texts))
        if dist.is_initialized():  # every rank must enter this, as FSDP's parameter all-gather
            n = torch.tensor([len(texts)], dtype=torch.long)
            dist.all_reduce(n)
        return super().synthesize(texts)

    def log(self, name: str, value, **kwargs) -> None:  # no Trainer attached: record what would be logged
        assert kwargs.get("sync_dist") is False  # values are global already; syncing would double count
        self.logged[name] = float(value)


class RecordingJudge(PositionBiasedJudge):
    def __init__(self) -> None:
        self.texts: list[str] = []

    def judge(self, text, category, audio_a, audio_b, sample_rate):
        self.texts.append(text)
        return super().judge(text, category, audio_a, audio_b, sample_rate)


class RecordingTranscriber(CodeTranscriber):
    def __init__(self) -> None:
        self.count = 0

    def transcribe(self, waveforms, sample_rate):
        self.count += len(waveforms)
        return super().transcribe(waveforms, sample_rate)


#: (number of prompts, synthesis_batch_size): 3 on 2 ranks (shares 2 / 1), 1 on 2 ranks (an empty share),
#: 5 in batches of 2 (shares 3 / 2)
CASES = [(3, 1), (1, 2), (5, 2)]


def _worker(rank: int, world_size: int, cases: list[tuple[int, int]]) -> list[dict]:
    results = []
    for max_prompts, batch_size in cases:
        judge, asr = RecordingJudge(), RecordingTranscriber()
        cb = TTSWinRateCallback(
            baseline_audio=baseline_audio(), baseline_sample_rate=16_000, judge=judge, transcriber=asr,
            max_prompts=max_prompts, synthesis_batch_size=batch_size, normalization=str.lower,
            judge_workers=1, num_table_samples=0,
        )  # fmt: skip
        trainer = types.SimpleNamespace(
            world_size=world_size, global_rank=rank, is_global_zero=rank == 0, loggers=[],
            sanity_checking=False, current_epoch=0,
        )  # fmt: skip
        module = ShardedTTS()
        cb.setup(trainer, module, "fit")
        cb.on_validation_epoch_end(trainer, module)  # the real hook: eval mode, inference_mode, evaluate
        results.append(
            {
                "prompts": [p.text for p in cb.prompts],
                "calls": module.calls,
                "judged": judge.texts,
                "transcribed": asr.count,
                "results": dict(cb.last_results),
                "logged": dict(module.logged),
            }
        )
    return results


def test_shard_prompts_pads_every_rank_to_the_largest_share():
    prompts = TTSWinRateCallback(transcriber=CodeTranscriber(), max_prompts=5).prompts
    idx = [p.index for p in prompts]
    shares = [shard_prompts(prompts, r, 2) for r in range(2)]
    # prompts[r::2], then the share's last prompt repeated up to ceil(5 / 2) = 3
    assert [[p.index for p in s] for s, _ in shares] == [[idx[0], idx[2], idx[4]], [idx[1], idx[3], idx[3]]]
    assert [n for _, n in shares] == [3, 2]
    empty, n = shard_prompts(prompts[:1], 1, 2)  # fewer prompts than ranks: prompt 0 as padding
    assert [p.index for p in empty] == [idx[0]] and n == 0
    assert shard_prompts(prompts, 0, 1) == (prompts, 5)
    for kwargs, match in [
        ({"rank": 2, "world_size": 2}, "rank"),
        ({"rank": 0, "world_size": 0}, "world_size"),
        ({"rank": True, "world_size": 2}, "rank"),
    ]:
        with pytest.raises(ValueError, match=match):
            shard_prompts(prompts, **kwargs)
    with pytest.raises(ValueError, match="at least one prompt"):
        shard_prompts([], 0, 1)


@pytest.mark.ddp
@pytest.mark.timeout(300)
def test_uneven_prompts_same_synthesize_calls_and_same_results_as_one_process():
    single = _worker(0, 1, CASES)
    ranks = run_ddp(_worker, world_size=2, args=(CASES,))
    for case, (n_prompts, batch_size) in enumerate(CASES):
        one = single[case]
        per_rank = [r[case] for r in ranks]
        texts = one["prompts"]
        assert len(texts) == n_prompts
        # every rank made the same number of calls with the same batch sizes: ceil(ceil(n / 2) / batch)
        share = -(-n_prompts // 2)
        sizes = [min(batch_size, share - s) for s in range(0, share, batch_size)]
        for r in per_rank:
            assert [len(c) for c in r["calls"]] == sizes, (case, r["calls"])
        # rank r synthesised its share texts[r::2] first, then padding only
        for rank, r in enumerate(per_rank):
            synthesised = [t for c in r["calls"] for t in c]
            real = texts[rank::2]
            assert synthesised[: len(real)] == real
            pad = real[-1] if real else texts[0]
            assert synthesised[len(real) :] == [pad] * (share - len(real))
        # the padding was never judged nor transcribed: each prompt exactly once over the ranks
        assert sorted(t for r in per_rank for t in r["judged"]) == sorted(texts)
        assert sum(r["transcribed"] for r in per_rank) == n_prompts
        assert one["judged"] == texts and one["transcribed"] == n_prompts
        # the logged WER / win-rate (all keys) are those of one process, on every rank
        assert "val/tts/WinRate" in one["results"] and "val/tts/WER" in one["results"]
        for r in per_rank:
            assert r["results"] == pytest.approx(one["results"], nan_ok=True), case
            assert r["logged"] == pytest.approx(one["logged"], nan_ok=True), case
    # the values themselves, derived by hand for the 3-prompt case (Emotions, Paralinguistics, Complex
    # Pronunciation): the transcriber drops the last word of the Complex Pronunciation prompt only; the judge
    # picks the first clip for Emotions (a win iff the candidate was played first) and the louder clip (the
    # candidate) otherwise
    prompts = TTSWinRateCallback(transcriber=CodeTranscriber(), max_prompts=3).prompts
    assert [p.category for p in prompts] == ["Emotions", "Paralinguistics", "Complex Pronunciation"]
    three = single[0]["results"]
    assert three["val/tts/WER"] == pytest.approx(1 / len(prompts[2].text.split()) / 3)
    emotions_win = float(candidate_position(prompts[0].index, 0) == 1)
    assert three["val/tts/WinRate"] == pytest.approx((2 + emotions_win) / 3)
    assert three["val/tts/emotions/WinRate"] == emotions_win and three["val/tts/synthesis_failed"] == 0
