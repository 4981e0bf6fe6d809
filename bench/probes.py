"""Benchmark for vega3d_nb.depth_probe and vega3d_nb.sweep (issue 4).

1. Closed-form ridge (`depth_probe.fit_ridge`, float64 normal equations in torch) vs scikit-learn `Ridge` (default
   solver) and `RidgeCV` on the same N x D problem (default 200k x 1536): fit time and test MSE, measured in one run.
   - fixed penalty: `fit_ridge(lambda)` vs `Ridge(alpha=N * lambda)` (the same solution);
   - penalty chosen: `fit_ridge` over a 10-value grid on a validation split vs `RidgeCV` over the same grid (its
     efficient leave-one-out CV) on the training split.
2. Wall time of a full sweep, 4 timesteps x 8 layers x 3 seeds over 16 scene clips (12 train, 4 test), on a
   tiny-random Wan backbone (random weights) plus its random-init twin and every baseline, on CPU.

    python bench/probes.py [--n 200000] [--d 1536] [--skip_sweep] [--skip_ridge] [--seeds 3]
"""
import argparse, os, sys, time
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np
import torch


def ridge_bench(n, d, n_val, n_test, seed=0):
    from sklearn.linear_model import Ridge, RidgeCV
    from vega3d_nb.depth_probe import fit_ridge, DEFAULT_LAMBDAS
    g = torch.Generator().manual_seed(seed)
    k = 64  # low-rank structure plus noise, like real features
    def make(m):
        Z = torch.randn(m, k, generator=g)
        return (Z @ A + 0.5 * torch.randn(m, d, generator=g)).float(), Z
    A = torch.randn(k, d, generator=g) / k ** 0.5
    w_true = torch.randn(k, generator=g)
    Xtr, Ztr = make(n)
    Xva, Zva = make(n_val)
    Xte, Zte = make(n_test)
    ytr, yva, yte = [Z @ w_true + 0.3 * torch.randn(len(Z), generator=g) for Z in (Ztr, Zva, Zte)]
    mse = lambda p: float(((torch.as_tensor(p).double() - yte.double()) ** 2).mean())
    print(f'ridge problem: train {n} x {d}, val {n_val}, test {n_test} (float32 features), '
          f'torch threads {torch.get_num_threads()}')

    t = time.perf_counter()
    fit = fit_ridge(Xtr, ytr, DEFAULT_LAMBDAS, Xva, yva)
    t_cf_cv = time.perf_counter() - t
    lam = fit.lam
    t = time.perf_counter()
    fit1 = fit_ridge(Xtr, ytr, [lam])
    t_cf = time.perf_counter() - t
    e_cf_cv, e_cf = mse(fit.predict(Xte)), mse(fit1.predict(Xte))

    # scikit-learn gets the features already standardised (not timed), float64 as its solvers use
    Str = ((Xtr.double() - fit1.mean) / fit1.std).numpy()
    Ste = ((Xte.double() - fit1.mean) / fit1.std).numpy()
    t = time.perf_counter()
    sk = Ridge(alpha=lam * n).fit(Str, ytr.numpy())
    t_sk = time.perf_counter() - t
    e_sk = mse(sk.predict(Ste))
    alphas = [l * n for l in DEFAULT_LAMBDAS]
    t = time.perf_counter()
    skcv = RidgeCV(alphas=alphas).fit(Str, ytr.numpy())
    t_skcv = time.perf_counter() - t
    e_skcv = mse(skcv.predict(Ste))
    print(f'  chosen lambda (closed form, validation split): {lam:g}; RidgeCV chose alpha/N = {skcv.alpha_ / n:g}')
    print(f'  {"method":44s} {"fit s":>8s} {"test MSE":>10s}')
    for name, tt, e in [('closed form, fixed lambda (torch float64)', t_cf, e_cf),
                        ('sklearn Ridge(alpha=N*lambda), default solver', t_sk, e_sk),
                        ('closed form, 10 lambdas on a val split', t_cf_cv, e_cf_cv),
                        ('sklearn RidgeCV(10 alphas, LOO)', t_skcv, e_skcv)]:
        print(f'  {name:44s} {tt:8.2f} {e:10.5f}')
    print(f'  fit-time ratio Ridge / closed form: {t_sk / t_cf:.1f}x '
          f'(test MSE {e_sk:.5f} vs {e_cf:.5f}, rel diff {abs(e_sk - e_cf) / e_cf:.1e})')
    print(f'  fit-time ratio RidgeCV / closed form with selection: {t_skcv / t_cf_cv:.1f}x '
          f'(test MSE {e_skcv:.5f} vs {e_cf_cv:.5f})')


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
    ap.add_argument('--n', type=int, default=200_000)
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
