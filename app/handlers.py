"""Thin event handlers of the vega3d_nb app: each makes one library call, mostly to `vega3d_nb.explorer(_probes)`.

Models, the explorer's workspace and per-session state come in as arguments (no module globals); `app.py` lays out
the page and wires these functions to events.
"""
from __future__ import annotations
import math, shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch

from vega3d_nb import explorer as E
from vega3d_nb import explorer_probes as EP
from vega3d_nb.core import logger, weights_label
from vega3d_nb.explorer import LRU, SYNTHETIC_SAMPLE, Limits, SceneSet, Workspace, sample_names
from vega3d_nb.explorer_probes import display_scale
from vega3d_nb.io import IMAGE_EXTS, VIDEO_EXTS
from vega3d_nb.mosaic import mark_points

NO_CLIP = "No clip loaded yet: upload a video, image or zip of images, or pick a sample, then press Load."


@dataclass
class Session:
    "One browser session: the clip it loaded (an explorer.ClipInput, with ground truth when synthetic), if any."
    input: Optional[E.ClipInput] = None

    @property
    def loaded(self) -> E.ClipInput:
        if self.input is None: raise ValueError(NO_CLIP)
        return self.input

    clip = property(lambda self: self.input and self.input.clip)
    scene = property(lambda self: self.input and self.input.scene)
    name = property(lambda self: self.input.name if self.input else '')


class BackboneShelf:
    "Loads backbones by registry name on `device` and keeps the last few loaded."
    def __init__(self, device=None, keep: int = 2, loader: Optional[Callable] = None):
        from vega3d_nb.backbones import load_backbone  # the backbones load in main(), not when the app is imported
        self.device, self._load, self._lru = device, loader or load_backbone, LRU(keep)

    def get(self, name: str):
        return self._lru.get(name, lambda: self._load(name, device=self.device))

    def add(self, backbone):
        "Register an already loaded backbone under its name."
        self._lru.put(backbone.name, backbone)


@dataclass
class AppModels:
    "Everything the handlers share across sessions: models, the explorer's workspace, limits and page notes."
    backbones: BackboneShelf
    default_backbone: str
    workdir: Path                               # scratch files (videos, PLY, CSV, feature cache); removed on exit
    mllm: object = None                         # a vega3d_nb.mllm.FusedMLLM, or None (chat disabled)
    mllm_note: str = ''                         # why there is no chat model, or which one answers
    limits: Limits = field(default_factory=Limits)
    notes: list = field(default_factory=list)   # shown at the top of the page (e.g. random-weight fallbacks)
    scenes: SceneSet = field(default_factory=SceneSet)   # the depth probe's training and test scenes
    workspace: Workspace = field(init=False)    # the explorer's scratch folder, scene set and cache

    def __post_init__(self): self.workspace = Workspace(Path(self.workdir), self.scenes)


# ---------------------------------------------------------------- labels
def backbone_choices(names=None) -> list:
    "Dropdown choices `(label, name)`: every registry name with its weights kind in the label."
    from vega3d_nb.backbones import BACKBONES, list_backbones
    out = []
    for n in names or list_backbones():
        spec = BACKBONES.get(n)
        kind = weights_label(spec.weights) if spec else 'local folder'
        extra = ', needs downloaded weights' if spec is not None and spec.weights == 'real' else ''
        out.append((f'{n} ({kind}{extra})', n))
    return out


def timestep_label(backbone, t: float) -> str:
    "`t` snapped to the backbone's schedule, with sigma and step index."
    return f'**timestep** {backbone.timestep_info(float(t))}'


def backbone_controls(b) -> dict:
    "Slider settings for a backbone: timestep range and default, layer range and default."
    lo, hi = b.valid_timestep_range
    return dict(t_min=float(math.ceil(lo)), t_max=float(math.floor(hi)), t=b.default_timestep, n_layers=b.num_layers,
                layer=b.default_layer, label=f'{b.name}: {b.weights_label}, {b.num_layers} blocks, '
                                             f'feat_dim {b.feat_dim}, on {b.device}')


def sample_label(name: str) -> str:
    kind = 'synthetic, with ground truth' if name == SYNTHETIC_SAMPLE else 'real video, no ground truth'
    return f'{name} ({kind})'


# ---------------------------------------------------------------- input
def load_input(models: AppModels, session: Session, upload=None, sample: Optional[str] = None, num_frames: int = 9,
               size: int = 64) -> Session:
    "Put the uploaded file or the bundled sample, sampled to `num_frames` at `size`, into `session`."
    session.input = E.read_input(upload, sample, num_frames, size, models.limits, tmp_dir=models.workdir)
    return session


