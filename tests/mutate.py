"""`make mutate`: put known bugs into a scratch copy of the repo, one at a time, and check the suite catches each.

Each `tests/mutations/*.json` file holds a list of mutations `{id, notebook, old, new, notebooks, tests, why}`.
`old` must occur exactly once in the notebook's code cells, so a mutation that no longer applies is an error, not a
silent skip. For each mutation we copy the repo (tracked and unignored files, no venv), replace `old` by `new` in the
cell, run `nbdev_export`, then the listed notebooks (`nbdev_test --path`) and pytest targets, stopping at the first
failure: a failure means the bug is caught. The unmutated copy must pass the same targets first, else a catch means
nothing. Not part of CI (it is slow): `make mutate`, or `python tests/mutate.py --only ID`, `--list`, `--jobs N`.
"""
import argparse, hashlib, json, os, shutil, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv running this script holds nbdev_export and nbdev_test
KEYS = ('id', 'notebook', 'old', 'new', 'notebooks', 'tests', 'why')


def tool(name: str) -> str:
    "A console script of the venv running this script (else the one on PATH)."
    return str(BIN / name) if (BIN / name).exists() else (shutil.which(name) or name)


def load_mutations(folder: Path) -> list:
    "Every mutation in `folder/*.json`, checked for its keys and for unique ids."
    muts = []
    for f in sorted(Path(folder).glob('*.json')):
        for m in json.loads(f.read_text()):
            missing = [k for k in KEYS if k not in m]
            if missing:
                raise ValueError(f"{f.name}: mutation {m.get('id', '?')!r} lacks {missing}; give all of {KEYS}")
            if not (m['notebooks'] or m['tests']):
                raise ValueError(f"{f.name}: mutation {m['id']!r} names no notebook and no test to run")
            muts.append(dict(m, file=f.name))
    ids = [m['id'] for m in muts]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"duplicate mutation ids {dup}: make each id unique")
    return muts


def apply_mutation(nb: dict, old: str, new: str) -> dict:
    "The notebook `nb` with `old` replaced by `new` in the one code cell holding it exactly once."
    hits = [(i, ''.join(c['source']).count(old)) for i, c in enumerate(nb['cells']) if c['cell_type'] == 'code']
    hits = [(i, n) for i, n in hits if n]
    if sum(n for _, n in hits) != 1:
        raise ValueError(f"`old` must occur exactly once in the code cells, found {sum(n for _, n in hits)} times: "
                         f"update the mutation to the current code")
    out = json.loads(json.dumps(nb))
    cell = out['cells'][hits[0][0]]
    cell['source'] = ''.join(cell['source']).replace(old, new).splitlines(keepends=True)
    return out


def scratch_copy(dst: Path, src: Path = REPO) -> Path:
    "Copy the repo's tracked and unignored files (the working tree as it is, no venv or caches) to `dst`."
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=src, check=True,
                           capture_output=True, text=True).stdout.split('\0')
    for f in filter(None, files):
        if (src / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / f, dst / f)
    return dst


def lib_hash(root: Path) -> str:
    "A hash of the generated library, to see whether a mutation reached it."
    h = hashlib.sha1()
    for f in sorted((root / 'vega3d_nb').rglob('*.py')):
        h.update(f.read_bytes())
    return h.hexdigest()


def run_targets(root: Path, notebooks: list, tests: list, timeout: float) -> tuple:
    "Run the notebooks, then the pytest targets, in `root`; `(first failing target or None, its output tail)`."
    env = dict(os.environ, PYTHONPATH=str(root), VEGA3D_CACHE=str(root / '.cache'), PYTHONHASHSEED='0',
               HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false')
    env.setdefault('OMP_NUM_THREADS', '1')
    cmds = [(nb, [tool('nbdev_test'), '--path', nb]) for nb in notebooks]
    if tests:
        cmds.append((' '.join(tests), [sys.executable, '-m', 'pytest', '-q', '-x', '-p', 'no:cacheprovider', *tests]))
    for name, cmd in cmds:
        try:
            r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f'{name} (timeout)', ''
        if r.returncode:
            return name, (r.stdout + r.stderr)[-2000:]
    return None, ''


def baseline(muts: list, timeout: float) -> tuple:
    "Run every target of `muts` once on a clean copy: `(first failing target or None, its output tail)`."
    nbs = sorted({nb for m in muts for nb in m['notebooks']})
    tests = sorted({t for m in muts for t in m['tests']})
    with tempfile.TemporaryDirectory(prefix='mutate-baseline-') as tmp:
        return run_targets(scratch_copy(Path(tmp)), nbs, tests, timeout)


def check(m: dict, timeout: float) -> dict:
    "Apply mutation `m` to a scratch copy, export, and run its targets: caught if one of them fails."
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix=f"mutate-{m['id']}-") as tmp:
        root = scratch_copy(Path(tmp))
        nb_path = root / m['notebook']
        before = lib_hash(root)
        nb_path.write_text(json.dumps(apply_mutation(json.loads(nb_path.read_text()), m['old'], m['new']), indent=1,
                                      ensure_ascii=False) + '\n')
        r = subprocess.run([tool('nbdev_export')], cwd=root, capture_output=True, text=True)
        if r.returncode or lib_hash(root) == before:
            return dict(m, status='bad mutation', target='nbdev_export', seconds=time.time() - t0,
                        log=r.stderr[-2000:] or 'the mutation did not change vega3d_nb/: mutate an export cell')
        failed, log = run_targets(root, m['notebooks'], m['tests'], timeout)
        return dict(m, status='caught' if failed else 'NOT caught', target=failed or '', log=log,
                    seconds=time.time() - t0)


def table(results: list) -> str:
    "The results as a markdown table."
    rows = ['| id | caught | by | seconds |', '|---|---|---|---|']
    rows += [f"| {r['id']} | {r['status']} | {r['target']} | {r['seconds']:.0f} |" for r in results]
    return '\n'.join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--only', action='append', help='run only this mutation id (repeatable)')
    p.add_argument('--list', action='store_true', help='list the mutations and exit')
    p.add_argument('--jobs', type=int, default=1, help='mutations run side by side')
    p.add_argument('--no-baseline', action='store_true', help='skip the clean-copy run of all targets')
    p.add_argument('--timeout', type=float, default=900, help='seconds per notebook or pytest run')
    p.add_argument('--folder', default=str(REPO / 'tests' / 'mutations'))
    a = p.parse_args(argv)
    muts = load_mutations(Path(a.folder))
    if a.only:
        unknown = set(a.only) - {m['id'] for m in muts}
        if unknown:
            p.error(f"unknown mutation ids {sorted(unknown)}; see --list")
        muts = [m for m in muts if m['id'] in a.only]
    if a.list:
        print('\n'.join(f"{m['id']:32} {m['notebook']:28} {m['why']}" for m in muts))
        return 0
    if not a.no_baseline:
        failed, log = baseline(muts, a.timeout)
        if failed:
            print(f"{log}\nthe unmutated repo fails {failed}: fix that first, or no catch means anything")
            return 2
    with ThreadPoolExecutor(a.jobs) as ex:
        results = list(ex.map(lambda m: check(m, a.timeout), muts))
    for r in results:
        if r['status'] != 'caught' and r['log']:
            print(f"--- {r['id']}: {r['status']} ({r['target']})\n{r['log']}\n")
    print(table(results))
    bad = [r['id'] for r in results if r['status'] != 'caught']
    print(f"\n{len(results) - len(bad)}/{len(results)} caught" + (f"; not caught or broken: {bad}" if bad else ''))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
