"""SubjectConsistency (DINO) and BackgroundConsistency (CLIP): backbones, preprocessing, formula, DDP.

Expected values are computed here the way VBench computes them (torchvision transforms on float 0-255
frames, frame-by-frame loops with ``F.cosine_similarity`` and ``max(0, .)``), from the raw outputs of the
same randomly initialised networks; DINO's architecture is checked against timm's ViT and its position-
embedding interpolation against a NumPy bicubic written here. open_clip and timm are imported inside the
tests only, so the spawned DDP workers start quickly.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from metrics.aesthetic import AestheticQuality
from metrics.backbones.aesthetic import aesthetic_head_ref
from metrics.backbones.cache import BackboneRef
from metrics.backbones.clip import CLIPImageEncoder, clip_ref, clip_vbench_preprocess, openai_clip_config
from metrics.backbones.dino import (
    DinoVisionTransformer,
    dino_ref,
    dino_vbench_preprocess,
    interpolate_pos_embed,
)
from metrics.consistency import BackgroundConsistency, SubjectConsistency
from tests.ddp import run_ddp

TINY_DINO = {"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": 32}
# Widths of 64 = one 64-d head per layer, as open_clip's build_model_from_openai_state_dict infers them.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 64, "heads": 1, "layers": 1},
}

# VBench vbench/utils.py: dino_transform(224) and clip_transform(224), applied to float32 0-255 frames.
VBENCH_DINO = transforms.Compose(
    [
        transforms.Resize(size=224, antialias=False),
        transforms.Lambda(lambda x: x.float().div(255.0)),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ]
)
VBENCH_CLIP = transforms.Compose(
    [
        transforms.Resize(224, interpolation=InterpolationMode.BICUBIC, antialias=False),
        transforms.CenterCrop(224),
        transforms.Lambda(lambda x: x.float().div(255.0)),
        transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ]
)


def _videos(b: int, t: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Smooth moving patterns plus noise, uint8 [B, T, 3, H, W]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = torch.rand(b, 1, 3, 1, 1, generator=g) * 6
    steps = torch.arange(t).view(1, t, 1, 1, 1) * 0.7
    pattern = torch.sin(5 * xx + 3 * yy + phase + steps) * 80 + 128
    noise = torch.randint(-40, 40, (b, t, 3, h, w), generator=g)
    return (pattern + noise).clamp(0, 255).to(torch.uint8)


def _vbench_scores(features: list[torch.Tensor]) -> tuple[float, int, float]:
    """VBench's loop over [T, D] frame features: (sum of s_i, number of pairs, per-video mean)."""
    f = F.normalize(torch.stack(features), dim=-1, p=2)
    video_sim = 0.0
    for i in range(1, len(f)):
        sim_pre = max(0.0, F.cosine_similarity(f[i - 1 : i], f[i : i + 1]).item())
        sim_fir = max(0.0, F.cosine_similarity(f[0:1], f[i : i + 1]).item())
        video_sim += (sim_pre + sim_fir) / 2
    return video_sim, len(f) - 1, video_sim / (len(f) - 1)


@pytest.fixture(scope="module")
def tiny_dino() -> BackboneRef:
    return dino_ref(None, **TINY_DINO)


@pytest.fixture(scope="module")
def tiny_clip() -> BackboneRef:
    pytest.importorskip("open_clip")
    return clip_ref(TINY_CLIP, None)


# ------------------------------------------------------------------------------- DINO: interpolation
def _cubic_weight(t: float, a: float = -0.75) -> float:
    t = abs(t)
    if t <= 1:
        return ((a + 2) * t - (a + 3)) * t * t + 1
    if t < 2:
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return 0.0


def _bicubic_matrix(src: int, dst: int, scale_factor: float) -> np.ndarray:
    """[dst, src] weights of a bicubic resample driven by a scale factor (source = (o+0.5)/s - 0.5)."""
    m = np.zeros((dst, src))
    for o in range(dst):
        x = (o + 0.5) / scale_factor - 0.5
        x0 = math.floor(x)
        t = x - x0
        for k, weight in zip(range(x0 - 1, x0 + 3), (t + 1, t, 1 - t, 2 - t)):
            m[o, min(max(k, 0), src - 1)] += _cubic_weight(weight)
    return m


