"""Thin event handlers of the vega3d_nb app: each makes one library call, mostly to `vega3d_nb.explorer*`.

Models, the explorer's workspace and per-session state come in as arguments (no module globals); `app.py` lays out
the page and wires these functions to events. A session (`explorer_session.ExplorerSession`) is never changed in
place: a load returns a new one, so a load that fails keeps the previous clip in every tab.
"""
from __future__ import annotations
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import torch

from vega3d_nb import explorer as E
from vega3d_nb import explorer_probes as EP
from vega3d_nb import explorer_session as ES
from vega3d_nb.core import logger
from vega3d_nb.explorer import (DEFAULT_FRAMES, DEFAULT_SIZE, HELDOUT_SAMPLE, SYNTHETIC_SAMPLE, Limits, SceneSet,
                                Workspace, sample_label, sample_names)
from vega3d_nb.explorer_probes import display_scale
from vega3d_nb.explorer_session import BackboneShelf, ExplorerSession as Session
from vega3d_nb.io import IMAGE_EXTS, VIDEO_EXTS
from vega3d_nb.mosaic import mark_points


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


def new_session(models: AppModels) -> Session: return Session(backbone=models.default_backbone)


# ---------------------------------------------------------------- backbones and controls
def backbone_choices(models: Optional[AppModels] = None) -> list:
    "Dropdown choices `(label, name)`, unavailable backbones marked."
    return ES.backbone_choices(unavailable=models.backbones.unavailable if models else None)


def backbone_controls(b) -> dict:
    "Slider settings for a backbone (`explorer_session.control_ranges`) and its one-line label."
    return dict(ES.control_ranges(b), label=f'{b.name}: {b.weights_label}, {b.num_layers} blocks, '
                                            f'feat_dim {b.feat_dim}, on {b.device}')


def slider_updates(c: dict) -> tuple:
    "(t, layer) slider settings of `backbone_controls`: a value that cannot change is shown, locked."
    (t0, t1, t_on), (l0, l1, l_on) = c['t_slider'], c['layer_slider']
    return (dict(minimum=t0, maximum=t1, value=c['t'], interactive=t_on),
            dict(minimum=l0, maximum=l1, value=c['layer'], interactive=l_on))


def switch_backbone(models: AppModels, session: Session, name: str) -> tuple:
    "(controls of the backbone in use, session, message): a backbone that cannot load leaves the last working one."
    b, session, msg = ES.switch_backbone(models.backbones, session, name)
    return backbone_controls(b), session, msg


def backbone(models: AppModels, session: Session, name: str):
    return ES.session_backbone(models.backbones, session, name)


def checked(models: AppModels, session: Session, name: str, t, layer, n_noise=1, seed=0) -> tuple:
    "(backbone, Knobs): the controls' values clamped into range, with one message when any was changed."
    b = backbone(models, session, name)
    return b, ES.clamp_knobs(b, t, layer, n_noise, seed)


def timestep_label(backbone, t: float) -> str:
    "`t` snapped to the backbone's schedule, with sigma and step index."
    return f'**timestep** {backbone.timestep_info(float(t))}'


# ---------------------------------------------------------------- input
def sample_choices(models: AppModels, session: Optional[Session] = None) -> list:
    "Sample dropdown choices `(label, name)`, each labelled in or out of distribution for the session's backbone."
    name = (session.backbone if session else None) or models.default_backbone
    return [(sample_label(s, name), s) for s in sample_names()]


def upload_path(up) -> Optional[str]:
    "The path of an upload, given as a path or as gradio's raw file payload."
    return up.get('path') if isinstance(up, dict) else up


def load_input(models: AppModels, session: Session, upload=None, sample: Optional[str] = None,
               num_frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE, stride=None, start_s=None,
               end_s=None) -> Session:
    "A new session holding the upload (else the sample); a failed load raises and leaves `session` as it was."
    path = upload_path(upload)
    read = lambda: E.read_input(path, sample, num_frames, size, models.limits, tmp_dir=models.workdir, stride=stride,
                                start_s=start_s, end_s=end_s)
    return ES.load_into(session, read, (path, None if path else sample))


