"""Thin event handlers of the vega3d_nb app: each makes one or a few library calls.

Models, caches and per-session state come in as arguments (no module globals); `app.py` lays out the page and wires
these functions to events. Every computation is a library call (pictures in `vega3d_nb.viz`, loading in `vega3d_nb.io`).
"""
from __future__ import annotations
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import pandas as pd
import torch

from vega3d_nb.core import Clip, FeatureGrid, SceneClip, logger
from vega3d_nb.io import IMAGE_EXTS, VIDEO_EXTS, load_clip, sample_clip_paths, save_clip

WEIGHT_LABELS = {'real': 'real weights', 'random-init': 'random weights', 'trained': 'trained here'}
SYNTHETIC_SAMPLE = 'scene_orbit'   # the bundled sample whose scene we can re-render with exact ground truth


# ---------------------------------------------------------------- limits, caches, state
@dataclass
class Limits:
    "What an upload may be: file size, frames and pixels (frames x H x W)."
    max_upload_mb: float = 50.      # size of the uploaded file
    max_frames: int = 32            # frames sampled from a clip
    max_size: int = 256             # shorter side fed to the model, pixels
    max_pixels: int = 32 * 256 * 456  # frames x H x W after resizing
    max_zip_images: int = 256       # images in an uploaded zip
    max_zip_mb: float = 200.        # uncompressed size of those images


class LRU:
    "A small bounded least-recently-used cache with hit/miss counters."
    def __init__(self, maxsize: int = 8):
        self.maxsize, self.data, self.hits, self.misses = maxsize, OrderedDict(), 0, 0

    def get(self, key, make: Callable):
        "The cached value for `key`, else `make()` stored under it (evicting the oldest entry when full)."
        if key in self.data:
            self.hits += 1; self.data.move_to_end(key); return self.data[key]
        self.misses += 1
        value = make()
        self.data[key] = value
        while len(self.data) > self.maxsize: self.data.popitem(last=False)
        return value

    def __contains__(self, key): return key in self.data
    def __len__(self): return len(self.data)
    def clear(self): self.data.clear()


@dataclass
class Session:
    "One browser session: the current clip (and its ground truth when synthetic) plus its feature and PCA caches."
    clip: Optional[Clip] = None
    scene: Optional[SceneClip] = None     # exact ground truth when the clip is a synthetic scene
    name: str = ''
    features: LRU = field(default_factory=lambda: LRU(6))   # (clip, backbone, t, n_noise, seed) -> FeatureSet, all layers
    pca: LRU = field(default_factory=lambda: LRU(16))       # (clip, backbone, layer, n_noise, seed) -> PCAProjection

    _memo: dict = field(default_factory=dict, repr=False)    # content hash and uint8 frames of the current clip

    def require_clip(self) -> Clip:
        if self.clip is None: raise ValueError("No clip loaded yet: upload a video, image or zip of images, or pick a sample, then press Load.")
        return self.clip

    def _of_clip(self, name, make):
        clip = self.require_clip()
        if self._memo.get('clip') is not clip: self._memo = {'clip': clip}
        if name not in self._memo: self._memo[name] = make(clip)
        return self._memo[name]

    @property
    def clip_hash(self) -> str: return self._of_clip('hash', lambda c: c.content_hash)
    @property
    def frames_u8(self) -> np.ndarray: return self._of_clip('u8', lambda c: c.to_uint8())


class BackboneShelf:
    "Loads backbones by registry name on `device` and keeps the last few loaded."
    def __init__(self, device=None, keep: int = 2, loader: Optional[Callable] = None):
        from vega3d_nb.backbones import load_backbone
        self.device, self._load, self._lru = device, loader or load_backbone, LRU(keep)

    def get(self, name: str):
        return self._lru.get(name, lambda: self._load(name, device=self.device))

    def add(self, backbone):
        "Register an already loaded backbone under its name."
        self._lru.data[backbone.name] = backbone


