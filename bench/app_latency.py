"""Slider move -> updated PCA image latency of the app, through the explorer service it calls, cached vs uncached.

Uncached: a timestep the cache has not seen (one forward for all layers, then PCA). Cached: a layer move at a seen
timestep (no forward, PCA only). Backbone: tiny-random-wan (random weights) unless --backbone is given; CPU by default.
"""
import argparse, os, statistics, time


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _one_size(bb, size: int, frames: int, reps: int) -> tuple:
    "Median uncached and cached latencies (s) at one resolution, and the feature grid size."
    from vega3d_nb import explorer as E
    inp, cache = E.read_input(sample=E.SYNTHETIC_SAMPLE, num_frames=frames, size=size), E.ExplorerCache()
    E.features_view(inp, E.view_settings(bb, 500, 0), cache)  # warm-up (the first forward allocates)
    lo, hi = bb.valid_timestep_range
    unc, cac = [], []
    for i in range(reps):
        t = lo + (hi - lo) * (i + 1) / (reps + 2)
        v, dt = _timed(lambda: E.features_view(inp, E.view_settings(bb, t, 0), cache))
        assert not v.cached
        unc.append(dt)
        for layer in range(1, bb.num_layers):
            v, dt = _timed(lambda: E.features_view(inp, E.view_settings(bb, t, layer), cache))
            assert v.cached
            cac.append(dt)
    return statistics.median(unc), statistics.median(cac), v.grid.grid_size


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--backbone', default='tiny-random-wan')
    p.add_argument('--device', default='cpu')
    p.add_argument('--frames', type=int, default=9)
    p.add_argument('--sizes', default='64,128')
    p.add_argument('--reps', type=int, default=5)
    a = p.parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from vega3d_nb.backbones import load_backbone
    bb = load_backbone(a.backbone, device=a.device)
    print(f'{bb.name} ({bb.weights_label}) on {bb.device}, {bb.num_layers} layers; {a.frames} frames of the synthetic '
          f'sample; median of {a.reps}')
    print(f'{"size":>6} {"grid":>7} {"uncached ms":>12} {"cached ms":>10} {"speed-up":>9}')
    for size in [int(s) for s in a.sizes.split(',')]:
        u, c, grid = _one_size(bb, size, a.frames, a.reps)
        print(f'{size:>6} {"x".join(map(str, grid)):>7} {u * 1e3:>12.0f} {c * 1e3:>10.1f} {u / c:>8.0f}x')


if __name__ == '__main__':
    main()
