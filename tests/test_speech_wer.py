"""WordErrorRate against jiwer (an independent implementation), normalisation, transcribers and DDP."""

from __future__ import annotations

import math
import pickle
import sys
import types

import jiwer
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import metrics.functional.speech as fs
from metrics.functional.speech import (
    emergent_normalize,
    get_normalizer,
    normalize_texts,
    word_edit_counts,
    word_error_rate,
)
from metrics.speech import WinRate, WordErrorRate
from metrics.transcribers import WhisperTranscriber, transcribe_with_retries

try:
    from tests.ddp import run_ddp
except ImportError:  # pragma: no cover - plain `pytest` without the repo root on sys.path
    from ddp import run_ddp


def jiwer_norm(text: str) -> str:
    """The test's own normalisation, straight from jiwer's transform (not through our code)."""
    return " ".join(jiwer.wer_standardize(text)[0])


REFS = [
    "The quick brown fox jumps over the lazy dog.",
    "I can't believe it's already Friday!",
    "",  # empty reference, empty hypothesis
    "",  # empty reference, words inserted
    "Nothing was transcribed here",  # empty hypothesis
    "one two three",
]
HYPS = [
    "the quick brown fox jumped over a lazy dog",
    "I cannot believe it is already friday",
    "",
    "uh hello there",
    "",
    "one three three four",
]


def test_counts_corpus_and_mean_wer_equal_jiwer_including_empty_strings():
    refs = [jiwer_norm(r) for r in REFS]
    hyps = [jiwer_norm(h) for h in HYPS]
    counts = word_edit_counts(refs, hyps)
    out = jiwer.process_words(refs, hyps)
    assert counts.sum(0).tolist() == [out.hits, out.substitutions, out.deletions, out.insertions]

    metric = WordErrorRate(normalization="standardize")
    metric.update(REFS, HYPS)
    res = metric.compute()
    assert res["wer"].item() == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    per_utt = [jiwer.wer(r, h) for r, h in zip(refs, hyps)]  # jiwer: empty ref -> number of insertions
    assert per_utt[2] == 0 and per_utt[3] == 3 and per_utt[4] == 1
    assert res["wer_utterance_mean"].item() == pytest.approx(sum(per_utt) / len(per_utt), abs=1e-12)
    assert res["utterances"].item() == 6 and res["asr_failed"].item() == 0
    assert res["insertions"].item() == out.insertions


def test_all_empty_references_follow_jiwer():
    metric = WordErrorRate(normalization="jiwer")
    metric.update(["", " "], ["a b", ""])
    assert metric.compute()["wer"].item() == jiwer.wer(["", ""], ["a b", ""]) == 2
    metric.reset()
    metric.update([""], [""])
    assert metric.compute()["wer"].item() == 0.0


words = st.lists(st.sampled_from(["a", "b", "c", "dd", "e"]), max_size=6).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(words, words), min_size=1, max_size=6))
def test_random_pairs_match_jiwer(pairs):
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    metric = WordErrorRate(normalization="jiwer")
    for r, h in pairs:  # one update per utterance accumulates like a single call
        metric.update([r], [h])
    res = metric.compute()
    assert res["wer"].item() == pytest.approx(float(jiwer.wer(refs, hyps)), abs=1e-12)
    expected_mean = sum(float(jiwer.wer(r, h)) for r, h in pairs) / len(pairs)
    assert res["wer_utterance_mean"].item() == pytest.approx(expected_mean, abs=1e-12)
    assert word_error_rate(refs, hyps).item() == pytest.approx(float(jiwer.wer(refs, hyps)), abs=1e-12)


def test_per_category_breakdown():
    cats = ["Emotions", "Questions", "Emotions", "Pronunciation", "Questions", "Emotions"]
    metric = WordErrorRate(
        categories=["Emotions", "Questions", "Pronunciation", "Foreign Words"], normalization=jiwer_norm
    )
    metric.update(REFS[:3], HYPS[:3], categories=cats[:3])
    metric.update(REFS[3:], HYPS[3:], categories=cats[3:])
    res = metric.compute()
    for cat in ["Emotions", "Questions", "Pronunciation"]:
        r = [jiwer_norm(x) for x, c in zip(REFS, cats) if c == cat]
        h = [jiwer_norm(x) for x, c in zip(HYPS, cats) if c == cat]
        assert res[f"{cat}/wer"].item() == pytest.approx(jiwer.wer(r, h), abs=1e-12)
        mean = sum(jiwer.wer(a, b) for a, b in zip(r, h)) / len(r)
        assert res[f"{cat}/wer_utterance_mean"].item() == pytest.approx(mean, abs=1e-12)
        assert res[f"{cat}/utterances"].item() == len(r)
    assert math.isnan(res["Foreign Words/wer"].item())  # no utterance in this category
    assert res["Foreign Words/utterances"].item() == 0


