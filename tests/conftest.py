"""What the app tests share: the app folder importable, offline, and tiny random app models with a private cache."""
import os, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'app'))
os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
os.environ.setdefault('HF_HUB_OFFLINE', '1')


@pytest.fixture(scope='module')
def make_app_models(tmp_path_factory):
    "A factory of `AppModels` on a tiny-random Wan (random weights), scenes rendered into a private cache."
    import handlers as H
    from vega3d_nb.backbones import build_tiny_random_backbone
    mp = pytest.MonkeyPatch()
    mp.setenv('VEGA3D_CACHE', str(tmp_path_factory.mktemp('scene-cache')))

    def make(chat=None,                          # backbone -> the chat model, or None for no chat
             chat_note: str = 'no chat in these tests'):
        bb = build_tiny_random_backbone('wan', device='cpu')
        shelf = H.BackboneShelf('cpu')
        shelf.add(bb)
        return H.AppModels(shelf, bb.name, tmp_path_factory.mktemp('app-work'), chat(bb) if chat else None,
                           chat_note, scenes=H.SceneSet(n_train=2, n_test=1, n_frames=5, size=32))
    yield make
    mp.undo()