def resample(models: AppModels, session: Session, num_frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE,
             stride=None, start_s=None, end_s=None) -> Session:
    "The session's clip read again from its upload or sample with new sampling settings (no clip yet: unchanged)."
    if not session.source: return session
    return load_input(models, session, *session.source, num_frames, size, stride, start_s, end_s)


def load_image_pair(models: AppModels, session: Session, first, second, size: int = DEFAULT_SIZE) -> Session:
    "A new session holding two uploaded images as a two-frame clip, for correspondence (a failed load keeps `session`)."
    return ES.load_into(session, lambda: EP.read_image_pair(upload_path(first), upload_path(second), size,
                                                            models.limits))


def describe_input(session: Session) -> str: return session.loaded.describe()
def input_video(models: AppModels, session: Session) -> Path: return E.input_video(session.loaded, models.workdir)


def frame_slider(session: Session) -> dict:
    "Settings of a frame slider for the loaded clip (a one-frame clip gets a fixed slider: gradio needs min < max)."
    T = session.loaded.clip.num_frames
    return dict(minimum=0, maximum=max(T - 1, 1), value=0, interactive=T > 1)


def frame_image(session: Session, frame: int = 0, point=None):
    "Frame `frame`, upscaled for clicking, with the query `point` (x, y) drawn when given."
    inp = session.loaded
    marks = [(point[0], point[1], 'yellow', 'dot')] if point is not None else []
    return mark_points(inp.frames_u8[int(frame)], marks, display_scale(inp.clip.size))


def frame0_image(session: Session): return frame_image(session, 0)


def click_to_pixel(session: Session, index) -> tuple:
    "A click on the upscaled frame (x, y) as a pixel (x, y) of the clip."
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
    "The loaded clip and the controls' values, clamped into range and checked once."
    k = ES.clamp_knobs(backbone, t, layer, n_noise, seed)
    return session.loaded, E.view_settings(backbone, k.t, k.layer, k.n_noise, k.seed)


def features_view(models, session, backbone, t, layer, n_noise=1, seed=0, fixed_colours=True,
                  progress=None, opacity: float = 0.5) -> E.FeatureView:
    inp, st = _view(session, backbone, t, layer, n_noise, seed)
    opacity = ES.clamp_value(opacity, 0, 1, 'opacity')
    return E.features_view(inp, st, models.workspace.cache, fixed_colours, progress=progress, opacity=opacity)


def pca_video(models: AppModels, session: Session, view: E.FeatureView) -> Path:
    return E.pca_video(session.loaded, view, models.workdir)


def depth_view(models, session, backbone, t, layer, n_noise=1, seed=0, frame=0, progress=None) -> EP.DepthView:
    return EP.depth_view(*_view(session, backbone, t, layer, n_noise, seed), models.workspace, frame, progress)


def correspondence_view(models, session, backbone, t, layer, x, y, n_noise=1, seed=0, source=0,
                        target=None) -> EP.CorrespondenceView:
    return EP.correspondence_view(*_view(session, backbone, t, layer, n_noise, seed), models.workspace.cache, x, y,
                                  source_frame=source, target_frame=target)


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
    "Which model answers, on what hardware, and how good it is on held-out questions (from its card); no paths."
    if models.mllm is None: return ES.scrub_paths(f'**Chat disabled.** {models.mllm_note}')
    dev = models.mllm.vlm.device
    hw = 'CPU' if dev.type == 'cpu' else f'GPU ({torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev})'
    quality = ES.chat_quality(getattr(models.mllm, 'card', None))
    return ES.scrub_paths(f'**Answers come from** {models.mllm.describe()}, running on **{hw}**. {models.mllm_note}'
                          f'\n\n{quality}')


