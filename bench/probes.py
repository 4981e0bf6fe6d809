"""Benchmark for vega3d_nb.ridge / depth_probe and vega3d_nb.sweep (issues 4 and 17).

1. Closed-form ridge (`ridge.fit_ridge`: float32 Gram chunks summed in float64, every lambda from one float64
   eigendecomposition) on an N x D problem (default 50k x 1536), measured side by side in one run:
   - the floor: one float32 `X.T @ X` GEMM (the Gram product every exact solver needs), beside `ridge.gram`'s
     upper-block Gram, which multiplies only the blocks on and above the diagonal (5/8 of the flops);
   - fixed penalty: `fit_ridge(lambda)` vs scikit-learn `Ridge(alpha=N * lambda)` (default solver, standardised
     features in float64, where its test error equals ours, and in float32, where it is faster but differs);
   - penalty chosen: `fit_ridge` over a 10-value grid on a validation split vs `RidgeCV` over the same grid (its
     efficient leave-one-out CV) on the training split;
   - memory: the peak resident memory (VmHWM) that `fit_ridge_stream` adds on chunks made on the fly (the matrix
     never exists) against a fit on the matrix held in memory, each in a fresh process.
2. Wall time of a full sweep, 4 timesteps x 8 layers x 3 seeds over 16 scene clips (12 train, 4 test), on a
   tiny-random Wan backbone (random weights) plus its random-init twin and every baseline, on CPU.

    python bench/probes.py [--n 50000] [--d 1536] [--skip_sweep] [--skip_ridge] [--seeds 3]
"""
import argparse, os, subprocess, sys, time
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np
import torch


def _problem(n, d, seed=0, k=64):
    "Low-rank features plus noise (like real features) and a noisy linear target: a generator of (X, y) makers."
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(k, d, generator=g) / k ** 0.5
    w_true = torch.randn(k, generator=g)
    def make(m):
        Z = torch.randn(m, k, generator=g)
        return (Z @ A + 0.5 * torch.randn(m, d, generator=g)).float(), Z @ w_true + 0.3 * torch.randn(m, generator=g)
    return make


