"""Benchmark of the extractor on a tiny-random Wan (random weights), 12 blocks of width 256 by default.

Four measurements, each side by side in one run (the two variants alternate within every repeat; medians of >= 5):
  (a) all L layers captured in one pass  vs  one pass per layer          (expect ~L x; ~(L+1)/2 x when each pass exits early)
  (b) early exit after block l           vs  the full forward            (expect ~num_blocks / (l + 1))
  (c) cached second call                 vs  first call (encode + forward + write)
  (d) peak memory of (a): one pass holding all L captures vs one layer per pass
Usage: .venv/bin/python bench/extract.py [--repeats 5] [--layers 12] [--frames 17] [--size 160]
With --real_size (for a GPU): the Wan2.1-T2V-1.3B configs with random weights, 33 frames x 480x832, bf16, block 20:
prints seconds per clip, feature frames per second and peak memory (against estimate_memory) for temporal='frames'
(default 4-frame batches, and all 33 at once) and 'video'.
With --memory (CPU): peak memory of the real configs at 1, 2 (unchunked and chunked) and 4 (chunked) frames of
240x416 against estimate_memory; chunk_frames=1 keeps it flat as frames grow.
"""
import argparse, os, resource, statistics, subprocess, sys, tempfile, threading, time

import psutil
import torch

from vega3d_nb.core import Clip, default_device
from vega3d_nb.backbones import build_tiny_random_backbone
from vega3d_nb.encoding import ExtractSettings, encode_clip, chunk_size
from vega3d_nb.memory import estimate_memory
from vega3d_nb.extractor import block_features, extract_features


class PeakMemory:
    "Peak extra memory (MB) over a block: CUDA allocator stats on GPU, sampled process RSS on CPU."
    def __init__(self, device): self.device, self.peak = device, 0
    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); self.base = torch.cuda.memory_allocated()
        else:
            self.proc, self.base, self.stop = psutil.Process(), psutil.Process().memory_info().rss, False
            self.peak_rss = self.base
            def sample():
                while not self.stop:
                    self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss); time.sleep(0.002)
            self.thread = threading.Thread(target=sample, daemon=True); self.thread.start()
        return self
    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(); self.peak = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.stop = True; self.thread.join(); self.peak = (self.peak_rss - self.base) / 2**20