def _dino_pos_embed_numpy(pos: torch.Tensor, height: int, width: int, patch: int) -> np.ndarray:
    """DINO's rule (shortcut only for square inputs with the stored patch count), in float64 NumPy."""
    p = pos[0].double().numpy()
    n = p.shape[0] - 1
    g = round(math.sqrt(n))
    rows, cols = height // patch, width // patch
    if rows * cols == n and height == width:
        return p
    grid = p[1:].reshape(g, g, -1)
    wr = _bicubic_matrix(g, rows, (rows + 0.1) / g)
    wc = _bicubic_matrix(g, cols, (cols + 0.1) / g)
    out = np.einsum("rg,ghd,ch->rcd", wr, grid, wc).reshape(rows * cols, -1)
    return np.concatenate([p[:1], out])


@pytest.mark.parametrize("size", [(224, 224), (224, 388), (240, 240), (224, 239), (400, 224), (50, 85)])
def test_pos_embed_interpolation_matches_independent_bicubic(size):
    pos = torch.randn(1, 1 + 14 * 14, 5, generator=torch.Generator().manual_seed(0))
    got = interpolate_pos_embed(pos, *size, 16)
    expected = _dino_pos_embed_numpy(pos, *size, 16)
    assert got.shape == (1, 1 + (size[0] // 16) * (size[1] // 16), 5)
    np.testing.assert_allclose(got[0].double().numpy(), expected, rtol=1e-4, atol=2e-5)  # float32 vs 64
    if got is not pos:  # a size-based resize (no +0.1 scale factor) is far outside that tolerance
        by_size = F.interpolate(
            pos[:, 1:].reshape(1, 14, 14, 5).permute(0, 3, 1, 2),
            size=(size[0] // 16, size[1] // 16),
            mode="bicubic",
            align_corners=False,
        )
        assert (by_size.permute(0, 2, 3, 1).reshape(1, -1, 5) - got[:, 1:]).abs().max() > 1e-2
    if size == (224, 239):  # same 14 x 14 patch count, but not square: DINO still resamples (+0.1 shift)
        assert not torch.allclose(got, pos)
    if size == (224, 224):
        assert got is pos


# ------------------------------------------------------------------------------- DINO: checkpoint
def _dino_vitb16_layout() -> dict[str, tuple[int, ...]]:
    """Keys/shapes of dino_vitbase16_pretrain.pth as facebookresearch/dino loads it strictly (hubconf.py:
    ``vit_base(patch_size=16, num_classes=0)``; vision_transformer.py: PatchEmbed.proj, cls_token, pos_embed,
    blocks[i].{norm1, attn.qkv (qkv_bias), attn.proj, norm2, mlp.fc1, mlp.fc2}, norm; head = Identity)."""
    d, hidden = 768, 3072
    layout = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, 197, d),
        "patch_embed.proj.weight": (d, 3, 16, 16),
        "patch_embed.proj.bias": (d,),
        "norm.weight": (d,),
        "norm.bias": (d,),
    }
    for i in range(12):
        b = f"blocks.{i}."
        layout.update(
            {
                b + "norm1.weight": (d,),
                b + "norm1.bias": (d,),
                b + "attn.qkv.weight": (3 * d, d),
                b + "attn.qkv.bias": (3 * d,),
                b + "attn.proj.weight": (d, d),
                b + "attn.proj.bias": (d,),
                b + "norm2.weight": (d,),
                b + "norm2.bias": (d,),
                b + "mlp.fc1.weight": (hidden, d),
                b + "mlp.fc1.bias": (hidden,),
                b + "mlp.fc2.weight": (d, hidden),
                b + "mlp.fc2.bias": (d,),
            }
        )
    return layout


@pytest.mark.slow
def test_dino_vitb16_loads_public_layout_strictly_and_matches_timm(tmp_path):
    timm_vit = pytest.importorskip("timm.models.vision_transformer")
    layout = _dino_vitb16_layout()
    g = torch.Generator().manual_seed(1)
    state = {}
    for key, shape in layout.items():
        value = torch.empty(shape).uniform_(-0.035, 0.035, generator=g)
        if key.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
            value += 1.0
        state[key] = value
    path = tmp_path / "dino_vitbase16_pretrain.pth"
    torch.save(state, path)

    ours = DinoVisionTransformer(weights=str(path)).eval()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == layout

    # timm's ViT-B/16 built for a non-square input whose size is not a multiple of 16 (the remainder is
    # dropped), loaded strictly with the same tensors except the position embedding, which the NumPy
    # bicubic above interpolates by DINO's rule: its CLS token must equal ours.
    with torch.device("meta"):
        reference = timm_vit.VisionTransformer(
            img_size=(50, 85),
            patch_size=16,
            embed_dim=768,
            depth=12,
            num_heads=12,
            qkv_bias=True,
            num_classes=0,
            global_pool="token",
        )
    pos = torch.from_numpy(_dino_pos_embed_numpy(state["pos_embed"], 50, 85, 16)).float()[None]
    reference.load_state_dict({**state, "pos_embed": pos}, strict=True, assign=True)
    x = torch.randn(2, 3, 50, 85, generator=g)
    with torch.no_grad():
        got = ours(x)
        torch.testing.assert_close(got, reference.eval()(x), rtol=1e-4, atol=1e-4)
    assert got.shape == (2, 768) and (got[0] - got[1]).abs().max() > 1e-3  # input-dependent features


def test_dino_checkpoint_mismatches_fail_strict_loading(tmp_path):
    state = DinoVisionTransformer(None, **TINY_DINO).state_dict()
    missing = {k: v for k, v in state.items() if k != "norm.bias"}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(RuntimeError, match=r"norm\.bias"):
        DinoVisionTransformer(str(tmp_path / "missing.pth"), **TINY_DINO)
    wrong = {**state, "pos_embed": torch.zeros(1, 10, 32)}
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(RuntimeError, match="pos_embed"):
        DinoVisionTransformer(str(tmp_path / "wrong.pth"), **TINY_DINO)
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")  # unwrapped by the loader
    DinoVisionTransformer(str(tmp_path / "wrapped.pth"), **TINY_DINO)
    with pytest.raises(ValueError, match="smaller than one"):
        DinoVisionTransformer(None, **TINY_DINO)(torch.zeros(1, 3, 8, 32))


# ------------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("size", [(48, 80), (90, 60), (224, 224), (230, 301)])
def test_preprocessing_equals_vbench_torchvision_transforms(size):
    frames = _videos(1, 2, *size, seed=3)[0]
    with torch.no_grad():
        torch.testing.assert_close(
            dino_vbench_preprocess(frames), VBENCH_DINO(frames.float()), rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(
            clip_vbench_preprocess(frames), VBENCH_CLIP(frames.float()), rtol=1e-5, atol=1e-5
        )
        # float [0, 1] input is the same video
        torch.testing.assert_close(
            clip_vbench_preprocess(frames.float() / 255), VBENCH_CLIP(frames.float()), rtol=1e-5, atol=1e-5
        )


# ------------------------------------------------------------------------------- SC / BC formulas
def test_subject_consistency_formula_on_raw_dino_features(tiny_dino):
    first, second = _videos(2, 4, 40, 56, seed=5), _videos(1, 6, 60, 44, seed=6)
    pairs = SubjectConsistency(feature_extractor=tiny_dino, batch_size=3)
    videos = SubjectConsistency(feature_extractor=tiny_dino, aggregation="videos")
    for m in (pairs, videos):
        m.update(first)
        m.update(second)

    net = tiny_dino.get("cpu")
    total, count, per_video = 0.0, 0, []
    with torch.no_grad():
        for video in [*first, *second]:  # VBench: one frame at a time through DINO
            feats = [net(VBENCH_DINO(frame.float())[None])[0] for frame in video]
            s, n, mean = _vbench_scores(feats)
            total, count = total + s, count + n
            per_video.append(mean)
    assert float(pairs.compute()) == pytest.approx(total / count, abs=1e-6)
    assert float(videos.compute()) == pytest.approx(float(np.mean(per_video)), abs=1e-6)
    assert abs(total / count - np.mean(per_video)) > 1e-5  # the two aggregations really differ here


def test_background_consistency_formula_on_raw_clip_features(tiny_clip):
    first, second = _videos(1, 4, 64, 40, seed=7), _videos(2, 3, 36, 50, seed=8)
    bc = BackgroundConsistency(feature_extractor=tiny_clip)
    bc_videos = BackgroundConsistency(feature_extractor=tiny_clip, aggregation="videos", batch_size=2)
    for m in (bc, bc_videos):
        m.update(first)
        m.update(second)

    net = tiny_clip.get("cpu")
    total, count, per_video = 0.0, 0, []
    with torch.no_grad():
        for video in [*first, *second]:  # VBench: the whole video through encode_image at once
            feats = net(VBENCH_CLIP(video.float()))
            s, n, mean = _vbench_scores(list(feats))
            total, count = total + s, count + n
            per_video.append(mean)
    assert float(bc.compute()) == pytest.approx(total / count, abs=1e-6)
    assert float(bc_videos.compute()) == pytest.approx(float(np.mean(per_video)), abs=1e-6)


class _MeanColour(nn.Module):
    """Feature = per-channel mean of the normalised frame (3-d): frames of known colour, known cosines."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _mean_colour(weights):
    return _MeanColour()


def test_first_frame_term_and_clamp_with_controlled_features():
    # After ImageNet normalisation a white frame is positive in every channel and a black one negative:
    # cos(white, black) < 0 is clamped to 0, cos(white, white) = 1.
    ref = BackboneRef("mean_colour_test", _mean_colour, None)
    white, black = 255, 0
    cases = {
        (white, black, white, black): (0.0 + 0.5 + 0.0) / 3,  # i=2: previous 0, first 1
        (white, white, black): (1.0 + 0.0) / 2,
        (white, black, black): (0.0 + 0.5) / 2,  # i=2: previous 1, first 0
    }
    for colours, expected in cases.items():
        video = torch.tensor(colours, dtype=torch.uint8).view(1, -1, 1, 1, 1).expand(1, -1, 3, 20, 30)
        sc = SubjectConsistency(feature_extractor=ref, aggregation="videos")
        sc.update(video.contiguous())
        assert float(sc.compute()) == pytest.approx(expected, abs=1e-12)
    bc = BackgroundConsistency(feature_extractor=ref)
    for colours in cases:
        video = torch.tensor(colours, dtype=torch.uint8).view(1, -1, 1, 1, 1).expand(1, -1, 3, 20, 30)
        bc.update(video.contiguous())
    assert float(bc.compute()) == pytest.approx((0.5 + 1.0 + 0.5) / (3 + 2 + 2), abs=1e-12)


def test_identical_frames_score_one(tiny_dino, tiny_clip):
    frame = _videos(1, 1, 48, 64, seed=9)
    still = frame.expand(2, 5, -1, -1, -1).contiguous()
    sc = SubjectConsistency(feature_extractor=tiny_dino)
    bc = BackgroundConsistency(feature_extractor=tiny_clip)
    sc.update(still)
    bc.update(still.float() / 255)
    assert float(sc.compute()) == pytest.approx(1.0, abs=1e-6)
    assert float(bc.compute()) == pytest.approx(1.0, abs=1e-6)
    changing = _videos(1, 5, 48, 64, seed=10)
    sc.reset()
    sc.update(changing)
    assert float(sc.compute()) < 1.0 - 1e-4


# ------------------------------------------------------------------------------- CLIP: checkpoints
def _openai_style_torchscript(model: nn.Module, path) -> None:
    """Write ``model`` as a TorchScript archive whose state dict has OpenAI's keys: the CLIP parameters
    plus the ``input_resolution`` / ``context_length`` / ``vocab_size`` entries of the released files."""
    mask = model.attn_mask
    del model.attn_mask  # a plain attribute in OpenAI's model, not part of its state dict
    model.attn_mask = mask
    del model.context_length, model.vocab_size
    for name, value in (("input_resolution", 224), ("context_length", 16), ("vocab_size", 100)):
        model.register_buffer(name, torch.tensor(value))
    example = (torch.zeros(1, 3, 224, 224), torch.zeros(1, 16, dtype=torch.long))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(model, example, check_trace=False).save(str(path))


def test_clip_loads_openai_torchscript_and_state_dict_files_strictly(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    torch.manual_seed(3)
    writer = open_clip.CLIP(**TINY_CLIP, quick_gelu=True).eval()
    with torch.no_grad():  # OpenAI's released weights are float16 values
        for param in writer.parameters():
            param.copy_(param.half().float())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = writer.encode_image(x)
    state = {k: v.clone() for k, v in writer.state_dict().items()}
    _openai_style_torchscript(writer, tmp_path / "ViT-tiny.pt")

    scripted = CLIPImageEncoder(str(tmp_path / "ViT-tiny.pt"), arch=TINY_CLIP).eval()
    # open_clip's own OpenAI loader (architecture inferred from the file, as for ViT-B-32.pt) accepts it too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation, inside open_clip
        theirs = open_clip.load_openai_model(str(tmp_path / "ViT-tiny.pt"), precision="fp32", device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(scripted(x), theirs.encode_image(x), rtol=1e-5, atol=1e-6)

    # A plain torch.save'd state dict in the same layout, float16 like OpenAI's: float32 parameters.
    torch.save({k: v.half() for k, v in state.items()}, tmp_path / "tiny_fp16.pt")
    half_file = CLIPImageEncoder(str(tmp_path / "tiny_fp16.pt"), arch=TINY_CLIP).eval()
    assert half_file.visual.conv1.weight.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(half_file(x), expected, rtol=1e-5, atol=1e-6)

    for name, bad in (
        ("missing", {k: v for k, v in state.items() if k != "ln_final.bias"}),
        ("extra", {**state, "visual.extra": torch.zeros(1)}),
        ("shape", {**state, "visual.positional_embedding": torch.zeros(49, 64)}),
    ):
        torch.save(bad, tmp_path / f"{name}.pt")
        with pytest.raises(RuntimeError, match="state_dict"):
            CLIPImageEncoder(str(tmp_path / f"{name}.pt"), arch=TINY_CLIP)
    with pytest.raises(ValueError, match="named `arch`"):
        CLIPImageEncoder("default", arch=TINY_CLIP)


def test_openai_architectures_match_the_released_checkpoint_layout():
    """Shapes that openai-clip / open_clip's build_model_from_openai_state_dict read from ViT-B-32.pt and
    ViT-L-14.pt (vision width = conv1 out channels, patch = conv1 kernel, grid from the 50 / 257 positions,
    embed dim = text_projection columns, 77 x 49408 text)."""
    open_clip = pytest.importorskip("open_clip")
    from open_clip.transformer import LayerNormFp32, QuickGELU

    expected = {
        "ViT-B-32": {
            "visual.conv1.weight": (768, 3, 32, 32),
            "visual.class_embedding": (768,),
            "visual.positional_embedding": (50, 768),
            "visual.proj": (768, 512),
            "visual.transformer.resblocks.11.attn.in_proj_weight": (2304, 768),
            "text_projection": (512, 512),
            "positional_embedding": (77, 512),
            "token_embedding.weight": (49408, 512),
            "ln_final.weight": (512,),
            "logit_scale": (),
        },
        "ViT-L-14": {
            "visual.conv1.weight": (1024, 3, 14, 14),
            "visual.class_embedding": (1024,),
            "visual.positional_embedding": (257, 1024),
            "visual.proj": (1024, 768),
            "visual.transformer.resblocks.23.attn.in_proj_weight": (3072, 1024),
            "text_projection": (768, 768),
            "positional_embedding": (77, 768),
            "token_embedding.weight": (49408, 768),
            "ln_final.weight": (768,),
            "logit_scale": (),
        },
    }
    for arch, shapes in expected.items():
        with torch.device("meta"):
            full = open_clip.CLIP(**openai_clip_config(arch), cast_dtype=torch.float16)
            encoder = CLIPImageEncoder(None, arch=arch)
        state = {k: tuple(v.shape) for k, v in full.state_dict().items()}
        for key, shape in shapes.items():
            assert state[key] == shape, (arch, key)
        layers = {k.split(".")[3] for k in state if k.startswith("visual.transformer.resblocks.")}
        assert len(layers) == (12 if arch == "ViT-B-32" else 24)
        assert isinstance(encoder.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
        assert isinstance(encoder.visual.ln_post, LayerNormFp32)
        assert encoder.embed_dim == shapes["visual.proj"][1]


def test_fp16_path_converts_like_openai_clip(monkeypatch):
    pytest.importorskip("open_clip")
    encoder = CLIPImageEncoder(None, arch=TINY_CLIP, fp16=True).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        full = encoder(x)  # CPU: float32, as openai-clip's clip.load(device="cpu")
    assert encoder.visual.conv1.weight.dtype == torch.float32
    monkeypatch.setattr(CLIPImageEncoder, "use_fp16", lambda self, device: True)  # pretend CUDA
    with torch.no_grad():
        half = encoder(x)
    v = encoder.visual
    assert half.dtype == torch.float32
    for p in (v.conv1.weight, v.proj, v.transformer.resblocks[0].attn.in_proj_weight):
        assert p.dtype == torch.float16
    for p in (v.ln_pre.weight, v.ln_post.bias, v.class_embedding, v.positional_embedding):
        assert p.dtype == torch.float32  # openai-clip's convert_weights leaves these in float32
    torch.testing.assert_close(half, full, rtol=0.05, atol=0.02)
    assert clip_ref("ViT-B-32", fp16=True).name != clip_ref("ViT-B-32").name


def test_missing_open_clip_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # makes `import open_clip` raise ImportError
    with pytest.raises(ImportError, match=r"jwbdh-callbacks\[clip\]"):
        CLIPImageEncoder(None, arch=TINY_CLIP)


# ------------------------------------------------------------------------------- API, errors, state
def test_inputs_are_validated_and_state_is_fixed_size(tiny_dino):
    sc = SubjectConsistency(feature_extractor=tiny_dino)
    with pytest.raises(ValueError, match="`videos` needs at least 2 frame"):
        sc.update(torch.zeros(1, 1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="`videos` must have 5 dimensions"):
        sc.update(torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="`videos` is a float video"):
        sc.update(torch.full((1, 2, 3, 32, 32), 2.0))
    with pytest.raises(ValueError, match="aggregation"):
        SubjectConsistency(feature_extractor=tiny_dino, aggregation="frames")
    with pytest.raises(ValueError, match="batch_size"):
        BackgroundConsistency(feature_extractor=tiny_dino, batch_size=0)
    with pytest.raises(ValueError, match="BackboneRef"):
        SubjectConsistency(feature_extractor=nn.Identity())

    sc.update(torch.zeros(0, 3, 3, 32, 32, dtype=torch.uint8))  # empty batch: nothing added
    with pytest.warns(UserWarning, match="no videos"):
        assert torch.isnan(sc.compute())
    nbytes = lambda: sum(t.numel() * t.element_size() for t in sc.metric_state.values())  # noqa: E731
    before = nbytes()
    sc.update(_videos(1, 3, 32, 32, seed=1))
    sc.update(_videos(2, 2, 32, 48, seed=2))
    assert nbytes() == before
    assert sc.state_dict() == {}  # no backbone weights in metric checkpoints
    assert not sc.is_calibrated
    assert SubjectConsistency().is_calibrated  # registry weights (not loaded until first update)
    assert (SubjectConsistency.higher_is_better, SubjectConsistency.is_differentiable) == (True, False)
    assert (BackgroundConsistency.plot_lower_bound, BackgroundConsistency.plot_upper_bound) == (0.0, 1.0)


# ------------------------------------------------------------------------------------------------ DDP
def _ddp_worker(rank: int, world_size: int, batches: list) -> dict:
    # One process group for SC, BC and AestheticQuality (tests/test_aesthetic.py relies on it). The tiny
    # DINO stands in for CLIP too: the sync of the states does not depend on the network, and the workers
    # then start without importing open_clip.
    ref = dino_ref(None, **TINY_DINO)
    metrics = {
        "sc_pairs": SubjectConsistency(feature_extractor=ref),
        "sc_videos": SubjectConsistency(feature_extractor=ref, aggregation="videos"),
        "bc_pairs": BackgroundConsistency(feature_extractor=ref, batch_size=4),
        "bc_videos": BackgroundConsistency(feature_extractor=ref, aggregation="videos"),
        "aq": AestheticQuality(feature_extractor=ref, head=aesthetic_head_ref(None, in_features=32)),
    }
    for i, videos in enumerate(batches):
        if (i < 2 and i % world_size == rank) or (i >= 2 and rank == 0):  # rank 0 takes more batches
            for m in metrics.values():
                m.update(videos)
    return {k: m.compute() for k, m in metrics.items()}


@pytest.mark.ddp
def test_ddp_uneven_updates_equal_single_process():
    batches = [
        _videos(1, 4, 32, 48, seed=20),
        _videos(2, 2, 40, 40, seed=21),
        _videos(1, 5, 24, 36, seed=22),
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers, so that the float32 backbone features are bitwise equal
    try:
        single = _ddp_worker(0, 1, batches)
    finally:
        torch.set_num_threads(threads)
    assert abs(float(single["sc_pairs"]) - float(single["sc_videos"])) > 1e-6
    for rank_result in run_ddp(_ddp_worker, world_size=2, args=(batches,)):
        for key, value in single.items():
            assert torch.allclose(rank_result[key], value, rtol=1e-9, atol=1e-12), key
