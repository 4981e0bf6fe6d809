"Project-level checks: the nbdev layout, style rules that can be checked mechanically, and the CPU-only install."
import configparser, json, re, shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CFG = configparser.ConfigParser(delimiters=['=']); CFG.read(ROOT / 'settings.ini')
NBS = sorted(p for p in (ROOT / 'nbs').glob('*.ipynb') if not p.name.startswith('_'))


def _cells(nb):
    return json.loads(nb.read_text())['cells']


def test_settings_pin_a_working_nbdev2_set():
    dev = CFG['DEFAULT']['dev_requirements'].split()
    assert 'nbdev==2.4.14' in dev and 'execnb==0.1.14' in dev
    req = CFG['DEFAULT']['requirements']
    for pkg in ['torch', 'diffusers', 'transformers', 'gradio', 'plotly', 'open3d', 'av', 'scikit-learn', 'safetensors']:
        assert re.search(rf'(^|\s){re.escape(pkg)}([<>=!\s]|$)', req), f'{pkg} missing from settings.ini requirements'


@pytest.mark.parametrize('nb', [n for n in NBS if n.name != 'index.ipynb'], ids=lambda p: p.name)
def test_notebook_exports_a_module_and_is_committed_clean(nb):
    cells = _cells(nb)
    m = re.search(r'#\|\s*default_exp\s+(\S+)', ''.join(cells[0]['source']) + ''.join(cells[1]['source']))
    assert m, f'{nb.name}: the first cells must declare #| default_exp'
    mod = ROOT / 'vega3d_nb' / (m.group(1).replace('.', '/') + '.py')
    assert mod.exists(), f'{nb.name} exports {m.group(1)} but {mod} is missing: run nbdev_export'
    assert re.match(r'^\d{2}[a-z]?_', nb.name), f'{nb.name}: notebooks are named NN_name.ipynb'
    dirty = [i for i, c in enumerate(cells) if c['cell_type'] == 'code' and c.get('outputs')]
    assert not dirty, f'{nb.name}: cells {dirty} carry outputs; notebooks are committed without outputs'


def test_no_hardcoded_cuda_device_in_library():
    offenders = []
    for f in (ROOT / 'vega3d_nb').rglob('*.py'):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            # a literal used as a device is a defect; comparing a device's kind (`device.type == 'cuda'`) is not
            line_wo_checks = re.sub(r"""\.type\s*[!=]=\s*(['"])cuda\1""", '', line)
            if re.search(r"""(['"])cuda(:\d+)?\1""", line_wo_checks):
                offenders.append(f'{f.name}:{i}: {line.strip()}')
    assert not offenders, 'device literals found (use vega3d_nb.core.default_device()):\n' + '\n'.join(offenders)


def test_cpu_machine_has_cpu_torch():
    "make test must never pull the multi-GB CUDA wheels onto a machine without a GPU."
    import torch
    if shutil.which('nvidia-smi'): pytest.skip('a GPU machine may use a CUDA build')
    assert torch.version.cuda is None, f'CUDA build of torch {torch.__version__} installed on a CPU-only machine'


def test_console_scripts_resolve():
    import importlib
    for line in CFG['DEFAULT']['console_scripts'].splitlines():
        if not line.strip(): continue
        name, target = [s.strip() for s in line.split('=')]
        mod, fn = target.split(':')
        assert callable(getattr(importlib.import_module(mod), fn)), f'{name} -> {target} is not callable'