@dataclass
class AppModels:
    "Everything the handlers share across sessions: models, app-wide caches, limits and the scratch folder."
    backbones: BackboneShelf
    default_backbone: str
    workdir: Path                               # scratch files (videos, PLY, CSV, feature cache); removed on exit
    mllm: object = None                         # a vega3d_nb.mllm.FusedMLLM, or None (chat disabled)
    mllm_note: str = ''                         # why there is no chat model, or which one answers
    limits: Limits = field(default_factory=Limits)
    notes: list = field(default_factory=list)   # shown at the top of the page (e.g. random-weight fallbacks)
    probes: LRU = field(default_factory=lambda: LRU(8))   # scene-set depth probes
    sweeps: LRU = field(default_factory=lambda: LRU(4))   # sweep tables
    scene_frames: int = 9                       # the probe's training/test scenes
    scene_size: int = 64
    n_train_scenes: int = 4
    n_test_scenes: int = 2

    @property
    def feature_cache_dir(self) -> Path: return self.workdir / 'features'


# ---------------------------------------------------------------- labels
def backbone_choices(names=None) -> list:
    "Dropdown choices `(label, name)`: every registry name with its weights kind in the label."
    from vega3d_nb.backbones import BACKBONES, list_backbones
    out = []
    for n in names or list_backbones():
        spec = BACKBONES.get(n)
        kind = WEIGHT_LABELS.get(spec.weights, spec.weights) if spec else 'local folder'
        extra = ', needs downloaded weights' if spec is not None and spec.weights == 'real' else ''
        out.append((f'{n} ({kind}{extra})', n))
    return out


def timestep_label(backbone, t: float) -> str:
    "`t` snapped to the backbone's schedule, with sigma and step index."
    return f'**timestep** {backbone.timestep_info(float(t))}'


def backbone_controls(backbone) -> dict:
    "Slider settings for a backbone: timestep range and default, layer range and default."
    lo, hi = backbone.valid_timestep_range
    return dict(t_min=float(np.ceil(lo)), t_max=float(np.floor(hi)), t=float(round(backbone.default_timestep)),
                n_layers=backbone.num_layers, layer=backbone.default_layer,
                label=f'{backbone.name}: {backbone.weights_label}, {backbone.num_layers} blocks, feat_dim {backbone.feat_dim}, on {backbone.device}')


def sample_names() -> list:
    "The bundled samples, the synthetic one (with ground truth) first."
    names = list(sample_clip_paths())
    return sorted(names, key=lambda n: (n != SYNTHETIC_SAMPLE, n))


def sample_label(name: str) -> str:
    return f'{name} (synthetic, with ground truth)' if name == SYNTHETIC_SAMPLE else f'{name} (real video, no ground truth)'


# ---------------------------------------------------------------- input
def check_upload(path, limits: Limits) -> Path:
    "Refuse uploads that are too big or of a kind the app cannot read."
    path = Path(path)
    mb = path.stat().st_size / 2 ** 20
    if mb > limits.max_upload_mb:
        raise ValueError(f"{path.name} is {mb:.1f} MB; uploads are limited to {limits.max_upload_mb:g} MB. Trim or downscale the clip first.")
    ok = VIDEO_EXTS + IMAGE_EXTS + ('.zip',)
    if path.suffix.lower() not in ok:
        raise ValueError(f"{path.name}: unsupported file type {path.suffix or '(none)'}; upload a video ({', '.join(VIDEO_EXTS)}), "
                         f"an image ({', '.join(IMAGE_EXTS)}) or a .zip of images")
    return path


def load_input(models: AppModels, session: Session, upload=None, sample: Optional[str] = None, num_frames: int = 9, size: int = 64) -> Session:
    "Put the uploaded file or the bundled sample, sampled to `num_frames` at `size` (shorter side), into `session` (caches kept)."
    clip, scene, name = _read_input(models, upload, sample, num_frames, size)
    session.clip, session.scene, session.name = clip, scene, name
    return session