def describe_input(session: Session) -> str: return session.loaded.describe()
def input_video(models: AppModels, session: Session) -> Path: return E.input_video(session.loaded, models.workdir)


def frame0_image(session: Session):
    "Frame 0, upscaled for clicking."
    inp = session.loaded
    return mark_points(inp.frames_u8[0], [], display_scale(inp.clip.size))


def click_to_pixel(session: Session, index) -> tuple:
    "A click on the upscaled frame 0 (x, y) as a pixel (x, y) of the clip."
    (H, W), s = session.loaded.clip.size, display_scale(session.loaded.clip.size)
    x, y = int(index[0]) // s, int(index[1]) // s
    if not (0 <= x < W and 0 <= y < H): raise ValueError(f"click at ({x}, {y}) is outside the {W}x{H} frame")
    return x, y


def parse_numbers(text: str, cast=float) -> list:
    "Comma-separated numbers from a text box."
    try: vals = [cast(v) for v in str(text).replace(';', ',').split(',') if v.strip()]
    except ValueError: raise ValueError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals: raise ValueError("give at least one value")
    return vals


# ---------------------------------------------------------------- views: each one explorer call
def _view(session: Session, backbone, t, layer, n_noise, seed) -> tuple:
    "The loaded clip and the sliders' values, checked once."
    return session.loaded, E.view_settings(backbone, t, layer, n_noise, seed)


def features_view(models, session, backbone, t, layer, n_noise=1, seed=0, fixed_colours=True) -> E.FeatureView:
    return E.features_view(*_view(session, backbone, t, layer, n_noise, seed), models.workspace.cache, fixed_colours)


def pca_video(models: AppModels, session: Session, view: E.FeatureView) -> Path:
    return E.pca_video(session.loaded, view, models.workdir)


def depth_view(models, session, backbone, t, layer, n_noise=1, seed=0, frame=0, progress=None) -> EP.DepthView:
    return EP.depth_view(*_view(session, backbone, t, layer, n_noise, seed), models.workspace, frame, progress)


def correspondence_view(models, session, backbone, t, layer, x, y, n_noise=1, seed=0) -> EP.CorrespondenceView:
    return EP.correspondence_view(*_view(session, backbone, t, layer, n_noise, seed), models.workspace.cache, x, y)


def sweep_view(models, backbone, timesteps, layers=None, n_seeds=1, correspondence=True) -> EP.SweepView:
    return EP.sweep_view(backbone, timesteps, models.workspace, layers, n_seeds, correspondence)


def gates_view(models, session, backbone, t, layer, n_noise=1, seed=0) -> E.GatesView:
    fused = _need_mllm(models)
    return E.gates_view(fused, *_view(session, backbone, t, layer, n_noise, seed), models.workspace.cache)


# ---------------------------------------------------------------- chat
def _need_mllm(models: AppModels):
    if models.mllm is None: raise ValueError(f"No chat/fusion model is loaded. {models.mllm_note}")
    return models.mllm


def chat_model_label(models: AppModels) -> str:
    "Which model answers and on what hardware."
    if models.mllm is None: return f'**Chat disabled.** {models.mllm_note}'
    dev = models.mllm.vlm.device
    hw = 'CPU' if dev.type == 'cpu' else f'GPU ({torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev})'
    return f'**Answers come from** {models.mllm.describe()}, running on **{hw}**. {models.mllm_note}'


def chat_stream(models: AppModels, session: Session, message: str, history: list, max_new_tokens: int = 64,
                temperature: float = 0.0) -> Iterator[list]:
    "Stream the answer to `message` about the current clip: yields the whole message list as it grows."
    fused, clip = _need_mllm(models), session.loaded.clip
    if not message or not str(message).strip():
        raise ValueError("The message is empty: type a question about the clip.")
    msgs = list(history or []) + [dict(role='user', content=message), dict(role='assistant', content='')]
    for piece in fused.chat(clip, message, list(history or []), max_new_tokens=int(max_new_tokens),
                            temperature=float(temperature)):
        msgs[-1]['content'] += piece
        yield msgs
    if not msgs[-1]['content'].strip(): msgs[-1]['content'] = '(the model produced only whitespace or special tokens)'
    yield msgs


def cleanup(workdir):
    "Remove the scratch folder."
    shutil.rmtree(workdir, ignore_errors=True)
