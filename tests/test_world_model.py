"""The shipped world model (assets/vega3d-tiny-scenes, trained here): loads offline, reproduces its recorded probe
scores, and beats its random-init twin on depth delta1 by the recorded margin."""
import json, os
from pathlib import Path

import pytest
import torch

os.environ.setdefault('HF_HUB_OFFLINE', '1')
ASSET = Path(__file__).resolve().parent.parent / 'assets' / 'vega3d-tiny-scenes'
CHECK = ASSET / 'probe_check.json'

pytestmark = pytest.mark.skipif(not (ASSET / 'transformer' / 'config.json').is_file(), reason='world model weights not in assets/')


@pytest.fixture(scope='module')
def backbone():
    from vega3d_nb.backbones import load_backbone
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return load_backbone('vega3d-tiny-scenes', device='cpu')


def test_loads_offline(backbone):
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    assert os.environ['HF_HUB_OFFLINE'] == '1'
    assert backbone.weights == 'trained'
    assert isinstance(backbone.vae, AutoencoderKLWan) and isinstance(backbone.denoiser, WanTransformer3DModel)
    assert backbone.scheduler.config.shift == 5.0
    # the latent normalisation learned in training is in the VAE config, not Wan2.1's defaults
    info = json.loads((ASSET / 'training.json').read_text())
    assert backbone.vae.config.latents_mean == info['latents_mean']
    assert backbone.vae.config.latents_std == info['latents_std']
    assert backbone.empty_prompt_embeds is not None and backbone.empty_prompt_embeds.abs().sum() == 0  # zeros, as trained
    total = sum(f.stat().st_size for f in ASSET.rglob('*') if f.is_file())
    assert total < 32e6, f'assets/vega3d-tiny-scenes is {total / 1e6:.1f} MB'


def test_loads_with_train_world_loader():
    from vega3d_nb.world.model import load_world_model
    wm = load_world_model(ASSET)
    assert wm.weights == 'trained' and wm.info['transformer']['steps'] > 0


@pytest.fixture(scope='module')
def check(backbone):
    from vega3d_nb.world.experiment import probe_check
    rec = json.loads(CHECK.read_text())
    got = probe_check(backbone, t=rec['t'], layer=rec['layer'], seeds=rec['seeds'], n_train=rec['n_train'],
                      n_test=rec['n_test'], n_frames=rec['n_frames'], size=rec['size'])
    return rec, got


def test_probe_scores_reproduce(check):
    rec, got = check
    for source, scores in rec['scores'].items():
        for k, v in scores.items():
            assert abs(got['scores'][source][k] - v) < 1e-4, (source, k, got['scores'][source][k], v)


def test_trained_beats_random_init_on_delta1(check):
    rec, got = check
    assert got['delta1_margin'] > rec['delta1_margin_threshold'], (got['delta1_margin'], rec['delta1_margin_threshold'])
