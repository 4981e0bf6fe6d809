"""Slider move -> updated PCA image latency of the app, through its handler functions, cached vs uncached, in one run.

Uncached: a timestep the session has not seen (one forward for all layers, then PCA). Cached: a layer move at a seen
timestep (no forward, PCA only). Backbone: tiny-random-wan (random weights) unless --backbone is given; CPU by default.
"""
import argparse, os, statistics, sys, tempfile, time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'app'))
import handlers as H


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--backbone', default='tiny-random-wan'); p.add_argument('--device', default='cpu')
    p.add_argument('--frames', type=int, default=9); p.add_argument('--sizes', default='64,128'); p.add_argument('--reps', type=int, default=5)
    a = p.parse_args(argv)
    shelf = H.BackboneShelf(a.device)
    bb = shelf.get(a.backbone)
    models = H.AppModels(shelf, bb.name, Path(tempfile.mkdtemp(prefix='vega3d-bench-')))
    lo, hi = H.backbone_controls(bb)['t_min'], H.backbone_controls(bb)['t_max']
    print(f'{bb.name} ({bb.weights_label}) on {bb.device}, {bb.num_layers} layers; {a.frames} frames of the synthetic sample; median of {a.reps}')
    print(f'{"size":>6} {"grid":>7} {"uncached ms":>12} {"cached ms":>10} {"speed-up":>9}')
    for size in [int(s) for s in a.sizes.split(',')]:
        s = H.load_input(models, H.Session(), sample=H.SYNTHETIC_SAMPLE, num_frames=a.frames, size=size)
        H.features_view(s, bb, 500, 0)  # warm-up (first forward allocates)
        ts = [lo + (hi - lo) * (i + 1) / (a.reps + 2) for i in range(a.reps)]
        unc, cac = [], []
        for i, t in enumerate(ts):
            t0 = time.perf_counter(); v = H.features_view(s, bb, t, 0); unc.append(time.perf_counter() - t0)
            assert not v.cached
            for layer in range(1, bb.num_layers):
                t0 = time.perf_counter(); v = H.features_view(s, bb, t, layer); cac.append(time.perf_counter() - t0)
                assert v.cached
        u, c = statistics.median(unc) * 1e3, statistics.median(cac) * 1e3
        print(f'{size:>6} {"x".join(map(str, v.grid.grid_size)):>7} {u:>12.0f} {c:>10.1f} {u / c:>8.0f}x')
    H.cleanup(models.workdir)


if __name__ == '__main__':
    main()
