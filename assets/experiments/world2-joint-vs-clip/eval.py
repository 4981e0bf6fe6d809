"""Release-setting (temporal='frames') and video probes of the joint vs clip-only DiTs on held-out physics clips."""
import sys, time, json, torch
from pathlib import Path
torch.set_num_threads(1)
from vega3d_nb.backbones import load_backbone
from vega3d_nb.world_sweeps import physics_clip_splits, world_sweep, world_markdown
from vega3d_nb.sweep import save_sweep_csv
name, path, temporal = sys.argv[1], sys.argv[2], sys.argv[3]
snap = sys.argv[4] if len(sys.argv) > 4 else None
out = Path('/work/wm2/eval')
tr, va, te = physics_clip_splits(16, 12, 0, 8, 64)
bb = load_backbone(path, device='cpu')
if snap:
    bb.denoiser.load_state_dict(torch.load(snap, weights_only=True))
t0 = time.time()
ws = world_sweep(bb, tr, te, timesteps=(300,), layers=[1, 3, 5, 7], seeds=(0, 1), temporal=temporal,
                 gaps=(1, 4), n_queries=50)
tag = f'{name}_{temporal}'
save_sweep_csv(ws.depth, out / f'{tag}_depth.csv')
save_sweep_csv(ws.objects, out / f'{tag}_objects.csv')
(out / f'{tag}.md').write_text(world_markdown(ws) + f'\n\n(wall {time.time() - t0:.0f} s)\n')
print(tag, 'done', time.time() - t0)