def test_emergent_normalisation_matches_hand_derived_strings():
    pytest.importorskip("whisper_normalizer")
    cases = {
        "Hello, Mr. Smith! It's <|en|> twenty dollars... uh": "hello mister smith it is $20",
        "Totals $1,249.99, due March 3rd, 2026.": "totals $1249.99 due march 3rd 2026",
        "Ugh, Mondays. Hmm... maybe coffee will help!": "ugh mondays maybe coffee will help",
        "I CAN'T believe — colour (really)?": "i can not believe color",
        "Wow... NO WAY!!! ...": "wow no way",  # the normaliser leaves a lone '.': a punctuation-only token
    }
    for raw, expected in cases.items():
        assert emergent_normalize(raw) == expected
    metric = WordErrorRate(normalization="emergent")
    refs, hyps = (
        list(cases),
        ["hello mister smith it is twenty dollars", "", "ugh mondays maybe coffee", "x", "wow"],
    )
    metric.update(refs, hyps)
    nr = [emergent_normalize(x) for x in refs]
    nh = [emergent_normalize(x) for x in hyps]
    res = metric.compute()
    assert res["wer"].item() == pytest.approx(jiwer.wer(nr, nh))
    assert res["wer_utterance_mean"].item() == pytest.approx(sum(jiwer.wer(a, b) for a, b in zip(nr, nh)) / 5)


def test_emergent_normalisation_missing_dependency_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "whisper_normalizer", None)
    monkeypatch.setitem(sys.modules, "whisper_normalizer.english", None)
    monkeypatch.setitem(sys.modules, "whisper", None)
    monkeypatch.setitem(sys.modules, "whisper.normalizers", None)
    fs._whisper_english_normalizer.cache_clear()
    try:
        with pytest.raises(ImportError, match=r'pip install "jwbdh-callbacks\[tts\]"'):
            get_normalizer("emergent")
        with pytest.raises(ImportError, match="whisper-normalizer"):
            WordErrorRate(normalization="emergent")
    finally:
        fs._whisper_english_normalizer.cache_clear()


def test_other_normalisations():
    assert normalize_texts(["  A  b "], "jiwer") == ["A b"]
    assert normalize_texts(["Don't [noise] STOP"], "standardize") == ["do not stop"]
    assert normalize_texts(["Keep  As Is"], "none") == ["Keep  As Is"]
    assert normalize_texts("X", str.lower) == ["x"]


def test_metrics_and_transcriber_pickle():
    for norm in ("jiwer", "standardize", "none"):
        metric = pickle.loads(pickle.dumps(WordErrorRate(categories=["A"], normalization=norm)))
        metric.update(["a b"], ["a"], categories="A")
        assert metric.compute()["wer"].item() == 0.5
    asr = pickle.loads(pickle.dumps(WhisperTranscriber("openai/whisper-tiny", device="cpu")))
    assert asr.model_name == "openai/whisper-tiny" and asr._model is None


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m.update(["a", "b"], ["a"]), "hypotheses"),
        (lambda m: m.update(["a"], [3]), "hypotheses"),
        (lambda m: m.update([1], ["a"]), "references"),
        (lambda m: m.update(["a"], ["a"], categories=["Nope"]), "categories"),
        (lambda m: m.update(["a"], ["a"]), "categories is required"),
        (lambda m: m.update(["a"], ["a"], categories=["Emotions", "Emotions"]), "one entry per sample"),
        (lambda m: m.update(["a"]), "exactly one of"),
        (lambda m: m.update(["a"], audio=[torch.zeros(10)], sample_rate=16000), "transcriber"),
    ],
)
def test_bad_update_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call(WordErrorRate(categories=["Emotions"], normalization="jiwer"))