def chat_stream(models: AppModels, session: Session, message: str, history: list, max_new_tokens: int = 64,
                temperature: float = 0.0) -> Iterator[list]:
    "Stream the answer to `message` about the current clip: yields the whole message list as it grows."
    fused, clip = _need_mllm(models), session.loaded.clip
    message = ES.check_message(message)
    max_new_tokens = ES.clamp_value(max_new_tokens, 1, 256, 'max new tokens', True)
    temperature = ES.clamp_value(temperature, 0, 1.5, 'temperature')
    past = ES.bounded_history(history)
    msgs = list(history or []) + [dict(role='user', content=message), dict(role='assistant', content='')]
    for piece in fused.chat(clip, message, past, max_new_tokens=max_new_tokens, temperature=temperature):
        msgs[-1]['content'] += piece
        yield msgs
    if not msgs[-1]['content'].strip(): msgs[-1]['content'] = '(the model produced only whitespace or special tokens)'
    yield msgs


def cleanup(workdir):
    "Remove the scratch folder."
    shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- compare and export (issue 18, item 14)
from vega3d_nb import explorer_compare as EC  # noqa: E402  (kept in this block: the other blocks stay as they were)
from vega3d_nb import explorer_export as EX  # noqa: E402


def compare_choices(models: AppModels) -> list:
    "Backbone-B choices: A's random-init twin first, then every backbone (unavailable ones marked)."
    return [(f'{EC.TWIN} (same architecture, random weights)', EC.TWIN)] + backbone_choices(models)


def compare_pair(models: AppModels, twins: EC.TwinShelf, session: Session, backbone_a, name_b: str, t, layer,
                 n_noise=1, seed=0) -> EC.ComparePair:
    "A (the app's backbone) and B at the controls' values (clamped for A, matched for B); B may be A's twin."
    k = ES.clamp_knobs(backbone_a, t, layer, n_noise, seed)
    b = EC.backbone_b(models.backbones.get, twins, backbone_a, name_b)
    return EC.compare_settings(backbone_a, b, k.t, k.layer, k.n_noise, k.seed, 0 if name_b == EC.TWIN else None)


def compare_view(models: AppModels, session: Session, pair: EC.ComparePair, progress=None) -> tuple:
    "(CompareFeatures, CompareProbes) of the loaded clip: one PCA projection, one probe table with the baselines."
    inp = session.loaded
    return (EC.compare_features(inp, pair, models.workspace.cache, progress),
            EC.compare_probes(inp, pair, models.workspace, progress))


def compare_sweeps(models: AppModels, pair: EC.ComparePair, timesteps, n_seeds=1,
                   correspondence=True) -> EC.SweepCompare:
    return EC.compare_sweeps(pair.a.backbone, pair.b.backbone, timesteps, models.workspace, n_seeds, correspondence)


def pair_key(view) -> tuple:
    "What identifies a comparison (or one view): each side's weights and checked settings."
    sides = (view.a, view.b) if isinstance(view, EC.ComparePair) else (view,)
    return tuple((s.backbone.name, s.backbone.weights_hash, s.info, s.layer, s.n_noise, s.seed) for s in sides)


def remember(last: dict, pair: EC.ComparePair, **results) -> dict:
    "The Compare page's memory: `results` added to those of the same pair, or replacing another pair's."
    kept = last.get('results', {}) if last.get('key') == pair_key(pair) else {}
    return dict(key=pair_key(pair), pair=pair, results={**kept, **results})


def export_session(models: AppModels, session: Session, last: dict, view) -> Path:
    "A zip of the view (a ComparePair or ViewSettings): with the results `last` holds for it, else A's view alone."
    inp = session.loaded
    same = last.get('key') == pair_key(view)
    view, results = (last['pair'], last['results']) if same else (getattr(view, 'a', view), None)
    path = models.workspace.path('exports', EX.export_filename(inp, view))
    return EX.export_session(path, inp, view, models.workspace, results).path
