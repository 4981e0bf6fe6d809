"""The explorer's latencies against the app's goals, through the explorer services the app calls, side by side.

Measured at the app's default clip (explorer.DEFAULT_FRAMES frames at DEFAULT_SIZE px) and at other sizes:
- first picture: load the synthetic sample, write its mp4, extract all layers at one timestep, PCA and the
  side-by-side PCA mp4, as the app's Load button does (goal under 3 s);
- new timestep: a timestep the cache has not seen (one forward for all layers, then PCA; goal under 1.5 s);
- layer move: another layer at a seen timestep (no forward, PCA only; goal under 0.3 s).
The floor is the cached layer move: the uncached work is printed as a ratio to it. Backbone: vega3d-tiny-scenes
(trained here) unless --backbone is given; CPU by default. No model is warmed beyond one forward before timing.
The CPU may be shared: the load average is printed before and after.
"""
import argparse, os, shutil, statistics, tempfile, time

GOALS = dict(first=3.0, new_t=1.5, layer=0.3)  # seconds


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _first_picture(E, bb, frames: int, size: int, cache, workdir):
    "What the Load button runs: read the sample, write its mp4, features, PCA and the side-by-side mp4."
    inp = E.read_input(sample=E.SYNTHETIC_SAMPLE, num_frames=frames, size=size)
    E.input_video(inp, workdir)
    v = E.features_view(inp, E.view_settings(bb, bb.default_timestep, bb.default_layer), cache)
    return E.pca_video(inp, v, workdir)


def _one_size(bb, size: int, frames: int, reps: int, workdir) -> dict:
    "Median seconds of the three latencies at one resolution, and the feature grid size."
    from vega3d_nb import explorer as E
    warm = E.read_input(sample=E.HELDOUT_SAMPLE, num_frames=frames, size=size)
    E.features_view(warm, E.view_settings(bb, 500, 0), E.ExplorerCache())  # the first forward allocates
    first, unc, cac = [], [], []
    lo, hi = bb.valid_timestep_range
    for i in range(reps):
        cache = E.ExplorerCache()
        first.append(_timed(lambda: _first_picture(E, bb, frames, size, cache, workdir))[1])
        inp = E.read_input(sample=E.SYNTHETIC_SAMPLE, num_frames=frames, size=size)
        t = lo + (hi - lo) * (i + 1) / (reps + 2)
        v, dt = _timed(lambda: E.features_view(inp, E.view_settings(bb, t, 0), cache))
        assert not v.cached
        unc.append(dt)
        for layer in range(1, bb.num_layers):
            v, dt = _timed(lambda: E.features_view(inp, E.view_settings(bb, t, layer), cache))
            assert v.cached
            cac.append(dt)
    med = statistics.median
    return dict(first=med(first), new_t=med(unc), layer=med(cac), grid=v.grid.grid_size)


def main(argv=None):
    from vega3d_nb.explorer import DEFAULT_FRAMES, DEFAULT_SIZE
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--backbone', default='vega3d-tiny-scenes')
    p.add_argument('--device', default='cpu')
    p.add_argument('--frames', type=int, default=DEFAULT_FRAMES)
    p.add_argument('--sizes', default=f'64,{DEFAULT_SIZE}')
    p.add_argument('--reps', type=int, default=3)
    a = p.parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from vega3d_nb.backbones import load_backbone
    bb = load_backbone(a.backbone, device=a.device)
    workdir = tempfile.mkdtemp(prefix='vega3d-latency-')
    print(f'load average {_load()}')
    print(f'{bb.name} ({bb.weights_label}) on {bb.device}, {bb.num_layers} layers; {a.frames} frames of the synthetic '
          f'sample; median of {a.reps}; default size {DEFAULT_SIZE} px; goals (s): {GOALS}')
    print(f'{"size":>5} {"grid":>6} {"first pic s":>11} {"new t s":>8} {"layer ms":>9} {"new t / layer":>13} '
          f'{"vs goals (first, new t, layer)":>31}')
    for size in [int(s) for s in a.sizes.split(',')]:
        r = _one_size(bb, size, a.frames, a.reps, workdir)
        vs = ', '.join(f'{r[k] / GOALS[k]:.2f}x' for k in ('first', 'new_t', 'layer'))
        print(f'{size:>5} {"x".join(map(str, r["grid"])):>6} {r["first"]:>11.2f} {r["new_t"]:>8.2f} '
              f'{r["layer"] * 1e3:>9.1f} {r["new_t"] / r["layer"]:>12.0f}x {vs:>31}')
    print(f'load average {_load()}')
    shutil.rmtree(workdir, ignore_errors=True)


def _load() -> str:
    "The 1, 5 and 15 minute load averages (the CPU may be shared), and the cores."
    return ', '.join(f'{v:.2f}' for v in os.getloadavg()) + f' on {os.cpu_count()} cores'


if __name__ == '__main__':
    main()
