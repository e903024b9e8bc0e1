"""Logging of JWB-DH-V1 results: scalars through ``pl_module.log``, media through the trainer's loggers.

Scalars (``val/jwbdh/{region}/{metric}``) always go through ``LightningModule.log`` so every logger, the
progress bar, ``ModelCheckpoint`` and ``EarlyStopping`` see them. Everything else goes through
:class:`MediaLogger`, which looks at ``trainer.loggers`` and gives each what it supports:

* ``WandbLogger``: a table (our regions x metrics next to the paper's Table 2 rows), one bar chart per
  region against the paper's models, and sample videos (generated | reference, region boxes drawn) encoded
  to mp4 with PyAV (no moviepy needed) plus a still image of their first frame;
* ``TensorBoardLogger``: the bar charts and sample frames as images, the table as markdown text;
* ``CSVLogger`` (and anything with a ``log_dir``): the table as ``jwbdh_table_step{N}.csv`` next to the
  metrics file.

W&B is optional: nothing here imports ``wandb`` unless a ``WandbLogger`` is in use.

Example:
    >>> columns, rows = results_table({"face": {"SSIM": 0.5, "SC": 0.9}}, include_paper=False)
    >>> columns[:3], rows[0][:2]
    (['source', 'region', 'SC'], ['ours', 'face'])
"""

from __future__ import annotations

import csv
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "METRIC_ORDER",
    "PERCENT_METRICS",
    "MediaLogger",
    "log_scalars",
    "paper_table2",
    "results_table",
    "side_by_side",
]

log = logging.getLogger(__name__)

#: Column order of the paper's Table 2.
METRIC_ORDER = ("SC", "BC", "MS", "DD", "AQ", "IQ", "FID", "FVD", "SSIM", "PSNR", "E-FID", "CSIM")
#: VBench dimensions: our metrics return 0-1 (as VBench does); only the paper-comparison table shows percent.
PERCENT_METRICS = frozenset({"SC", "BC", "MS", "DD", "AQ", "IQ"})
LOWER_IS_BETTER = frozenset({"FID", "FVD", "E-FID"})


