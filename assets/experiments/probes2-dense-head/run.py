"""Linear ridge vs the small conv head, side by side, on held-out physics clips (issue 17, item 4).

The shipped `vega3d-tiny-scenes` (our own trained weights), its random-init twin, its VAE latents and the trivial
baselines; layers 1/3/5/7 at t=300, 3 seeds, release setting (temporal='frames'). Writes physics_depth_sweep.csv and
summary.md next to this file.

    python assets/experiments/probes2-dense-head/run.py [--from_csv]   # --from_csv: only rebuild summary.md
"""
import os, sys, time
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MUJOCO_GL', 'egl')
from vega3d_nb.sweep import load_sweep_csv
from vega3d_nb.world_sweeps import markdown_table, run_world_sweep, summary_table

here = Path(__file__).parent
t0 = time.perf_counter()
if '--from_csv' in sys.argv:
    depth, who, wall = load_sweep_csv(here / 'physics_depth_sweep.csv'), 'vega3d-tiny-scenes (trained here)', None
else:
    ws = run_world_sweep('vega3d-tiny-scenes', n_train=24, n_val=8, n_test=12, n_frames=8, size=64, timesteps=(300,),
                         layers=[1, 3, 5, 7], seeds=(0, 1, 2), out_dir=here, world='physics', objects=False,
                         correspondence=False, dense_head=True, progress=True)
    depth, who, wall = ws.depth, ws.backbone, time.perf_counter() - t0
cols = ('none.delta1', 'dense.none.delta1', 'none.abs_rel', 'dense.none.abs_rel', 'scale_shift.delta1',
        'dense.scale_shift.delta1')
lines = [f'# Linear ridge vs conv head on held-out physics clips', '',
         f'{who}; 24 train / 8 val / 12 test clips, 8 frames at 64 px; t=300, layers 1/3/5/7, seeds 0-2, release '
         'setting (temporal=frames); each source at its best cell on the column named above its table; mean ± std '
         'over seeds' + (f'; wall time {wall:.0f} s on {os.cpu_count()} shared CPUs.' if wall else '.'), '']
for sel in ('none.delta1', 'dense.none.delta1'):
    lines += [f'Best cell by `{sel}`:', '', markdown_table(summary_table(depth, cols, sel)), '']
(here / 'summary.md').write_text('\n'.join(lines))
print('\n'.join(lines))
