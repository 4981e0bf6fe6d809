"""`vega3d-train-world` runs end to end from its console script with its smallest settings, and a second call with a
larger budget resumes the first (random-init models trained for a handful of steps; the numbers mean nothing)."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / 'vega3d-train-world'
ARGS = ['--mix', 'scenes:2,physics:1', '--val_mix', 'scenes:1,physics:1', '--n_frames', '5', '--size', '32',
        '--vae_steps', '1', '--vae_batch', '1', '--vae_crop', '0', '--dit_batch', '2', '--threads', '1',
        '--name', 'cli-smoke']


def _run(out, work, dit_steps):
    env = dict(os.environ, OMP_NUM_THREADS='1', MUJOCO_GL=os.environ.get('MUJOCO_GL', 'egl'))
    r = subprocess.run([str(SCRIPT), '--out', str(out), '--work_dir', str(work), '--dit_steps', str(dit_steps), *ARGS],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


@pytest.mark.skipif(not SCRIPT.is_file(), reason='console script not installed (pip install -e .)')
def test_train_world_cli_runs_and_resumes(tmp_path):
    first, _ = _run(tmp_path / 'out', tmp_path / 'work', 2)
    assert first['transformer']['steps'] == 2 and first['vae']['steps'] == 1
    assert set(first['val_psnr_db']) == {'scenes', 'physics', 'all'}
    info = json.loads((tmp_path / 'out' / 'training.json').read_text())
    assert info['model'] == 'cli-smoke' and info['data']['mix'] == {'scenes': 2, 'physics': 1}
    card = (tmp_path / 'out' / 'MODEL_CARD.md').read_text()
    assert '| physics | 1 | 1 |' in card
    second, log = _run(tmp_path / 'out2', tmp_path / 'work', 3)
    assert 'transformer: resumed from' in log and 'at step 2' in log
    assert second['transformer']['steps'] == 3 and second['vae']['steps'] == 1
    from vega3d_nb.world.model import load_world_model
    assert load_world_model(tmp_path / 'out2').info['transformer']['steps'] == 3
