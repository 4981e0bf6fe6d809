"The mutation check's parsing and editing (fast); `make mutate` runs the mutations themselves."
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mutate import REPO, apply_mutation, load_mutations, scratch_copy, table  # noqa: E402


def _nb(*cells):
    "A notebook of (type, source) cells."
    return {'cells': [{'cell_type': t, 'source': s.splitlines(keepends=True)} for t, s in cells]}


def _mutation(**kw):
    return dict(dict(id='m', notebook='nbs/x.ipynb', old='a', new='b', notebooks=['nbs/x.ipynb'], tests=[], why='w'),
                **kw)


def test_apply_replaces_the_one_occurrence_in_code():
    nb = _nb(('markdown', 'x = 1 + 1'), ('code', '#| export\ndef f():\n    return 1 + 1\n'))
    out = apply_mutation(nb, 'return 1 + 1', 'return 1 + 2')
    assert out['cells'][1]['source'] == ['#| export\n', 'def f():\n', '    return 1 + 2\n']
    assert out['cells'][0] == nb['cells'][0]                          # markdown untouched
    assert nb['cells'][1]['source'][2] == '    return 1 + 1\n'        # the input is not modified


@pytest.mark.parametrize('src, found', [('y = 2', 0), ('x = 1\nx = 1', 2)])
def test_apply_refuses_missing_or_repeated_text(src, found):
    with pytest.raises(ValueError, match=f'exactly once in the code cells, found {found} times'):
        apply_mutation(_nb(('code', src), ('markdown', 'x = 1')), 'x = 1', 'x = 3')


def test_apply_counts_across_cells():
    with pytest.raises(ValueError, match='found 2 times'):
        apply_mutation(_nb(('code', 'x = 1'), ('code', 'x = 1')), 'x = 1', 'x = 3')


def test_load_checks_keys_targets_and_ids(tmp_path):
    (tmp_path / 'a.json').write_text(json.dumps([_mutation(id='one'), _mutation(id='two', tests=['t.py'])]))
    assert [m['id'] for m in load_mutations(tmp_path)] == ['one', 'two']
    assert load_mutations(tmp_path)[0]['file'] == 'a.json'
    (tmp_path / 'b.json').write_text(json.dumps([_mutation(id='one')]))
    with pytest.raises(ValueError, match=r"duplicate mutation ids \['one'\]"):
        load_mutations(tmp_path)
    (tmp_path / 'b.json').write_text(json.dumps([{'id': 'x', 'old': 'a'}]))
    with pytest.raises(ValueError, match="b.json: mutation 'x' lacks \\['notebook', 'new'"):
        load_mutations(tmp_path)
    (tmp_path / 'b.json').write_text(json.dumps([_mutation(id='x', notebooks=[], tests=[])]))
    with pytest.raises(ValueError, match='names no notebook and no test'):
        load_mutations(tmp_path)


def test_every_listed_mutation_applies_to_the_current_notebooks():
    muts = load_mutations(REPO / 'tests' / 'mutations')
    assert len(muts) >= 15
    for m in muts:
        apply_mutation(json.loads((REPO / m['notebook']).read_text()), m['old'], m['new'])
        for target in m['notebooks'] + [t.split('::')[0] for t in m['tests']]:
            assert (REPO / target).exists(), (m['id'], target)


def test_scratch_copy_has_the_tracked_files_and_no_venv(tmp_path):
    root = scratch_copy(tmp_path)
    assert (root / 'settings.ini').read_text() == (REPO / 'settings.ini').read_text()
    assert (root / 'tests' / 'mutate.py').exists() and not (root / '.venv').exists() and not (root / '.git').exists()


def test_table():
    rows = table([dict(id='m', status='caught', target='nbs/x.ipynb', seconds=12.4)]).splitlines()
    assert rows[0] == '| id | caught | by | seconds |' and rows[2] == '| m | caught | nbs/x.ipynb | 12 |'