def test_bad_constructor_inputs():
    with pytest.raises(ValueError, match="normalization"):
        WordErrorRate(normalization="lowercase")
    with pytest.raises(ValueError, match="unique"):
        WordErrorRate(categories=["A", "A"], normalization="jiwer")
    with pytest.raises(ValueError, match="categories"):
        WordErrorRate(categories="Emotions", normalization="jiwer")
    with pytest.raises(ValueError, match="categories were given"):
        WordErrorRate(normalization="jiwer").update(["a"], ["a"], categories=["x"])
    with pytest.raises(ValueError, match="same length"):
        word_edit_counts(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        word_error_rate([], [])


# ------------------------------------------------------------------------------------------------ audio + ASR
class CodeTranscriber:
    """Reads back the sentence whose index is encoded in the first sample; fails on selected indices."""

    def __init__(self, texts, fail=(), flaky=()):
        self.texts, self.fail, self.flaky, self.calls = texts, set(fail), set(flaky), 0

    def transcribe(self, waveforms, sample_rate):
        self.calls += 1
        out = []
        for w in waveforms:
            i = round(float(w[0]) * 100)
            if i in self.fail or (i in self.flaky and self.calls == 1):
                raise RuntimeError(f"ASR crashed on {i}")
            out.append(self.texts[i])
        return out


def coded(i: int) -> torch.Tensor:
    w = torch.zeros(800)
    w[0] = i / 100
    return w


def test_audio_path_with_failing_transcriber_counts_failures():
    refs = ["a b c", "d e", "f g h i"]
    asr = CodeTranscriber(["a b x", "d e", "f g h i"], fail={2}, flaky={1})
    metric = WordErrorRate(categories=["Emotions", "Questions"], normalization="jiwer", transcriber=asr)
    metric.update(
        refs,
        audio=[coded(0), coded(1), coded(2)],
        sample_rate=16_000,
        categories=["Emotions", "Emotions", "Questions"],
    )
    res = metric.compute()
    assert res["asr_failed"].item() == 1 and res["Questions/asr_failed"].item() == 1
    assert res["utterances"].item() == 2  # the failed one is left out of WER
    assert res["wer"].item() == pytest.approx(jiwer.wer(refs[:2], ["a b x", "d e"]))
    assert math.isnan(res["Questions/wer"].item())
    # None hypotheses mean the same thing when transcripts are given directly
    m2 = WordErrorRate(normalization="jiwer")
    m2.update(refs, ["a b x", "d e", None])
    assert m2.compute()["asr_failed"].item() == 1


def test_transcribe_with_retries():
    asr = CodeTranscriber(["zero", "one", "two"], fail={1}, flaky={2})
    out = transcribe_with_retries(asr, [coded(0), coded(1), coded(2)], 16_000, max_attempts=2, backoff=0.0)
    assert out == ["zero", None, "two"]
    assert transcribe_with_retries(asr, [], 16_000) == []
    with pytest.raises(ValueError, match="max_attempts"):
        transcribe_with_retries(asr, [coded(0)], 16_000, max_attempts=0)


def test_whisper_transcriber_missing_packages_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.setitem(sys.modules, "whisper", None)
    with pytest.raises(ImportError, match=r'pip install "jwbdh-callbacks\[tts\]"'):
        WhisperTranscriber("openai/whisper-tiny", device="cpu").transcribe([torch.zeros(1600)], 16_000)
    with pytest.raises(ImportError, match="openai-whisper"):
        WhisperTranscriber("tiny", backend="openai-whisper", device="cpu").transcribe(
            [torch.zeros(1600)], 16_000
        )
    with pytest.raises(ValueError, match="backend"):
        WhisperTranscriber(backend="nemo")


def test_whisper_transcriber_transformers_call(monkeypatch):
    """transformers path with a stand-in module: 16 kHz input, English, transcribe, timestamps, stripped."""
    calls = {}

    class Features(dict):
        pass

    class FakeProcessor:
        @classmethod
        def from_pretrained(cls, name):
            calls["processor"] = name
            return cls()

        def __call__(self, array, sampling_rate, return_tensors, **kw):
            calls.setdefault("proc", []).append((len(array), sampling_rate, kw))
            frames = 3000 if "truncation" not in kw else max(1, len(array) // 160)
            return Features(input_features=torch.zeros(1, 80, frames), attention_mask=torch.ones(1, frames))

        def batch_decode(self, ids, skip_special_tokens):
            assert skip_special_tokens
            return ["  hello there  "]

    class FakeModel:
        @classmethod
        def from_pretrained(cls, name, torch_dtype):
            calls["model"] = (name, torch_dtype)
            return cls()

        def to(self, device):
            return self

        def eval(self):
            return self

        def generate(self, features, attention_mask, language, task, return_timestamps):
            calls["generate"] = (tuple(features.shape), language, task, return_timestamps)
            return torch.zeros(1, 4, dtype=torch.long)

    fake = types.ModuleType("transformers")
    fake.WhisperProcessor = FakeProcessor
    fake.WhisperForConditionalGeneration = FakeModel
    monkeypatch.setitem(sys.modules, "transformers", fake)
    asr = WhisperTranscriber("openai/whisper-large-v3", device="cpu")
    out = asr.transcribe([torch.zeros(24_000), torch.zeros(2, 48_000)], 24_000)
    assert out == ["hello there", "hello there"]
    assert calls["model"] == ("openai/whisper-large-v3", torch.float32)
    first_len, rate, kw = calls["proc"][0]
    assert (first_len, rate) == (16_000, 16_000)  # 1 s at 24 kHz resampled to 16 kHz
    assert kw == {"truncation": False, "padding": "longest", "return_attention_mask": True}
    assert calls["proc"][1][2] == {"return_attention_mask": True}  # short-form fallback to the 30 s window
    assert calls["proc"][2][0] == 32_000  # stereo 2 s clip mixed to mono
    assert calls["generate"] == ((1, 80, 3000), "english", "transcribe", True)


# ------------------------------------------------------------------------------------------------------ DDP
DDP_DATA = {
    0: (
        ["a b c d", "e f g", "h i"],
        ["a x c d", "e f g h", ""],
        ["Emotions", "Questions", "Emotions"],
        ["win", "tie", "invalid"],
        ["Emotions", "Questions", "Emotions"],
    ),
    # rank 1 has no "Questions" utterance and a different number of updates
    1: (
        ["j k l", "", "m n o p q"],
        ["j k", "r s", "m n o p q"],
        ["Emotions", "Emotions", "Emotions"],
        ["loss", "win", "win", "tie", "loss"],
        ["Emotions"] * 5,
    ),
}
CATS = ["Emotions", "Questions"]


def _ddp_worker(rank: int, world_size: int) -> dict:
    refs, hyps, cats, outcomes, ocats = DDP_DATA[rank]
    wer = WordErrorRate(categories=CATS, normalization="jiwer")
    for i in range(len(refs)):  # uneven numbers of update() calls across ranks
        wer.update([refs[i]], [hyps[i]], categories=[cats[i]])
    wr = WinRate(categories=CATS)
    wr.update(outcomes, categories=ocats)
    return {
        "wer": {k: v.item() for k, v in wer.compute().items()},
        "wr": {k: v.item() for k, v in wr.compute().items()},
    }


@pytest.mark.ddp
def test_ddp_two_processes_equal_single_process():
    results = run_ddp(_ddp_worker, world_size=2)
    wer = WordErrorRate(categories=CATS, normalization="jiwer")
    wr = WinRate(categories=CATS)
    for rank in (0, 1):
        refs, hyps, cats, outcomes, ocats = DDP_DATA[rank]
        wer.update(refs, hyps, categories=cats)
        wr.update(outcomes, categories=ocats)
    single_wer = {k: v.item() for k, v in wer.compute().items()}
    single_wr = {k: v.item() for k, v in wr.compute().items()}
    all_refs = DDP_DATA[0][0] + DDP_DATA[1][0]
    all_hyps = DDP_DATA[0][1] + DDP_DATA[1][1]
    assert single_wer["wer"] == pytest.approx(jiwer.wer(all_refs, all_hyps))
    for res in results:
        assert res["wer"] == pytest.approx(single_wer, nan_ok=True)
        assert res["wr"] == pytest.approx(single_wr, nan_ok=True)
    assert results[0]["wr"]["Emotions/valid"] == 6 and results[1]["wr"]["invalid"] == 1


def test_speech_package_exports_what_the_old_module_did():
    """``metrics.speech`` became a package: its old names are the objects of the new submodules."""
    import metrics
    import metrics.speech as speech
    from metrics.speech import categories, judging, wer, winrate

    assert {"Judgement", "Outcome", "WinRate", "WordErrorRate", "judge_candidate"} <= set(speech.__all__)
    assert speech.WordErrorRate is wer.WordErrorRate is metrics.WordErrorRate
    assert speech.WinRate is winrate.WinRate is metrics.WinRate
    assert speech.judge_candidate is winrate.judge_candidate and speech.Judgement is winrate.Judgement
    assert speech.Outcome is fs.Outcome and speech.Verdict is judging.Verdict
    with pytest.raises(ValueError, match="unique"):
        categories.check_categories(["Emotions", "Emotions"])
    with pytest.raises(ValueError, match=r"categories\[1\] must be one of"):
        categories.category_index(("Emotions",), ["Emotions", "Questions"], 2, torch.device("cpu"))
