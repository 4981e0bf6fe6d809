"""Tokens per second and time to first token of `chat` with the offline small fused VLM on CPU, one run.

    python bench/chat.py                       # the shipped model (assets/vega3d-small-vlm) + its backbone
    python bench/chat.py --threads 1 --max-new-tokens 64

One clip (a test-split scene of 3 frames, 64x64), one question, greedy decoding. Time to first token is from the
`chat` call to the first streamed piece (it includes the projector, the generative features and the fusion, and the
prompt prefill); tokens/s counts the generated tokens after the first one over the time after the first piece.
The model is loaded once before timing (loading is reported separately). Weights: SmolLM2-135M-Instruct (real),
projector + fusion trained here.
"""
import argparse, json, time

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--assets', default='assets/vega3d-small-vlm')
    ap.add_argument('--backbone', default=None,
                    help='backbone name (default: the one in the model card; "none": semantic only)')
    ap.add_argument('--max-new-tokens', type=int, default=64)
    ap.add_argument('--threads', type=int, default=1, help='torch threads')
    ap.add_argument('--question', default='Describe what you see in this video in a few sentences.',
                    help='an open question, so that more than a couple of tokens are generated')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from vega3d_nb.backbones import load_backbone
    from vega3d_nb.small_vlm.qa import SMALL_VLM_FRAMES, make_spatial_qa
    from vega3d_nb.small_vlm.model import load_small_vlm, small_vlm_card
    t0 = time.perf_counter()
    card = small_vlm_card(a.assets)
    name = a.backbone or card.get('backbone_name')
    bb = None if name in (None, 'none') else load_backbone(name, device='cpu')
    model = load_small_vlm(a.assets, backbone=bb, device='cpu')
    load_s = time.perf_counter() - t0
    clip = make_spatial_qa(1, 'test').clips[0].clip
    tok = model.vlm.tokenizer
    t0 = time.perf_counter()
    first, pieces = None, []
    for piece in model.chat(clip, a.question, max_new_tokens=a.max_new_tokens, num_frames=SMALL_VLM_FRAMES):
        if first is None: first = time.perf_counter()
        pieces.append(piece)
    end = time.perf_counter()
    text = ''.join(pieces)
    n = len(tok(text, add_special_tokens=False)['input_ids'])
    res = dict(model=model.describe(), device='cpu', threads=a.threads, load_s=round(load_s, 2),
               time_to_first_token_s=round(first - t0, 3), new_tokens=n,
               tokens_per_s=round((n - 1) / (end - first), 2) if n > 1 and end > first else None,
               total_s=round(end - t0, 3), answer=text)
    print(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