def _timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def _peak_rss_mb(mode, n, d, chunk=8192):
    "Peak resident memory (MB, VmHWM) a fresh process adds fitting the problem streamed ('stream') or held ('matrix')."
    here = os.path.dirname(os.path.abspath(__file__))
    hwm = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
    code = (f"import torch, sys; sys.path.insert(0, {here!r}); from probes import _problem; "
            f"from vega3d_nb.ridge import fit_ridge_stream, fit_ridge; make = _problem({n}, {d}); "
            f"fit_ridge_stream(iter([make({chunk})]), [1.]); "   # warm-up: allocator, BLAS and eigh workspaces
            f"base = {hwm}; chunks = (make({chunk}) for _ in range({n} // {chunk})); "
            + ("fit_ridge_stream(chunks, [1.]); " if mode == 'stream' else
               "X, y = map(torch.cat, zip(*chunks)); fit_ridge(X, y, [1.]); ")
            + f"print(({hwm} - base) / 1024)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def ridge_bench(n, d, n_val, n_test, seed=0, repeat=3):
    from sklearn.linear_model import Ridge, RidgeCV
    from vega3d_nb.ridge import fit_ridge, gram, DEFAULT_LAMBDAS
    make = _problem(n, d, seed)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = make(n), make(n_val), make(n_test)
    mse = lambda p: float(((torch.as_tensor(p).double() - yte.double()) ** 2).mean())
    print(f'ridge problem: train {n} x {d}, val {n_val}, test {n_test} (float32 features), '
          f'torch threads {torch.get_num_threads()}; best of {repeat} runs, interleaved (RidgeCV: one run)')
    fit = fit_ridge(Xtr, ytr, DEFAULT_LAMBDAS, Xva, yva)
    lam = fit.lam
    # scikit-learn gets the features already standardised (not timed): float64 as its solvers use, and float32
    Str = ((Xtr.double() - fit.mean) / fit.std).numpy()
    Ste = ((Xte.double() - fit.mean) / fit.std).numpy()
    Str32, Ste32 = Str.astype(np.float32), Ste.astype(np.float32)
    runs = {'floor': lambda: Xtr.T @ Xtr, 'blocks': lambda: gram(Xtr),
            'cf': lambda: fit_ridge(Xtr, ytr, [lam]), 'cf_cv': lambda: fit_ridge(Xtr, ytr, DEFAULT_LAMBDAS, Xva, yva),
            'sk': lambda: Ridge(alpha=lam * n).fit(Str, ytr.numpy()),
            'sk32': lambda: Ridge(alpha=lam * n).fit(Str32, ytr.numpy().astype(np.float32))}
    t, out = {k: float('inf') for k in runs}, {}
    for _ in range(repeat):
        for k, f in runs.items():
            out[k], dt = _timed(f)
            t[k] = min(t[k], dt)
    skcv, t_skcv = _timed(lambda: RidgeCV(alphas=[l * n for l in DEFAULT_LAMBDAS]).fit(Str, ytr.numpy()))
    e = {'cf': mse(out['cf'].predict(Xte)), 'cf_cv': mse(out['cf_cv'].predict(Xte)), 'sk': mse(out['sk'].predict(Ste)),
         'sk32': mse(out['sk32'].predict(Ste32)), 'skcv': mse(skcv.predict(Ste))}
    del Str, Ste, Str32, Ste32
    print(f'  chosen lambda (closed form, validation split): {lam:g}; RidgeCV chose alpha/N = {skcv.alpha_ / n:g}')
    print(f'  {"method":52s} {"fit s":>8s} {"test MSE":>10s}')
    nan = float('nan')
    for name, tt, err in [('floor: one float32 X.T @ X (GEMM)', t['floor'], nan),
                          ('ridge.gram: float32, upper 4x4 blocks (5/8 of a GEMM)', t['blocks'], nan),
                          ('fit_ridge, fixed lambda', t['cf'], e['cf']),
                          ('sklearn Ridge(alpha=N*lambda), float64 input', t['sk'], e['sk']),
                          ('sklearn Ridge(alpha=N*lambda), float32 input', t['sk32'], e['sk32']),
                          ('fit_ridge, 10 lambdas on a val split', t['cf_cv'], e['cf_cv']),
                          ('sklearn RidgeCV(10 alphas, LOO), float64 input', t_skcv, e['skcv'])]:
        print(f'  {name:52s} {tt:8.2f} {err:10.6f}')
    rel = lambda a: abs(e[a] - e['cf']) / e['cf']
    print(f'  fit_ridge / float32 GEMM Gram floor: fixed lambda {t["cf"] / t["floor"]:.2f}x, '
          f'10 lambdas {t["cf_cv"] / t["floor"]:.2f}x (goal: within 1.3x)')
    print(f'  Ridge (float64) / fit_ridge: {t["sk"] / t["cf"]:.1f}x faster (goal >= 3x), test MSE rel diff '
          f'{rel("sk"):.1e} (goal < 1e-6); Ridge (float32): {t["sk32"] / t["cf"]:.1f}x, rel diff {rel("sk32"):.1e}')
    print(f'  RidgeCV / fit_ridge with selection: {t_skcv / t["cf_cv"]:.1f}x faster (goal >= 30x), '
          f'test MSE {e["cf_cv"]:.6f} vs {e["skcv"]:.6f}')
    print(f'  memory: the {n} x {d} float32 matrix is {n * d * 4 / 2 ** 20:.0f} MB; peak extra resident memory, '
          f'streamed fit {_peak_rss_mb("stream", n, d):.0f} MB vs matrix held {_peak_rss_mb("matrix", n, d):.0f} MB '
          f'(the running sums are {(d * d + 3 * d) * 8 / 2 ** 20:.0f} MB)')


def sweep_bench(seeds, n_layers=8, n_train=12, n_test=4):
    from vega3d_nb.backbones import build_tiny_random_backbone, random_init_like
    from vega3d_nb.extractor import feature_source
    from vega3d_nb.scenes import SceneDataset
    from vega3d_nb.sweep import sweep, sweep_table
    bb = build_tiny_random_backbone('wan', seed=0, device='cpu', dtype=torch.float32, num_layers=n_layers)
    tr = list(SceneDataset(n_train, 'train', n_frames=9, size=(64, 64)))
    te = list(SceneDataset(n_test, 'test', n_frames=9, size=(64, 64)))
    ts = [100, 300, 500, 700]
    t = time.perf_counter()
    df = sweep(feature_source(bb), tr, te, timesteps=ts, layers=list(range(n_layers)), seeds=tuple(range(seeds)),
               random_source=feature_source(random_init_like(bb, seed=1)), progress=False)
    dt = time.perf_counter() - t
    print(f'sweep: {len(ts)} timesteps x {n_layers} layers x {seeds} seeds, '
          f'{n_train} train + {n_test} test clips (9 x 64 x 64), '
          f'tiny-random-wan (random weights) + random-init twin + baselines, CPU: {dt:.1f} s')
    import pandas as pd
    pd.set_option('display.width', 250)
    best = df[df.source == 'backbone'].sort_values('none.delta1', ascending=False).head(3)
    print(sweep_table(pd.concat([best, df[df.source.isin(['position', 'constant', 'rgb', 'identity'])]])).to_string())


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=50_000)
    ap.add_argument('--d', type=int, default=1536)
    ap.add_argument('--seeds', type=int, default=3)
    ap.add_argument('--skip_sweep', action='store_true')
    ap.add_argument('--skip_ridge', action='store_true')
    a = ap.parse_args()
    print(f'machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}')
    if not a.skip_ridge:
        ridge_bench(a.n, a.d, n_val=a.n // 5, n_test=a.n // 4)
    if not a.skip_sweep:
        sweep_bench(a.seeds)
    print(f'load average at the end: {os.getloadavg()[0]:.1f}')
