"""Benchmark for vega3d_nb.worlds.mujoco.shared_gl (issue 14): object renders with one GL context shared.

`worlds.objects.render_object` builds a MuJoCo model per object and renders it. Measured side by side in one run,
on the same specs (single views, default 16 at 64 px, every pybullet mesh), repeated and interleaved:
- own: each render opens its own GL context (the default, `gl=None`);
- shared: every render draws in one context opened by `shared_gl` (`render_object(..., gl=gl)`);
- floor: the two render passes alone (`MujocoRenderer.render`) on one renderer already built, the least any
  render pays.
Prints seconds per render and the ratios own / shared and shared / floor. The images are the same either way.

    python bench/objects_gl.py [--n 16] [--size 64] [--repeats 3]
"""
import argparse, time

import numpy as np


def main(n: int, size: int, repeats: int):
    from vega3d_nb.worlds.mujoco import MujocoRenderer, import_mujoco, shared_gl
    from vega3d_nb.worlds.objects import _build, make_object_spec, render_object
    specs = [make_object_spec(s) for s in range(n)]
    render_object(specs[0], 1, size)                          # warm-up: imports, mesh files, shader cache
    own, shared = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        a = [render_object(s, 1, size) for s in specs]
        own.append((time.perf_counter() - t) / n)
        t = time.perf_counter()
        with shared_gl() as gl: b = [render_object(s, 1, size, gl=gl) for s in specs]
        shared.append((time.perf_counter() - t) / n)
    same = all(np.array_equal(x.depth, y.depth) and np.array_equal(x.clip.frames, y.clip.frames) for x, y in zip(a, b))
    m, d = _build(specs[0], (size, size))
    import_mujoco().mj_forward(m, d)
    r = MujocoRenderer(m, (size, size))
    try:
        t = time.perf_counter()
        for _ in range(n): r.render(d, {0: 1})
        floor = (time.perf_counter() - t) / n
    finally: r.close()
    o, s = min(own), min(shared)
    print(f'{n} object renders at {size} px, best of {repeats}; identical images: {same}')
    print(f'own GL context per render: {o * 1000:.1f} ms/render')
    print(f'one shared GL context:     {s * 1000:.1f} ms/render')
    print(f'floor (render passes only): {floor * 1000:.1f} ms/render')
    print(f'ratio own / shared: {o / s:.2f}x; shared / floor: {s / floor:.2f}x')


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=16)
    p.add_argument('--size', type=int, default=64)
    p.add_argument('--repeats', type=int, default=3)
    a = p.parse_args()
    main(a.n, a.size, a.repeats)
