"The `vega3d-extract` command line: a real subprocess per test, the error messages, and a 2-process sharded run."
import os, shutil, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}

def cli(*args, env=None, timeout=120):
    exe = shutil.which('vega3d-extract', path=str(BIN)) or 'vega3d-extract'
    return subprocess.run([exe, *map(str, args), '--quiet'], capture_output=True, text=True, cwd=ROOT, env=env or ENV, timeout=timeout)

def make_clips(folder, n=1, frames=3, size=(32, 32)):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f'clip{i}.npy'
        np.save(p, (np.random.default_rng(i).random((frames, *size, 3)) * 255).astype('uint8'))
        paths.append(p)
    return paths

def test_entry_point_installed():
    assert shutil.which('vega3d-extract', path=str(BIN)), "reinstall with `.venv/bin/pip install -e . --no-deps`"

def test_one_clip(tmp_path):
    from vega3d_nb.extractor import FeatureSet
    from vega3d_nb.io import load_clip
    (clip,) = make_clips(tmp_path)
    out = tmp_path / 'f.safetensors'
    r = cli(clip, '--backbone', 'tiny-random-wan', '--timesteps', '300,700', '--layers', '1,3', '--out', out)
    assert r.returncode == 0, r.stderr
    assert 'random weights' in r.stdout and str(out) in r.stdout
    fs = FeatureSet.load(out)
    assert fs.layers == [1, 3] and len(fs.timesteps) == 2
    g = fs.get(fs.timesteps[0], 3)
    assert tuple(g.features.shape) == (3, 2, 2, 24) and g.weights == 'random-init' and g.step_index == 921
    assert fs.clip_hash == load_clip(clip).content_hash

def test_pool_video_and_default_out(tmp_path, capsys):
    "In-process: video mode, pooling, a size, and the default output name next to the clip."
    from vega3d_nb.extractor import FeatureSet
    from vega3d_nb.extract_cli import vega3d_extract
    (clip,) = make_clips(tmp_path, frames=5, size=(48, 64))
    vega3d_extract.__wrapped__(str(clip), backbone='tiny-random-wan', temporal='video', pool='1x2', size='32x64', quiet=True)
    assert 'features.safetensors' in capsys.readouterr().out
    fs = FeatureSet.load(clip.with_suffix('.features.safetensors'))
    g = fs.get()
    assert tuple(g.features.shape) == (2, 1, 2, 24) and g.frame_indices == [0, 4] and g.temporal == 'video' and g.layer == 2

def test_default_backbone_is_our_trained_model(tmp_path, capsys):
    "With no --backbone the CLI uses the shipped offline model (trained here), never random weights."
    from vega3d_nb.extractor import FeatureSet
    from vega3d_nb.extract_cli import vega3d_extract
    (clip,) = make_clips(tmp_path, frames=2, size=(32, 32))
    vega3d_extract.__wrapped__(str(clip), quiet=True)
    g = FeatureSet.load(clip.with_suffix('.features.safetensors')).get()
    assert g.model_id == 'vega3d-tiny-scenes' and g.weights == 'trained', g.describe()

@pytest.mark.parametrize('args, message', [
    (['--layers', '7'], "layer 7 is outside [0, 4) for tiny-random-wan"),
    (['--timesteps', '1500'], "outside tiny-random-wan's scheduler range"),
    (['--backbone', 'wan9'], "unknown backbone 'wan9'"),
    (['--temporal', 'video'], "temporal='video' needs at least 5"),
    (['--temporal', 'sideways'], "temporal must be one of"),
    (['--backbone', 'wan2.1-t2v-1.3b'], "huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B-Diffusers"),
    (['--size', '3x4x5'], "a size is 'H' or 'HxW'"),
])
def test_errors_are_one_line(tmp_path, args, message, capsys, monkeypatch):
    "In-process (the same function the console script calls, minus argparse) to keep the suite fast."
    from huggingface_hub import constants
    from vega3d_nb.extract_cli import vega3d_extract
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf')); monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hf' / 'hub'))
    (clip,) = make_clips(tmp_path)
    kw = {'backbone': 'tiny-random-wan', **{a.lstrip('-'): v for a, v in zip(args[::2], args[1::2])}}
    with pytest.raises(SystemExit) as e: vega3d_extract.__wrapped__(str(clip), quiet=True, **kw)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith('vega3d-extract: error:') and err.count('\n') == 1, err

def test_error_from_a_real_process(tmp_path):
    "Missing and unreadable clips, through the installed console script: one line on stderr, exit status 2."
    r = cli(tmp_path / 'nope.npy')
    assert r.returncode == 2 and 'vega3d-extract: error: clip not found' in r.stderr and 'Traceback' not in r.stderr, r.stderr

def test_unreadable_clip(tmp_path, capsys):
    from vega3d_nb.extract_cli import vega3d_extract
    bad = tmp_path / 'bad.npy'; bad.write_bytes(b'not an array')
    with pytest.raises(SystemExit): vega3d_extract.__wrapped__(str(bad), quiet=True)
    assert 'cannot read frames from' in capsys.readouterr().err

def test_two_process_sharding_with_resume(tmp_path):
    """accelerate launch --multi_gpu --num_processes 2 (torchrun underneath; on this CPU machine each rank runs on the CPU):
    each rank writes its own shard; a rerun skips everything. (`--cpu` makes accelerate start a single process.)"""
    from vega3d_nb.extractor import FeatureSet
    from vega3d_nb.extract_cli import output_path, shard
    paths = make_clips(tmp_path / 'clips', n=5, frames=2)
    listing = tmp_path / 'clips.txt'; listing.write_text('\n'.join(map(str, paths)))
    out = tmp_path / 'out'
    exe = shutil.which('vega3d-extract', path=str(BIN))
    cmd = [str(BIN / 'accelerate'), 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no',
           '--dynamo_backend', 'no', exe, str(listing), '--backbone', 'tiny-random-wan', '--out_dir', str(out), '--layers', '1,2', '--quiet']
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'rank 0: wrote 3 file(s)' in r.stdout and 'rank 1: wrote 2 file(s)' in r.stdout, r.stdout
    assert sorted(out.iterdir()) == sorted(output_path(out, p) for p in paths)
    assert FeatureSet.load(output_path(out, paths[4])).layers == [1, 2]
    assert shard(paths, 0, 2) == paths[0::2]
    # resume: a second single-process run finds every file and writes nothing
    r = subprocess.run([exe, str(listing), '--out_dir', str(out), '--quiet'], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert r.returncode == 0 and 'wrote 0 file(s)' in r.stdout, r.stderr
    print(f'2-process run: {time.time() - t0:.1f} s')
