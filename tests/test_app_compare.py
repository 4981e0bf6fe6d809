"""The Compare & export page's handlers on tiny random backbones (random weights), CPU only, no network."""
import os, shlex, shutil, subprocess, sys, zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import ROOT
import handlers as H
from vega3d_nb.explorer_export import grid_hash, reproduce_grids


@pytest.fixture(scope='module')
def models(make_app_models): return make_app_models()


@pytest.fixture(scope='module')
def session(models):
    return H.load_input(models, H.new_session(models), sample=H.SYNTHETIC_SAMPLE, num_frames=3, size=64)


@pytest.fixture(scope='module')
def twins(): return H.EC.TwinShelf()


def a(models): return models.backbones.get(models.default_backbone)


def test_b_choices_put_the_twin_first(models):
    ch = H.compare_choices(models)
    assert ch[0][1] == H.EC.TWIN and 'random weights' in ch[0][0]
    assert [n for _, n in ch[1:]] == [n for _, n in H.backbone_choices(models)]


def test_pair_twin_other_backbone_and_refusals(models, session, twins):
    p = H.compare_pair(models, twins, session, a(models), H.EC.TWIN, 300, 2)
    assert p.twin_seed == 0 and p.b.backbone.weights == 'random-init' and p.b.layer == p.a.layer == 2
    assert p.b.backbone.weights_hash != p.a.backbone.weights_hash
    assert H.compare_pair(models, twins, session, a(models), H.EC.TWIN, 300, 2).b.backbone is p.b.backbone  # built once
    q = H.compare_pair(models, twins, session, a(models), 'tiny-random-cogvideox', 2000, 9)  # typed out of range
    assert q.twin_seed is None and q.b.backbone.name == 'tiny-random-cogvideox' and q.a.layer == 3
    with pytest.raises(ValueError, match='same weights'):
        H.compare_pair(models, twins, session, a(models), models.default_backbone, 300, 2)
    with pytest.raises(ValueError, match='No clip loaded'):
        H.compare_view(models, H.new_session(models), p)


def test_compare_view_one_projection_one_table(models, session, twins):
    p = H.compare_pair(models, twins, session, a(models), H.EC.TWIN, 300, 2)
    f, t = H.compare_view(models, session, p)
    assert f.mode == 'joint' and f.image.ndim == 3 and 'jointly' in f.caption
    src = list(t.table['source'])
    assert sum(s.startswith('A: ') for s in src) == 2 and sum(s.startswith('B: ') for s in src) == 2  # held out + clip
    assert sum(s.endswith(H.EP.BASELINE_SUFFIX) for s in src) == 3 and 'verdict' in t.table
    assert 'A minus B' in t.summary
    styled = H.EP.highlight_losses(t.table).to_html()
    assert '#f8d0d0' in styled or '#d4f0d4' in styled  # the rows read against the best baseline are coloured
    c = H.compare_view(models, session, H.compare_pair(models, twins, session, a(models), 'tiny-random-cogvideox',
                                                       300, 2))[0]
    assert c.mode == 'aligned' and '24 vs 16 channels' in c.caption


def test_remember_keeps_results_of_the_same_pair_only(models, session, twins):
    p = H.compare_pair(models, twins, session, a(models), H.EC.TWIN, 300, 2)
    q = H.compare_pair(models, twins, session, a(models), H.EC.TWIN, 300, 1)
    m = H.remember(H.remember({}, p, x=1), p, y=2)
    assert m['results'] == dict(x=1, y=2) and m['pair'] is p
    assert H.remember(m, q, z=3)['results'] == dict(z=3)  # another layer: the old results are not this view's


def _unzip(path, dest):
    zipfile.ZipFile(path).extractall(dest)
    return dest


def test_export_after_compare_reproduces_both_grids(models, session, twins, tmp_path):
    p = H.compare_pair(models, twins, session, a(models), H.EC.TWIN, 300, 2)
    f, t = H.compare_view(models, session, p)
    s = H.compare_sweeps(models, p, [300], 1, False)
    assert s.depth_fig is not None and s.pck_fig is None and 'common cells' in s.note
    last = H.remember(H.remember({}, p, compare_features=f, compare_probes=t), p, compare_sweep=s)
    z = H.export_session(models, session, last, H.compare_pair(models, twins, session, a(models), H.EC.TWIN, 300, 2))
    names = set(zipfile.ZipFile(z).namelist())
    assert {'settings.json', 'clip.npy', 'reproduce.py', 'command.sh', 'compare_probes_table.csv',
            'compare_features_image.png', 'compare_sweep_depth_fig.html', 'plotly.min.js'} <= names
    ga, gb = reproduce_grids(z)
    g0 = H.E.view_grid(session.loaded, p.a, models.workspace.cache)
    g1 = H.E.view_grid(session.loaded, p.b, models.workspace.cache)
    assert torch.equal(ga.features, g0.features) and torch.equal(gb.features, g1.features)
    table = pd.read_csv(zipfile.ZipFile(z).open('compare_probes_table.csv'))
    assert table['none.delta1'].round(4).tolist() == t.table['none.delta1'].round(4).tolist()


def test_export_without_a_comparison_is_a_alone(models, session, twins):
    other = H.compare_pair(models, twins, session, a(models), H.EC.TWIN, 500, 1)
    z = H.export_session(models, session, {}, other)
    names = set(zipfile.ZipFile(z).namelist())
    assert not any(n.startswith('compare_') for n in names) and 'features_A_mosaic.png' in names
    ga, gb = reproduce_grids(z)
    assert gb is None and ga.layer == 1
    view = H.E.view_settings(a(models), 300, 2)  # B refused as A: the app exports A's view
    assert reproduce_grids(H.export_session(models, session, {}, view))[0].layer == 2


def test_export_command_line_reproduces_the_grid(models, session, tmp_path):
    from vega3d_nb.extractor import FeatureSet
    st = H.E.view_settings(a(models), 300, 2)
    out = _unzip(H.export_session(models, session, {}, st), tmp_path / 'unpacked')
    line = next(l for l in (out / 'command.sh').read_text().splitlines() if l.startswith('vega3d-extract'))
    args = shlex.split(line)[1:]
    exe = shutil.which('vega3d-extract', path=str(Path(sys.executable).parent)) or 'vega3d-extract'
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
    r = subprocess.run([exe, *args, '--quiet'], capture_output=True, text=True, cwd=out, env=env, timeout=180)
    assert r.returncode == 0, r.stderr
    g = FeatureSet.load(out / 'features_A.safetensors').get(st.info.t, 2)
    ref = H.E.view_grid(session.loaded, st, models.workspace.cache)
    assert g.features.shape == ref.features.shape
    assert torch.allclose(g.features, ref.features, atol=1e-5), (g.features - ref.features).abs().max()
    assert grid_hash(reproduce_grids(out)[0]) == grid_hash(ref)  # the unpacked folder reads as the zip does


def test_the_page_has_the_compare_tab_and_the_export_button(models):
    import app as A
    demo = A.build_demo(models)
    ids = {c.get('props', {}).get('elem_id') for c in demo.config['components']}
    assert {'compare_b', 'compare_btn', 'compare_sweep_btn', 'export_btn', 'export_file'} <= ids
    code = ("import sys\nsys.path.insert(0, 'app')\nimport app\n"
            "assert 'vega3d_nb.backbones' not in sys.modules, 'models loaded at import'")
    subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True,
                   env=dict(os.environ, GRADIO_ANALYTICS_ENABLED='False'))
