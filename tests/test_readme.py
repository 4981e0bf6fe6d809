"The README's Python examples run as written (offline, on the shipped model)."
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_blocks_run(monkeypatch):
    blocks = re.findall(r'```python\n(.*?)```', (ROOT / 'README.md').read_text(), flags=re.S)
    assert blocks, 'README.md has no python example'
    monkeypatch.chdir(ROOT)
    for code in blocks:
        ns = {}
        exec(compile(code, 'README.md', 'exec'), ns)
    assert ns['grid'].weights == 'trained' and ns['rgb'].shape[-1] == 3