def timed(fn, device):
    if device.type == 'cuda': torch.cuda.synchronize()
    t0 = time.perf_counter(); fn()
    if device.type == 'cuda': torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--layers', type=int, default=12, help='transformer blocks')
    ap.add_argument('--width', type=int, default=256, help='heads x head dim (head dim 32)')
    ap.add_argument('--frames', type=int, default=17)
    ap.add_argument('--size', type=int, default=160)
    ap.add_argument('--exit_layer', type=int, default=None, help='block for (b); default num_blocks // 4')
    ap.add_argument('--threads', type=int, default=1, help='torch threads (1: steadier timings; 0: torch default)')
    ap.add_argument('--real_size', action='store_true', help='Wan2.1-1.3B configs, random weights, 33x480x832 (GPU)')
    ap.add_argument('--memory', action='store_true', help='peak memory of the real Wan2.1 configs at 1-4 frames vs the estimate')
    ap.add_argument('--memory_run', default=None, help=argparse.SUPPRESS)   # internal: 'frames,chunk,H,W' in a fresh process
    ap.add_argument('--peak_rss_of', default=None, help=argparse.SUPPRESS)   # internal: 'one' or 'per', run once and print peak RSS
    args = ap.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    device = default_device()
    if args.memory_run: return memory_run(args)
    if args.memory: return memory(args)
    if args.real_size: return real_size(args, device)
    bb = build_tiny_random_backbone('wan', seed=0, num_layers=args.layers, num_attention_heads=args.width // 32,
                                    attention_head_dim=32, ffn_dim=4 * args.width)
    L, R = bb.num_layers, args.repeats
    l_exit = args.exit_layer if args.exit_layer is not None else L // 4
    clip = Clip(torch.rand(args.frames, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)))
    enc = encode_clip(clip, bb, 'video')
    checked = {(early, tuple(ls)): ExtractSettings(timesteps=300, layers=ls, temporal='video', early_exit=early).check(bb)
               for early in (True, False) for ls in [list(range(L)), *([l] for l in range(L))]}
    run = lambda layers, early=True: block_features(enc, checked[early, tuple(layers)])
    n_tok = enc.latent_shape[2] * (enc.latent_shape[3] // 2) * (enc.latent_shape[4] // 2)
    print(f"tiny-random-wan (random weights): {L} blocks, width {args.width}, "
          f"{sum(p.numel() for p in bb.denoiser.parameters()) / 1e6:.1f}M params; clip {args.frames}x{args.size}x{args.size} "
          f"-> {n_tok} tokens; {device}, {torch.get_num_threads()} threads, median of {R}")
    if args.peak_rss_of:   # a fresh process per variant: CPU peak RSS cannot be reset within one process
        run(list(range(L))) if args.peak_rss_of == 'one' else [run([l]) for l in range(L)]
        print(f'PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}'); return
    run(list(range(L)), False)   # warm-up

    a_one, a_per, a_per_full, b_early, b_full = [], [], [], [], []
    for _ in range(R):
        a_one.append(timed(lambda: run(list(range(L))), device))
        a_per.append(timed(lambda: [run([l]) for l in range(L)], device))
        a_per_full.append(timed(lambda: [run([l], early=False) for l in range(L)], device))
        b_early.append(timed(lambda: run([l_exit]), device))
        b_full.append(timed(lambda: run([l_exit], early=False), device))
    if device.type == 'cuda':
        with PeakMemory(device) as m_one: run(list(range(L)))
        with PeakMemory(device) as m_per: [run([l]) for l in range(L)]
        mem = f"all {L} layers in one pass {m_one.peak:.1f} MB | one layer per pass {m_per.peak:.1f} MB (CUDA peak allocated)"
    else:
        rss = {}
        for mode in ('one', 'per'):
            out = subprocess.run([sys.executable, __file__, *sys.argv[1:], '--peak_rss_of', mode], capture_output=True, text=True).stdout
            rss[mode] = float(out.split('PEAK_RSS_MB')[-1])
        mem = (f"peak RSS of a process doing all {L} layers in one pass {rss['one']:.0f} MB | one layer per pass {rss['per']:.0f} MB "
               f"| difference {rss['one'] - rss['per']:+.0f} MB")

    c_first, c_second = [], []
    for r in range(R):
        with tempfile.TemporaryDirectory() as d:
            kw = dict(timesteps=[300], layers=list(range(L)), temporal='video', cache_dir=d, progress=False)
            c_first.append(timed(lambda: extract_features(clip, bb, **kw), device))
            c_second.append(timed(lambda: extract_features(clip, bb, **kw), device))

    med = statistics.median
    print(f"one forward (full, {L} blocks): {med(b_full):.3f} s")
    print(f"(a) all {L} layers in one pass: {med(a_one):.3f} s | one pass per layer: {med(a_per):.3f} s "
          f"| ratio {med(a_per) / med(a_one):.1f}x (expect ~{(L + 1) / 2:.1f}x, as each pass exits early)")
    print(f"    one full pass per layer (no early exit): {med(a_per_full):.3f} s | ratio {med(a_per_full) / med(a_one):.1f}x (expect ~{L}x)")
    print(f"(b) early exit after block {l_exit}: {med(b_early):.3f} s | full forward: {med(b_full):.3f} s "
          f"| ratio {med(b_full) / med(b_early):.1f}x (expect ~{L / (l_exit + 1):.1f}x)")
    print(f"(c) first call (VAE + forward + write): {med(c_first):.3f} s | cached second call: {med(c_second):.4f} s "
          f"| ratio {med(c_first) / med(c_second):.0f}x")
    feat_mb = L * n_tok * args.width * 4 / 2**20
    print(f"(d) {mem} (the {L} captured grids themselves: {feat_mb:.1f} MB float32)")


WAN21_1_3B_VAE = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True])
WAN21_1_3B_TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
                              text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, rope_max_seq_len=1024,
                              cross_attn_norm=True, qk_norm='rms_norm_across_heads', eps=1e-6)

