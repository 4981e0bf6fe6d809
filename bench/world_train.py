"""World-model training throughput: what one VAE and one DiT training step cost at 64 and 128 px, side by side.

For each size it times, on the default world-model configs (random init; the weights do not change the cost):
- VAE step: L1 + MSE + KL on a batch of 5-frame crops, forward and backward (`world.train.vae_loss`);
- VAE encode: one 17-frame clip at full size, forward only (what encoding the DiT's training set costs per clip);
- DiT step: the flow-matching loss on a batch of whole 17-frame clip latents, forward and backward.
The floor of a training step is its own forward pass (no autograd): each step prints as a ratio to it, so the
backward's overhead is visible, and the 128 / 64 px ratios show how the cost scales with the frame size. CPU by
default (`--device cuda` on a GPU); `--threads` sets torch's CPU threads.
"""
import argparse, statistics, time

import torch


def _median_s(fn, reps: int) -> float:
    fn()   # the first call allocates
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _one_size(size: int, batch: int, reps: int, device: str) -> dict:
    "Median seconds of the VAE and DiT steps, their forward floors and a clip encode at one frame size."
    from vega3d_nb.world.model import build_world_models, empty_prompt_embeds, world_scheduler
    from vega3d_nb.world.train import flow_matching_loss, vae_loss
    vae, dit = (m.to(device) for m in build_world_models())
    g = torch.Generator().manual_seed(0)
    crops = (torch.rand(batch, 3, 5, 32, 32, generator=g) * 2 - 1).to(device)
    clip = (torch.rand(1, 3, 17, size, size, generator=g) * 2 - 1).to(device)
    lat = torch.randn(batch, 16, 5, size // 8, size // 8, generator=g).to(device)
    emb, sch = empty_prompt_embeds(dit.config.text_dim).to(device), world_scheduler()
    out = dict(vae_step=_median_s(lambda: vae_loss(vae, crops, g)[0].backward(), reps),
               dit_step=_median_s(lambda: flow_matching_loss(dit, lat, emb, sch, g).backward(), reps))
    with torch.no_grad():
        out['vae_fwd'] = _median_s(lambda: vae_loss(vae, crops, g), reps)
        out['dit_fwd'] = _median_s(lambda: flow_matching_loss(dit, lat, emb, sch, g), reps)
        out['encode_clip'] = _median_s(lambda: vae.encode(clip).latent_dist.mode(), reps)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[64, 128])
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--reps', type=int, default=2)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    res = {s: _one_size(s, a.batch, a.reps, a.device) for s in a.sizes}
    print(f'device {a.device}, {a.threads} thread(s), batch {a.batch}; seconds (median of {a.reps})')
    print('| size | VAE step | / its forward | DiT step (17 frames) | / its forward | encode one clip |')
    print('|---|---|---|---|---|---|')
    for s, r in res.items():
        print(f"| {s} | {r['vae_step']:.2f} | {r['vae_step'] / r['vae_fwd']:.1f}x | {r['dit_step']:.2f} | "
              f"{r['dit_step'] / r['dit_fwd']:.1f}x | {r['encode_clip']:.2f} |")
    if len(res) > 1:
        lo, hi = res[min(res)], res[max(res)]
        print(f'{max(res)} / {min(res)} px: DiT step {hi["dit_step"] / lo["dit_step"]:.1f}x, '
              f'clip encode {hi["encode_clip"] / lo["encode_clip"]:.1f}x (VAE steps train on 32 px crops)')


if __name__ == '__main__':
    main()