def _read_input(models, upload, sample, num_frames, size) -> tuple:
    lim = models.limits
    num_frames, size = int(num_frames), int(size)
    if not 1 <= num_frames <= lim.max_frames: raise ValueError(f"frame count must be between 1 and {lim.max_frames}, got {num_frames}")
    if not 16 <= size <= lim.max_size: raise ValueError(f"resolution must be between 16 and {lim.max_size} pixels, got {size}")
    if upload:
        path = check_upload(upload, lim)
        try: return _read_upload(path, num_frames, size, models)
        except ValueError as e:  # the library names the temp file: show the user's file name instead
            raise type(e)(str(e).replace(str(path), path.name)) from None
    if not sample: raise ValueError("Nothing to load: upload a file or pick a sample.")
    if sample == SYNTHETIC_SAMPLE:
        from vega3d_nb.scenes import sample_scene_clip
        scene = sample_scene_clip(n_frames=num_frames, size=(size, size))
        scene.clip.source = sample
        return scene.clip, scene, sample
    paths = sample_clip_paths()
    if sample not in paths: raise ValueError(f"unknown sample {sample!r}; bundled samples: {', '.join(paths)}")
    return load_clip(paths[sample], num_frames=num_frames, size=size, max_pixels=lim.max_pixels), None, sample


def _read_upload(path: Path, num_frames: int, size: int, models: AppModels) -> tuple:
    lim = models.limits
    is_zip = path.suffix.lower() == '.zip'  # images of a zip may differ in size: square centre crops
    clip = load_clip(path, num_frames=num_frames, size=(size, size) if is_zip else size, center_crop=is_zip, max_pixels=lim.max_pixels,
                     max_zip_images=lim.max_zip_images, max_zip_mb=lim.max_zip_mb, tmp_dir=models.workdir)
    clip.source = path.name
    return clip, None, path.name


def describe_input(session: Session) -> str:
    "One markdown line about the loaded clip."
    c = session.require_clip()
    gt = 'synthetic scene with exact ground truth (depth, poses, correspondences)' if session.scene is not None else 'no ground truth'
    return f'**{session.name}**: {c.num_frames} frames, {c.size[0]}x{c.size[1]} px, {c.fps:.1f} fps, {gt}'