@lru_cache(maxsize=1)
def paper_table2() -> dict[str, dict[str, dict[str, float]]]:
    """The paper's Table 2 as ``{region: {metric: {model: value}}}`` (VBench dimensions in percent)."""
    text = resources.files("jwbdh_callbacks").joinpath("data/paper_table2.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        region, metric = row.pop("region"), row.pop("metric")
        table.setdefault(region, {})[metric] = {model: float(v) for model, v in row.items()}
    return table


def _display(metric: str, value: float) -> float:
    return value * 100.0 if metric in PERCENT_METRICS else value


def results_table(
    results: Mapping[str, Mapping[str, float]],
    include_paper: bool = True,
    source: str = "ours",
    summaries: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[str], list[list[Any]]]:
    """Rows ``[source, region, *metrics]``.

    One scale everywhere but here: without the paper (``include_paper=False``) every value is on the scale
    the metric returns, VBench dimensions 0-1 as VBench reports them. ``include_paper=True`` builds the
    paper-comparison table: the paper's Table 2 rows follow ours, and the VBench dimensions of EVERY row are
    shown in percent as the paper prints them, their columns labelled ``"SC (%)"``.

    ``summaries`` (``{region: {key: MeanSummary}}``, e.g. ``RegionalSuite.summaries()``) adds three rows per
    region after ours: ``± sem``, ``95% CI low`` and ``95% CI high`` (metrics without a per-video spread,
    pooled FID, are left empty).
    """
    metrics = [m for m in METRIC_ORDER if any(m in r for r in results.values())]
    metrics += sorted({m for r in results.values() for m in r} - set(metrics))
    scale = {m: (100.0 if include_paper and m in PERCENT_METRICS else 1.0) for m in metrics}
    labels = [f"{m} (%)" if scale[m] != 1.0 else m for m in metrics]
    columns = ["source", "region", *labels]
    rows: list[list[Any]] = []
    for region, values in results.items():
        rows.append(
            [source, region, *(_round(float(values[m]) * scale[m]) if m in values else None for m in metrics)]
        )
        spread = (summaries or {}).get(region)
        if spread:
            for label, field in (("± sem", "sem"), ("95% CI low", "ci_low"), ("95% CI high", "ci_high")):
                rows.append(
                    [
                        f"{source} {label}",
                        region,
                        *(
                            _round(getattr(spread[m], field) * scale[m]) if m in spread else None
                            for m in metrics
                        ),
                    ]
                )
    if include_paper:
        paper = paper_table2()
        models = next(iter(next(iter(paper.values())).values())).keys()
        for model in models:
            for region in results:
                if region in paper:
                    rows.append(
                        [f"paper: {model}", region, *(paper[region].get(m, {}).get(model) for m in metrics)]
                    )
    return columns, rows


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def log_scalars(
    pl_module: Any,
    results: Mapping[str, Mapping[str, float]],
    prefix: str = "val/jwbdh",
    summaries: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Log every value as ``{prefix}/{region}/{metric}`` (VBench dimensions 0-1, as VBench reports them).

    With ``summaries`` (``RegionalSuite.summaries()``) the spread of each mean over videos is logged, under
    its own prefixes so the metric keys stay ``{prefix}/{region}/{metric}`` only: ``{prefix}_sem/...``,
    ``{prefix}_ci_low/...`` and ``{prefix}_ci_high/...`` (95% Student-t interval).
    The values come from ``Metric.compute()``, which has already synchronised all ranks, so they are logged
    with ``sync_dist=False`` (a second reduction would be wasted, or wrong for sums).
    """

    def log(name: str, value: float) -> None:
        tensor = torch.as_tensor(float(value), dtype=torch.float32, device=pl_module.device)
        pl_module.log(name, tensor, on_step=False, on_epoch=True, sync_dist=False)

    for region, values in results.items():
        for metric, value in values.items():
            log(f"{prefix}/{region}/{metric}", value)
            spread = (summaries or {}).get(region, {}).get(metric)
            if spread is not None and math.isfinite(spread.sem):  # NaN with < 2 videos: nothing to log
                for field in ("sem", "ci_low", "ci_high"):
                    log(f"{prefix}_{field}/{region}/{metric}", getattr(spread, field))


def side_by_side(
    generated: Tensor,
    reference: Tensor,
    boxes: Mapping[str, Tensor] | None = None,
    valid: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """One uint8 video ``[T, 3, H, 2W]``: generated | reference, with region boxes drawn on both halves.

    Args:
        generated, reference: ``[T, 3, H, W]`` uint8 or float [0, 1] (the reference is resized if needed).
        boxes: ``{region: [T, 4]}`` (x1, y1, x2, y2) pixel boxes, drawn where ``valid[region]`` is True.
    """
    from torchvision.utils import draw_bounding_boxes

    from metrics.functional.resize import resize_opencv_bilinear
    from metrics.video import to_uint8

    gen, ref = to_uint8(generated).cpu(), to_uint8(reference).cpu()
    t = min(gen.shape[0], ref.shape[0])
    gen, ref = gen[:t], ref[:t]
    if ref.shape[-2:] != gen.shape[-2:]:
        ref = resize_opencv_bilinear(ref, tuple(gen.shape[-2:]))
    colours = ["#ff3b30", "#34c759", "#0a84ff", "#ffcc00", "#af52de"]
    frames = []
    for i in range(t):
        halves = []
        for half in (gen[i], ref[i]):
            drawn = half
            for k, (region, region_boxes) in enumerate((boxes or {}).items()):
                ok = valid[region][i] if valid and region in valid else True
                if bool(ok) and i < region_boxes.shape[0]:
                    drawn = draw_bounding_boxes(
                        drawn,
                        region_boxes[i : i + 1].cpu().float(),
                        labels=[region],
                        colors=colours[k % 5],
                        width=1,
                    )
            halves.append(drawn)
        frames.append(torch.cat(halves, dim=-1))
    return torch.stack(frames)


class MediaLogger:
    """Send tables, charts and sample videos to whatever loggers the trainer has (rank 0 only).

    Args:
        loggers: ``trainer.loggers``.
        prefix: key prefix (``"val/jwbdh"``).
    """

    def __init__(self, loggers: Sequence[Any], prefix: str = "val/jwbdh") -> None:
        self.loggers = list(loggers)
        self.prefix = prefix

    @property
    def logs_media(self) -> bool:
        """True if any logger takes sample videos (W&B, TensorBoard): otherwise samples need not be built."""
        # by class name only: touching a logger's attributes (e.g. log_dir) may raise, media must never
        return any(type(logger).__name__ in ("WandbLogger", "TensorBoardLogger") for logger in self.loggers)

    @staticmethod
    def _kind(logger: Any) -> str:
        name = type(logger).__name__
        if name == "WandbLogger":
            return "wandb"
        if name == "TensorBoardLogger":
            return "tensorboard"
        return "files" if getattr(logger, "log_dir", None) else "none"

    def log_results(self, results: Mapping[str, Mapping[str, float]], step: int, tag: str = "") -> None:
        """Paper-comparison table + per-region bar charts; ``tag`` (e.g. "smoke: uncalibrated") in titles."""
        columns, rows = results_table(results)
        for logger in self.loggers:
            try:
                kind = self._kind(logger)
                if kind == "wandb":
                    logger.log_table(key=f"{self.prefix}/table", columns=columns, data=rows, step=step)
                    charts = self._bar_charts(results, tag)
                    if charts:
                        logger.log_image(key=f"{self.prefix}/vs_paper", images=charts, step=step)
                elif kind == "tensorboard":
                    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
                    body = "\n".join("| " + " | ".join(str(v) for v in row) + " |" for row in rows)
                    logger.experiment.add_text(f"{self.prefix}/table", header + body, global_step=step)
                    for region, fig in zip(results, self._figures(results, tag), strict=False):
                        logger.experiment.add_figure(
                            f"{self.prefix}/{region}/vs_paper", fig, global_step=step
                        )
                elif kind == "files":
                    path = os.path.join(logger.log_dir, f"jwbdh_table_step{step}.csv")
                    os.makedirs(logger.log_dir, exist_ok=True)
                    with open(path, "w", newline="") as fh:
                        writer = csv.writer(fh)
                        writer.writerow(columns)
                        writer.writerows(rows)
            except Exception as err:  # media must never stop training
                log.warning("jwbdh: could not log the results table to %s: %s", type(logger).__name__, err)

    def log_samples(
        self,
        videos: Sequence[Tensor],
        step: int,
        fps: float = 8.0,
        caption: str = "generated | reference",
    ) -> None:
        """Log side-by-side sample videos (each uint8 ``[T, 3, H, W]``, e.g. from :func:`side_by_side`)."""
        if not videos:
            return
        for logger in self.loggers:
            try:
                kind = self._kind(logger)
                if kind == "wandb":
                    self._wandb_videos(logger, videos, step, fps, caption)
                elif kind == "tensorboard":
                    for i, video in enumerate(videos):
                        logger.experiment.add_images(
                            f"{self.prefix}/sample{i}",
                            video[:: max(1, video.shape[0] // 4)],
                            global_step=step,
                        )
            except Exception as err:  # media must never stop training
                log.warning("jwbdh: could not log sample videos to %s: %s", type(logger).__name__, err)

    def _wandb_videos(
        self, logger: Any, videos: Sequence[Tensor], step: int, fps: float, caption: str
    ) -> None:
        import wandb

        from metrics.video import write_video

        media_dir = os.path.join(
            getattr(logger.experiment, "dir", None) or tempfile.gettempdir(), "jwbdh_media"
        )
        os.makedirs(media_dir, exist_ok=True)
        clips, stills = [], []
        for i, video in enumerate(videos):
            path = os.path.join(media_dir, f"sample{i}_step{step}.mp4")
            write_video(path, video, fps=fps)
            clips.append(wandb.Video(path, caption=caption, format="mp4"))
            stills.append(video[0].permute(1, 2, 0).numpy())
        logger.experiment.log({f"{self.prefix}/samples": clips, "trainer/global_step": step})
        logger.log_image(
            key=f"{self.prefix}/sample_frames", images=stills, step=step, caption=[caption] * len(stills)
        )

    def _figures(self, results: Mapping[str, Mapping[str, float]], tag: str) -> list[Any]:
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            return []
        paper = paper_table2()
        figures = []
        for region, values in results.items():
            metrics = [m for m in METRIC_ORDER if m in values and region in paper and m in paper[region]]
            if not metrics:
                continue
            models = list(paper[region][metrics[0]].keys())
            fig, axes = plt.subplots(1, len(metrics), figsize=(2.0 * len(metrics), 2.6), squeeze=False)
            for ax, metric in zip(axes[0], metrics, strict=True):
                names = ["ours", *models]
                heights = [
                    _display(metric, float(values[metric])),
                    *(paper[region][metric][m] for m in models),
                ]
                ax.bar(range(len(names)), heights, color=["#d62728"] + ["#7f7f7f"] * len(models))
                ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
                arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
                ax.set_title(f"{metric} {arrow}", fontsize=8)
                ax.tick_params(axis="y", labelsize=6)
            fig.suptitle(f"{region}: ours vs JWB-DH-V1 Table 2 {tag}".strip(), fontsize=9)
            fig.tight_layout()
            figures.append(fig)
        return figures

    def _bar_charts(self, results: Mapping[str, Mapping[str, float]], tag: str) -> list[Any]:
        import numpy as np

        images = []
        for fig in self._figures(results, tag):
            fig.canvas.draw()
            images.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
            import matplotlib.pyplot as plt

            plt.close(fig)
        return images
