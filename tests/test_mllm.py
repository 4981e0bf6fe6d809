"Broken-file inputs to FusedMLLM.chat and the fusion benchmark's CLI (things that do not fit the notebooks)."
import subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vega3d_nb.core import Clip, FeatureGrid
from vega3d_nb.fusion import AdaptiveGatedFusion
from vega3d_nb.mllm.adapters import build_tiny_random_qwen25vl
from vega3d_nb.mllm.fused import FusedMLLM


@pytest.fixture(scope='module')
def fused():
    vlm = build_tiny_random_qwen25vl(device='cpu')
    gen = FeatureGrid(torch.randn(2, 4, 4, 8))
    fusion = AdaptiveGatedFusion(vlm.hidden_size, 8, 'token_gated_residual', align='bilinear', projector='merger2x2')
    return FusedMLLM(vlm, fusion, gen_features=lambda clip: gen)


@pytest.mark.parametrize('content', [b'', b'not a video at all' * 10, b'\x00\x00\x00\x18ftypmp42' + b'\x00' * 64])
def test_chat_refuses_broken_video_files(fused, tmp_path, content):
    path = tmp_path / 'broken.mp4'
    path.write_bytes(content)
    with pytest.raises(ValueError, match='Could not load the clip'):
        fused.chat(str(path), 'which object is closest?')


def test_chat_refuses_empty_folder_and_bad_arrays(fused, tmp_path):
    with pytest.raises(ValueError, match='Could not load the clip'):
        fused.chat(str(tmp_path), 'hi')
    with pytest.raises(ValueError, match='Could not load the clip'):
        fused.chat(np.zeros((0, 56, 56, 3), dtype=np.uint8), 'hi')  # zero frames


def test_chat_from_a_frame_array_streams_text(fused):
    frames = np.random.default_rng(0).integers(0, 255, (2, 56, 56, 3), dtype=np.uint8)
    out = list(fused.chat(frames, 'how many objects?', max_new_tokens=3))
    assert out and all(isinstance(p, str) and p for p in out), f'nothing streamed: {out}'
    assert fused.last_gate.shape == (2, 2, 2)
    tok = fused.vlm.tokenizer
    with torch.no_grad():  # the streamed pieces are the greedy answer to the same inputs
        inp = fused.prepare_chat(frames, 'how many objects?', max_new_tokens=3)
        ids = fused.vlm.lm.generate(**inp, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert ''.join(out) == tok.decode(ids[0, inp['input_ids'].shape[1]:], skip_special_tokens=True)


def test_bench_fusion_runs_on_cpu():
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / 'bench' / 'fusion.py'), '--repeats', '1'], capture_output=True,
                       text=True, timeout=600, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'fused / semantic-only latency ratio' in r.stdout


def test_llava_video_chat_streams_text_and_fits_newlines_in_the_context():
    from vega3d_nb.mllm.llava_video import build_tiny_random_llava_video
    lv = build_tiny_random_llava_video(device='cpu')
    gen = FeatureGrid(torch.randn(2, 4, 4, 8, generator=torch.Generator().manual_seed(0)))
    fm = FusedMLLM(lv, AdaptiveGatedFusion(lv.hidden_size, 8, 'token_gated', align='bilinear'),
                   gen_features=lambda clip: gen)
    frames = np.random.default_rng(0).integers(0, 255, (2, 40, 40, 3), dtype=np.uint8)
    text = ''.join(fm.chat(frames, 'which object is closest?', max_new_tokens=4, num_frames=None))
    assert isinstance(text, str)
    # the prompt holds 2 frames x 4 rows x (4 + 1) = 40 visual embeddings between the template's two text pieces
    with torch.no_grad():
        inp = fm.prepare_chat(frames, 'which object?', max_new_tokens=4, num_frames=None)
    tpl = lv.tokenizer.apply_chat_template([{'role': 'user', 'content': '<image>\nwhich object?'}], tokenize=False,
                                           add_generation_prompt=True)
    n_text = sum(len(lv.tokenizer(p, add_special_tokens=False)['input_ids']) for p in tpl.split('<image>'))
    assert inp['inputs_embeds'].shape[1] == n_text + 40