# ---------------------------------------------------------------- pictures
def display_scale(size: tuple, target: int = 256) -> int:
    "Integer upscale so a small frame is big enough to click on."
    return max(1, target // max(size))


# ---------------------------------------------------------------- features
def feature_key(clip_hash: str, backbone, t: float, n_noise: int, seed: int) -> tuple:
    return (clip_hash, backbone.name, backbone.weights_hash, round(backbone.timestep_info(float(t)).t, 4), int(n_noise), int(seed))


def get_features(session: Session, backbone, t: float, n_noise: int = 1, seed: int = 0):
    "The clip's FeatureSet at `t` for every layer: one forward per noise sample, cached per (clip, backbone, t, n_noise, seed)."
    from vega3d_nb.extractor import extract_features
    clip = session.require_clip()
    return session.features.get(feature_key(session.clip_hash, backbone, t, n_noise, seed), lambda: extract_features(
        clip, backbone, timesteps=[float(t)], layers=list(range(backbone.num_layers)), n_noise=int(n_noise), seed=int(seed), progress=False))


def get_grid(session: Session, backbone, t: float, layer: int, n_noise: int = 1, seed: int = 0) -> FeatureGrid:
    return get_features(session, backbone, t, n_noise, seed).get(float(t), int(layer))


@dataclass
class FeatureView:
    "What the Features page shows for one slider position."
    mosaic: np.ndarray        # [H, W, 3] uint8: input frames above their PCA colouring
    pca: np.ndarray           # [T, h, w, 3] float PCA colours on the feature grid
    grid: FeatureGrid
    caption: str
    cached: bool              # the features came from the session cache (no forward ran)


def features_view(session: Session, backbone, t: float, layer: int, n_noise: int = 1, seed: int = 0,
                  fixed_colours: bool = True,  # reuse the PCA fitted at the first timestep for this layer
                 ) -> FeatureView:
    "PCA colouring of the (t, layer) features of every frame, next to the input frames."
    from vega3d_nb.viz import input_vs_pca, pca_rgb
    clip = session.require_clip()
    hits = session.features.hits
    grid = get_grid(session, backbone, t, layer, n_noise, seed)
    pkey = (session.clip_hash, backbone.name, backbone.weights_hash, int(layer), int(n_noise), int(seed))
    proj = session.pca.data.get(pkey) if fixed_colours else None
    rgb, proj = pca_rgb(grid, projection=proj)
    if fixed_colours and pkey not in session.pca: session.pca.get(pkey, lambda: proj)
    cached = session.features.hits > hits
    cap = (f'PCA of {grid.describe()}; grid {grid.grid_size[0]}x{grid.grid_size[1]} per frame, {grid.feat_dim} channels. '
           f'{"Reused cached features (no forward)" if cached else "Ran one forward for all layers at this timestep"}'
           f'{"; colours fitted at the first timestep viewed for this layer" if fixed_colours else ""}.')
    return FeatureView(input_vs_pca(session.frames_u8, rgb), rgb, grid, cap, cached)


def pca_video(session: Session, view: FeatureView, workdir) -> Path:
    "An mp4 of the input and its PCA colouring side by side."
    from vega3d_nb.viz import upsample_nearest
    clip = session.require_clip()
    up = torch.from_numpy(upsample_nearest(view.pca, clip.size)).permute(0, 3, 1, 2).clamp(0, 1)
    both = Clip(torch.cat([clip.frames, up], dim=-1).contiguous(), fps=clip.fps)
    g = view.grid
    return save_clip(both, Path(workdir) / 'videos' / f'pca-{session.clip_hash}-{g.model_id[-20:]}-t{g.timestep:.0f}-l{g.layer}-{g.n_noise}-{g.seed}.mp4'.replace('/', '_'))


def input_video(session: Session, workdir) -> Path:
    "The loaded clip as an mp4 for the player."
    clip = session.require_clip()
    return save_clip(clip, Path(workdir) / 'videos' / f'input-{session.clip_hash}.mp4')


# ---------------------------------------------------------------- depth probe
def scene_sets(models: AppModels) -> tuple:
    "The probe's training and held-out test scenes (disjoint scene ids, cached on disk by the scenes module)."
    from vega3d_nb.scenes import SceneDataset
    kw = dict(n_frames=models.scene_frames, size=(models.scene_size, models.scene_size))
    tr = SceneDataset(models.n_train_scenes, 'train', **kw); te = SceneDataset(models.n_test_scenes, 'test', **kw)
    return [tr[i] for i in range(len(tr))], [te[i] for i in range(len(te))]


@dataclass
class SceneProbe:
    "A depth probe fitted on the training scenes, with held-out scores of it and of the trivial baselines."
    probe: object              # vega3d_nb.probes.DepthProbe
    table: pd.DataFrame        # one row per source: held-out depth metrics
    note: str


def fit_scene_probe(models: AppModels, backbone, t: float, layer: int, n_noise: int = 1, seed: int = 0,
                    progress: Optional[Callable] = None) -> SceneProbe:
    "Fit (or reuse) the linear depth probe on the training scenes at (t, layer) and score it and the baselines on the test scenes."
    from vega3d_nb.extractor import extract_features
    from vega3d_nb.depth_probe import baseline_features, fit_depth_probe, probe_depth_scores
    info = backbone.timestep_info(float(t))
    key = (backbone.name, backbone.weights_hash, round(info.t, 4), int(layer), int(n_noise), int(seed),
           models.scene_frames, models.scene_size, models.n_train_scenes, models.n_test_scenes)
    def make():
        if progress: progress(0.05, desc='rendering scenes')
        train, test = scene_sets(models)
        def feats(clips, what):
            out = []
            for i, c in enumerate(clips):
                if progress: progress(0.1 + 0.7 * (i / len(clips)), desc=f'features of the {what} scenes')
                out.append(extract_features(c.clip, backbone, [info.t], [int(layer)], n_noise=int(n_noise), seed=int(seed),
                                            cache_dir=models.feature_cache_dir, progress=False).get(info.t, int(layer)))
            return out
        ftr, fte = feats(train, 'training'), feats(test, 'test')
        dtr, dte = [c.depth for c in train], [c.depth for c in test]
        if progress: progress(0.85, desc='fitting probes')
        probe = fit_depth_probe(ftr, dtr, seed=int(seed))
        rows = [_score_row(ftr[0].describe(), probe_depth_scores(probe, fte, dte))]
        for b in ('rgb', 'position', 'constant'):
            mk = lambda cs: [baseline_features(b, c.clip, ftr[0].grid_size) for c in cs]
            rows.append(_score_row(f'{b} baseline (no weights)', probe_depth_scores(fit_depth_probe(mk(train), dtr, seed=int(seed)), mk(test), dte)))
        note = (f'Linear probe (closed-form ridge on log-depth, lambda={probe.lam:g}) fitted on {len(train)} training scenes '
                f'(ids {[c.scene_id for c in train]}), scored on {len(test)} held-out test scenes (ids {[c.scene_id for c in test]}), '
                f'{models.scene_frames} frames at {models.scene_size}x{models.scene_size}. Features: {ftr[0].describe()}.')
        return SceneProbe(probe, pd.DataFrame(rows), note)
    return models.probes.get(key, make)


def _score_row(source: str, scores: dict) -> dict:
    r = {'source': source}
    for align, s in scores.items():
        for m in ('delta1', 'abs_rel', 'rmse'):
            r[f'{align}.{m}'] = round(float(s.metrics[m]), 4)
    return r


@dataclass
class DepthView:
    depth_fig: object          # plotly figure: prediction (vs ground truth and error map on synthetic clips)
    cloud_fig: object          # plotly 3D point cloud of the predicted depth
    ply_path: Path
    table: pd.DataFrame        # held-out scores (and this clip's scores when it has ground truth)
    note: str


def depth_view(models: AppModels, session: Session, backbone, t: float, layer: int, n_noise: int = 1, seed: int = 0,
               frame: int = 0, progress: Optional[Callable] = None) -> DepthView:
    "Depth of the current clip from the scene-set probe, its point cloud and PLY; metrics when the clip has ground truth."
    from vega3d_nb.metrics import evaluate_depth
    from vega3d_nb.scenes import intrinsics
    from vega3d_nb.viz import depth_figure, depth_to_point_cloud, point_cloud_figure, save_ply
    clip = session.require_clip()
    if not 0 <= int(frame) < clip.num_frames: raise ValueError(f"frame {frame} is outside the clip's {clip.num_frames} frames")
    sp = fit_scene_probe(models, backbone, t, layer, n_noise, seed, progress)
    if progress: progress(0.9, desc='predicting depth')
    grid = get_grid(session, backbone, t, layer, n_noise, seed)
    pred = sp.probe.predict(grid, clip.size, clip.num_frames)  # [T, H, W]
    f, table = int(frame), sp.table.assign(scored_on='held-out test scenes')
    if session.scene is not None:
        gt = session.scene
        fig = depth_figure(pred[f], gt.depth[f], rgb=clip.frames[f], features=sp.probe, title=f'Linear depth probe, frame {f}')
        row = _score_row(f'{grid.describe()} (this clip)', {a: evaluate_depth(pred, gt.depth, align=a) for a in ('none', 'scale', 'scale_shift')})
        table = pd.concat([pd.DataFrame([dict(row, scored_on='this clip (synthetic ground truth)')]), table], ignore_index=True)
        K, pose = gt.K, gt.poses[f]
    else:
        fig = depth_figure(pred[f], None, rgb=clip.frames[f], title=f'Depth from the scene-set probe, frame {f} (no ground truth)',
                           features=f'probe on {sp.probe.features_desc}; its held-out scores are in the table')
        K, pose = torch.from_numpy(intrinsics(clip.size)), None   # assumed 60 degree field of view
    pcd = depth_to_point_cloud(pred[f], K, pose, rgb=clip.frames[f])
    cloud = point_cloud_figure(pcd, features=sp.probe, title=f'Point cloud from predicted depth, frame {f}'
                               + ('' if session.scene is not None else ' (assumed 60° field of view)'))
    ply = save_ply(pcd, Path(models.workdir) / 'ply' / f'depth-{session.clip_hash}-f{f}.ply')
    return DepthView(fig, cloud, ply, table, sp.note)


# ---------------------------------------------------------------- correspondence
def frame0_image(session: Session) -> np.ndarray:
    "Frame 0, upscaled for clicking."
    from vega3d_nb.viz import mark_points
    clip = session.require_clip()
    return mark_points(session.frames_u8[0], [], display_scale(clip.size))


def click_to_pixel(session: Session, index) -> tuple:
    "A click on the upscaled frame 0 (x, y) as a pixel (x, y) of the clip."
    clip = session.require_clip()
    s = display_scale(clip.size)
    x, y = int(index[0]) // s, int(index[1]) // s
    H, W = clip.size
    if not (0 <= x < W and 0 <= y < H): raise ValueError(f"click at ({x}, {y}) is outside the {W}x{H} frame")
    return x, y


@dataclass
class CorrespondenceView:
    image: np.ndarray          # mosaic: query in frame 0 (yellow), matches (red x) and true positions (green ring)
    table: pd.DataFrame        # per frame: match, truth, error
    summary: str


def correspondence_view(session: Session, backbone, t: float, layer: int, x: int, y: int, n_noise: int = 1, seed: int = 0,
                        alpha: float = 0.10) -> CorrespondenceView:
    "Cosine nearest-neighbour matches of pixel (x, y) of frame 0 in every other frame; truth and PCK on synthetic clips."
    from vega3d_nb.align import temporal_index
    from vega3d_nb.correspondence import evaluate_correspondence, match_correspondences
    from vega3d_nb.scenes import correspondences
    from vega3d_nb.viz import mark_points, tile_frames
    clip = session.require_clip()
    grid = get_grid(session, backbone, t, layer, n_noise, seed)
    T, (H, W) = clip.num_frames, clip.size
    if T < 2: raise ValueError("correspondence needs a clip of at least 2 frames")
    tf = temporal_index(grid.frame_indices, T)
    q = torch.tensor([[float(x), float(y)]])
    frames, s = session.frames_u8, display_scale(clip.size) if max(clip.size) < 128 else 1
    tiles, rows, hits = [mark_points(frames[0], [(x, y, 'yellow', 'dot')], s)], [], []
    for k in range(1, T):
        m = match_correspondences(grid.features[tf[0]], grid.features[tf[k]], q, (H, W))
        u, v = m.uv_b[0].tolist()
        row = dict(frame=k, match_x=round(u, 1), match_y=round(v, 1), cosine=round(float(m.score[0]), 3))
        pts = [(u, v, 'red', 'x')]
        if session.scene is not None:
            uv_b, vis = correspondences(session.scene, 0, k)
            if vis[y, x]:
                gu, gv = (float(a) for a in uv_b[y, x])
                err = float(np.hypot(u - gu, v - gv))
                row.update(true_x=round(gu, 1), true_y=round(gv, 1), error_px=round(err, 1))
                hits.append(err <= alpha * max(H, W)); pts.append((gu, gv, 'lime', 'ring'))
            else: row.update(true_x=None, true_y=None, error_px=None)
        rows.append(row); tiles.append(mark_points(frames[k], pts, s))
    summary = f'Query ({x}, {y}) in frame 0; matches by cosine nearest neighbour on {grid.describe()}.'
    if session.scene is not None:
        if hits: summary += f' This point: PCK@{alpha:.2f} = {np.mean(hits):.2f} over the {len(hits)} frames where it is visible.'
        else: summary += ' This point is not visible (or is sky) in the other frames.'
        cs = evaluate_correspondence(grid, session.scene, gaps=[g for g in (1, 4, 8) if g < T], n_queries=50, seed=int(seed))
        summary += ' Whole clip: ' + ', '.join(f'gap {g}: PCK@{alpha:.2f} = {d[alpha]:.3f} ({cs.n_queries[g]} queries)' for g, d in cs.pck.items()) + '.'
    else: summary += ' No ground truth for this clip (load the synthetic sample to see true matches and PCK).'
    return CorrespondenceView(tile_frames(np.stack(tiles), cols=min(T, 5)), pd.DataFrame(rows), summary)


# ---------------------------------------------------------------- sweep
def parse_numbers(text: str, cast=float) -> list:
    "Comma-separated numbers from a text box."
    try: vals = [cast(v) for v in str(text).replace(';', ',').split(',') if v.strip()]
    except ValueError: raise ValueError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals: raise ValueError("give at least one value")
    return vals


@dataclass
class SweepView:
    depth_fig: object
    pck_fig: object
    csv_path: Path
    table: pd.DataFrame
    cached: bool


def sweep_view(models: AppModels, backbone, timesteps: list, layers: Optional[list] = None, n_seeds: int = 1,
               correspondence: bool = True) -> SweepView:
    "Layer x timestep depth delta1 and PCK heatmaps on the scene set (cached per settings), with the CSV."
    from vega3d_nb.extractor import feature_source
    from vega3d_nb.sweep import save_sweep_csv, sweep, sweep_table
    from vega3d_nb.viz import sweep_heatmap
    layers = backbone.check_layers(list(range(backbone.num_layers)) if layers is None else layers)
    ts = sorted({round(backbone.timestep_info(float(t)).t, 4) for t in timesteps})
    if not 1 <= int(n_seeds) <= 5: raise ValueError(f"seeds must be between 1 and 5, got {n_seeds}")
    key = (backbone.name, backbone.weights_hash, tuple(ts), tuple(layers), int(n_seeds), bool(correspondence),
           models.scene_frames, models.scene_size, models.n_train_scenes, models.n_test_scenes)
    cached = key in models.sweeps
    def make():
        train, test = scene_sets(models)
        return sweep(feature_source(backbone, cache_dir=models.feature_cache_dir), train, test, ts, layers, seeds=list(range(int(n_seeds))),
                     gaps=(1, 4), correspondence=correspondence, n_queries=30, progress=True)
    df = models.sweeps.get(key, make)
    csv = save_sweep_csv(df, Path(models.workdir) / 'sweeps' / f'sweep-{abs(hash(key)) % 10**10}.csv')
    pck_metric = 'pck@0.10.gap1'
    pck_fig = sweep_heatmap(df, pck_metric) if correspondence and pck_metric in df else None
    return SweepView(sweep_heatmap(df, 'none.delta1'), pck_fig, csv, sweep_table(df), cached)


# ---------------------------------------------------------------- fusion gates and chat
def _need_mllm(models: AppModels):
    if models.mllm is None: raise ValueError(f"No chat/fusion model is loaded. {models.mllm_note}")
    return models.mllm


def gates_view(models: AppModels, session: Session, backbone, t: float, layer: int, n_noise: int = 1, seed: int = 0):
    "Gate values of the fusion for the current clip and (t, layer) features, as a heatmap figure and its mean."
    from vega3d_nb.viz import gate_figure
    fused = _need_mllm(models)
    if fused.fusion is None: raise ValueError(f"{fused.describe()} has no fusion module, so there are no gates")
    clip = session.require_clip()
    grid = get_grid(session, backbone, t, layer, n_noise, seed)
    with torch.no_grad(): res = fused.fusion(fused.vlm.visual_tokens(clip).tokens, grid)
    fig = gate_figure(res.gate, f'{fused.describe()}; generative features: {grid.describe()}', mode=res.mode)
    return fig, float(res.gate.mean())


def chat_model_label(models: AppModels) -> str:
    "Which model answers and on what hardware."
    if models.mllm is None: return f'**Chat disabled.** {models.mllm_note}'
    dev = models.mllm.vlm.device
    hw = 'CPU' if dev.type == 'cpu' else f'GPU ({torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev})'
    return f'**Answers come from** {models.mllm.describe()}, running on **{hw}**. {models.mllm_note}'


def chat_stream(models: AppModels, session: Session, message: str, history: list, max_new_tokens: int = 64,
                temperature: float = 0.0) -> Iterator[list]:
    "Stream the answer to `message` about the current clip: yields the whole message list as it grows."
    fused = _need_mllm(models)
    clip = session.require_clip()
    if not message or not str(message).strip(): raise ValueError("The message is empty: type a question about the clip.")
    history = list(history or [])
    msgs = history + [dict(role='user', content=message), dict(role='assistant', content='')]
    answer = ''
    for piece in fused.chat(clip, message, history, max_new_tokens=int(max_new_tokens), temperature=float(temperature)):
        answer += piece
        msgs[-1]['content'] = answer
        yield msgs
    if not answer.strip(): msgs[-1]['content'] = '(the model produced only whitespace or special tokens)'
    yield msgs


def cleanup(workdir):
    "Remove the scratch folder."
    shutil.rmtree(workdir, ignore_errors=True)
