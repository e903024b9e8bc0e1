"""Speed benchmarks: our code against a baseline measured in the same process, reported as ratios.

Run ``python -m benchmarks [--quick] [--check] [--json OUT] [--only NAME ...] [--thresholds FILE]``
(``--list`` names the benchmarks). Each benchmark times our code and a baseline on the same inputs,
interleaved over several rounds (median and min/max spread), reports ``baseline / ours`` (> 1: we are faster)
or an overhead / growth factor, and checks that both sides give the same numbers within a stated tolerance:

================== ========================================================== =============================
name               ours vs baseline                                           numbers must agree to
================== ========================================================== =============================
frechet_pooled     FrechetDistance.compute (cold, cached reference factor)    1e-6 relative
                   vs torchmetrics FrechetInceptionDistance.compute, d=2048
frechet_per_video  batched exact low-rank per-video Fréchet vs np.cov +       1e-6 relative
                   scipy.linalg.sqrtm per 16-frame pair, d=2048
ssim               ssim_frames (uint8: exact integer box sums, cache-sized    1e-9 absolute
                   bands) vs skimage per frame
edges              torch OpenCV-exact gray + Canny vs cv2 per frame; also     identical pixels
                   the default backend="auto" (OpenCV itself on a CPU)
crops              region_videos (torch, and the default "auto") vs numpy     identical pixels
                   slice + cv2.resize per frame
pipeline           RegionalSuite (FID, E-FID, FVD, SSIM, PSNR, CSIM) at fp32   FID/E-FID 1e-5, FVD 1e-4
                   and bf16 vs FID_calculate.py's loop (reference_scripts),   relative (bf16: 5e-2),
                   real Inception-v3 + I3D, random init; + second evaluation  pixel metrics 1e-9 absolute
vbench             the six VBench metrics vs VBench v0.1.5's per-video loops  1e-6 (CPU fp32)
                   (vbench_reference), real DINO/CLIP/AMT-S/RAFT/MUSIQ
callback_overhead  validation epoch (25-step DDIM avatar sampler) with        every region/metric logged
                   JWBDHCallback(preset="smoke") vs without (overhead         and finite
                   fraction); also callback time / one-forward-pass epoch
memory             state bytes, retained and peak memory after N vs 10N       compute() not NaN
                   updates of every metric (growth factor, 1 = flat)
================== ========================================================== =============================

``--quick`` uses small sizes (a few minutes on 2 CPU cores; the test suite runs the light ones, ``.ci/run``
the pipeline's); the full run uses the sizes of DESIGN s7
(d=2048, 512x512 frames). The device is CUDA when available, else the CPU (``--device`` overrides).
``--check`` compares every ratio with ``benchmarks/thresholds.json`` (documented there) and exits 1 on a
regression, a correctness mismatch or a crash. ``--json`` writes every measurement, including per-stage and
per-metric time breakdowns.

Modules: ``common`` (timing, results, thresholds, table), ``data`` (rendered avatar inputs),
``frechet_bench``, ``frames_bench``, ``pipeline_bench`` + ``reference_scripts``, ``vbench_bench`` +
``vbench_reference``, ``callback_bench``, ``memory_bench``; ``profile``
(``python -m benchmarks.profile``: absolute frames/s per metric and for the whole suite on one device, with
and without cached reference statistics; not a regression check).
"""