def real_wan(device, dtype, num_layers=30):
    "The Wan2.1-T2V-1.3B VAE and DiT configs with random weights (a zero-padded one-token empty prompt)."
    vae_cfg = {**WAN21_1_3B_VAE, 'latents_mean': [0.0] * 16, 'latents_std': [1.0] * 16}   # statistics only rescale
    den_cfg = {**WAN21_1_3B_TRANSFORMER, 'num_layers': num_layers}
    bb = build_tiny_random_backbone('wan', seed=0, device=device, dtype=dtype, vae_config=vae_cfg, **den_cfg)
    bb.text_len = 512
    bb.empty_prompt_embeds = torch.zeros(1, 512, 4096)
    bb.empty_prompt_embeds[:, 0] = 1.0
    return bb


def real_size(args, device):
    "Wan2.1-1.3B architecture with random weights at the paper's clip size: time and peak memory per clip."
    dtype = torch.bfloat16 if device.type == 'cuda' else torch.float32
    bb = real_wan(device, dtype, args.layers if args.layers != 12 else 30)   # --layers: smoke tests on small machines
    T, (H, W) = (args.frames if args.frames != 17 else 33), ((480, 832) if args.size == 160 else (args.size, args.size))
    layer = min(20, bb.num_layers - 1)
    clip = Clip(torch.rand(T, 3, H, W, generator=torch.Generator().manual_seed(0)))
    print(f"Wan2.1-1.3B config, random weights: {bb.num_layers} blocks, "
          f"{sum(p.numel() for p in bb.denoiser.parameters()) / 1e9:.2f}B params, {dtype}, {device}; clip {T}x{H}x{W}; "
          f"block {layer}; median of {args.repeats}")
    for temporal, chunk in (('frames', 'auto'), ('frames', None), ('video', 'auto')):
        kw = dict(layers=[layer], temporal=temporal, progress=False, chunk_frames=chunk, memory_budget_gb=1e6)
        est = estimate_memory(bb, T, (H, W), chunk_size(ExtractSettings(temporal=temporal, chunk_frames=chunk)), temporal)
        extract_features(clip, bb, **kw)   # warm-up
        ts = [timed(lambda: extract_features(clip, bb, **kw), device) for _ in range(args.repeats)]
        with PeakMemory(device) as m: n = extract_features(clip, bb, **kw).get().num_frames
        t = statistics.median(ts)
        print(f"  temporal={temporal!r}, chunk_frames={chunk!r}: {t:.2f} s per clip (VAE + DiT up to block {layer}), "
              f"{n} feature frames -> {n / t:.1f} feature frames/s; peak {m.peak / 1024:.2f} GiB "
              f"(estimate {est.peak_gb:.2f} GiB, measured / estimate {m.peak / 1024 / est.peak_gb:.2f})")


def memory_run(args):
    "One measurement in a fresh process: peak extra RSS (GiB) of one extraction."
    frames, chunk, H, W = (int(x) for x in args.memory_run.split(','))
    bb = real_wan(torch.device('cpu'), torch.float32, num_layers=2)   # activations do not grow with depth
    clip = Clip(torch.rand(frames, 3, H, W, generator=torch.Generator().manual_seed(0)))
    with PeakMemory(torch.device('cpu')) as m:
        extract_features(clip, bb, layers=[1], chunk_frames=chunk or None, progress=False, memory_budget_gb=1e6)
    est = estimate_memory(bb, frames, (H, W), chunk or None)
    print(f'PEAK_GB {m.peak / 1024:.3f} EST_GB {est.peak_gb:.3f}')


def memory(args):
    "Peak memory on the CPU with the real Wan2.1 configs (random weights) at 1-4 frames: chunking keeps it flat."
    H, W = (240, 416) if args.size == 160 else (args.size, int(args.size * 832 / 480) // 16 * 16)
    print(f"Wan2.1-1.3B VAE + DiT configs (DiT cut to 2 blocks: activations do not grow with depth), random weights, "
          f"float32, CPU, {H}x{W}; peak extra RSS of one extraction, each in a fresh process")
    for frames, chunk in ((1, 0), (2, 0), (2, 1), (4, 1)):
        out = subprocess.run([sys.executable, __file__, '--memory_run', f'{frames},{chunk},{H},{W}', '--threads',
                              str(args.threads)], capture_output=True, text=True).stdout
        peak, est = (float(x) for x in out.split('PEAK_GB')[-1].split('EST_GB'))
        print(f"  {frames} frame(s), chunk_frames={chunk or None}: peak {peak:.2f} GiB | estimate {est:.2f} GiB "
              f"| measured / estimate {peak / est:.2f}")


if __name__ == '__main__': main()
