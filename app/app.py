"""The vega3d_nb explorer: a clip's diffusion features, depth and correspondence probes, sweeps, fusion gates and chat.

`python app/app.py [--backbone NAME] [--device DEV] [--host 127.0.0.1] [--port 7860] [--mllm ID]`
Nothing is loaded or set at import: `main()` builds the models and passes them to `build_demo(models)`, whose tab
builders lay out one tab each and wire its events to `handlers` (each one library call).
"""
from __future__ import annotations
import argparse, atexit, functools, inspect, os, signal, sys, tempfile, traceback
from pathlib import Path
from types import SimpleNamespace as NS

import gradio as gr

import handlers as H

DEFAULT_BACKBONE, FALLBACK_BACKBONE = 'vega3d-tiny-scenes', 'tiny-random-wan'
DEFAULT_MLLM, FALLBACK_MLLM = 'vega3d-small-vlm', 'tiny-random-qwen2.5-vl'


def _user_error(e: Exception) -> gr.Error:
    "Library errors keep their message; anything else is logged with its traceback and shown as one line."
    if isinstance(e, gr.Error): return e
    if not isinstance(e, ValueError):
        H.logger.error('app handler failed:\n' + traceback.format_exc())
        return gr.Error(f'{type(e).__name__}: {e}' if str(e) else type(e).__name__)
    return gr.Error(str(e))


def guarded(fn):
    "Turn exceptions of an event function (plain or generator) into gr.Error messages: no traceback reaches the page."
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*a, **kw):
            try: yield from fn(*a, **kw)
            except Exception as e: raise _user_error(e) from None
        return gen
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try: return fn(*a, **kw)
        except Exception as e: raise _user_error(e) from None
    return wrapper


# ---------------------------------------------------------------- the shared controls
def controls(models: H.AppModels, session: gr.State) -> NS:
    "The backbone, timestep, layer, noise and seed controls above the tabs; `knobs` are the views' common inputs."
    bb0 = models.backbones.get(models.default_backbone)
    c0 = H.backbone_controls(bb0)
    with gr.Row():
        backbone = gr.Dropdown(H.backbone_choices(), value=bb0.name, label='backbone', elem_id='backbone', scale=2)
        t = gr.Slider(c0['t_min'], c0['t_max'], value=c0['t'], step=1, label='timestep t (0-1000 scale)',
                      elem_id='t_slider', scale=2)
        layer = gr.Slider(0, c0['n_layers'] - 1, value=c0['layer'], step=1, label='layer (block index)',
                          elem_id='layer_slider', scale=2)
        n_noise = gr.Slider(1, 8, value=1, step=1, label='noise samples', elem_id='n_noise', scale=1)
        seed = gr.Number(0, precision=0, label='seed', minimum=0, scale=1)
    with gr.Row():
        bb_info = gr.Markdown(f'**backbone** {c0["label"]}', elem_id='bb_info')
        t_info = gr.Markdown(H.timestep_label(bb0, c0['t']), elem_id='t_info')

    @guarded
    def on_backbone(bb_name, progress=gr.Progress()):
        progress(0.2, desc=f'loading {bb_name}')
        c = H.backbone_controls(models.backbones.get(bb_name))
        return (gr.update(minimum=c['t_min'], maximum=c['t_max'], value=c['t']),
                gr.update(maximum=c['n_layers'] - 1, value=c['layer']), f'**backbone** {c["label"]}')

    @guarded
    def on_t(bb_name, tv): return H.timestep_label(models.backbones.get(bb_name), tv)

    backbone.change(on_backbone, backbone, [t, layer, bb_info])
    t.change(on_t, [backbone, t], t_info)
    knobs = [session, backbone, t, layer, n_noise, seed]  # the views' common inputs
    return NS(backbone=backbone, t=t, layer=layer, n_noise=n_noise, seed=seed, knobs=knobs)


# ---------------------------------------------------------------- one builder per tab
def input_tab(models: H.AppModels) -> NS:
    "Upload or pick a sample; the load events are wired by `wire_loading` (their outputs span several tabs)."
    lim, samples = models.limits, H.sample_names()
    with gr.Tab('Input', id='input'), gr.Row():
        with gr.Column():
            upload = gr.File(label=f'upload a video, an image or a .zip of images (at most {lim.max_upload_mb:g} MB)',
                             file_types=list(H.VIDEO_EXTS + H.IMAGE_EXTS) + ['.zip'], type='filepath', elem_id='upload')
            sample = gr.Dropdown([(H.sample_label(s), s) for s in samples], value=samples[0] if samples else None,
                                 label='or a bundled sample', elem_id='sample')
            n_frames = gr.Slider(1, lim.max_frames, value=9, step=1, label='frames', elem_id='n_frames')
            size = gr.Slider(32, lim.max_size, value=64, step=16, label='resolution (shorter side, px)', elem_id='size')
            load_btn = gr.Button('Load the selected sample', variant='primary', elem_id='load_btn')
        with gr.Column():
            info = gr.Markdown('No clip loaded yet.', elem_id='input_info')
            video = gr.Video(label='input', elem_id='input_video', interactive=False, autoplay=True, loop=True,
                             height=320)
    return NS(upload=upload, sample=sample, n_frames=n_frames, size=size, load_btn=load_btn, info=info, video=video)


def features_tab(models: H.AppModels, session: gr.State, k: NS) -> NS:
    "PCA colouring of the features; any control move refreshes it (from cached features when it can)."
    with gr.Tab('Features', id='features'):
        fixed = gr.Checkbox(True, label='keep PCA colours fixed across timesteps (refit per layer)')
        caption = gr.Markdown(elem_id='feat_caption')
        image = gr.Image(label='input frames (top) and PCA of their features (below)', type='numpy', interactive=False,
                         elem_id='pca_image', format='png')
        with gr.Row():
            in_vid = gr.Video(label='input', interactive=False, autoplay=True, loop=True, height=300)
            pca_vid = gr.Video(label='input | PCA colouring', interactive=False, autoplay=True, loop=True,
                               elem_id='pca_video', height=300)

    @guarded
    def on_features(sess, bb_name, t, l, nn, sd, fix):
        if sess.input is None: return sess, gr.update(), 'Load a clip on the Input tab first.', None
        v = H.features_view(models, sess, models.backbones.get(bb_name), t, l, nn, sd, fix)
        return sess, v.mosaic, v.caption, H.pca_video(models, sess, v)

    ins, outs = k.knobs + [fixed], [session, image, caption, pca_vid]
    for c in (k.t, k.layer, k.n_noise, fixed):
        c.change(on_features, ins, outs, trigger_mode='always_last')
    k.seed.submit(on_features, ins, outs)
    return NS(in_vid=in_vid, refresh=(on_features, ins, outs))


def depth_tab(models: H.AppModels, session: gr.State, k: NS) -> NS:
    "The scene-set depth probe on the current clip: prediction, metrics, point cloud and PLY."
    with gr.Tab('Depth probe', id='depth'):
        gr.Markdown('A linear probe fitted on synthetic training scenes predicts depth from the current (t, layer) '
                    'features. On the synthetic sample it is compared with the exact ground truth; on other clips its '
                    'held-out scene scores are stated.')
        with gr.Row():
            frame = gr.Slider(0, 8, value=0, step=1, label='frame', elem_id='depth_frame')
            btn = gr.Button('Fit probe and predict depth', variant='primary', elem_id='depth_btn')
        note = gr.Markdown(elem_id='depth_note')
        plot = gr.Plot(label='depth')
        table = gr.Dataframe(label='depth metrics (none: as predicted; scale / scale_shift: aligned per image)',
                             interactive=False)
        cloud = gr.Plot(label='point cloud')
        ply = gr.File(label='point cloud (PLY)', interactive=False)

    @guarded
    def on_depth(sess, bb_name, t, l, nn, sd, f, progress=gr.Progress()):
        d = H.depth_view(models, sess, models.backbones.get(bb_name), t, l, nn, sd, f, progress)
        return sess, d.depth_fig, d.cloud_fig, str(d.ply_path), d.table, d.note

    btn.click(on_depth, k.knobs + [frame], [session, plot, cloud, ply, table, note])
    return NS(frame=frame)


def correspondence_tab(models: H.AppModels, session: gr.State, k: NS) -> NS:
    "Click a point of frame 0: its matches in the other frames, with truth and PCK on synthetic clips."
    with gr.Tab('Correspondence', id='corr'):
        gr.Markdown('Click a point in frame 0: red crosses are its cosine nearest-neighbour matches in the other '
                    'frames, green rings the true positions (synthetic clips).')
        with gr.Row():
            frame0 = gr.Image(label='frame 0: click a point', type='numpy', interactive=False, elem_id='corr_frame0',
                              format='png')
            matches = gr.Image(label='matches', type='numpy', interactive=False, elem_id='corr_matches', format='png')
        summary = gr.Markdown(elem_id='corr_summary')
        table = gr.Dataframe(interactive=False)

    @guarded
    def on_click(sess, bb_name, t, l, nn, sd, evt: gr.SelectData):
        x, y = H.click_to_pixel(sess, evt.index)
        c = H.correspondence_view(models, sess, models.backbones.get(bb_name), t, l, x, y, nn, sd)
        return sess, c.image, c.summary, c.table

    frame0.select(on_click, k.knobs, [session, matches, summary, table])
    return NS(frame0=frame0, matches=matches, summary=summary)


def sweep_tab(models: H.AppModels, k: NS):
    "Layer x timestep depth and PCK heatmaps on the scene set, with the CSV."
    with gr.Tab('Sweep', id='sweep'):
        gr.Markdown('Depth delta1 and PCK of linear probes for every layer x timestep on the scene set, mean ± std '
                    'over seeds, with position / RGB / constant / identity baselines. Results are cached per settings.')
        with gr.Row():
            ts = gr.Textbox('100, 500, 900', label='timesteps (comma-separated, 0-1000 scale)', elem_id='sweep_ts')
            n_seeds = gr.Slider(1, 5, value=1, step=1, label='seeds (2+ for a spread)')
            corr = gr.Checkbox(True, label='also correspondence (PCK)')
            btn = gr.Button('Run sweep', variant='primary', elem_id='sweep_btn')
        depth, pck = gr.Plot(label='depth delta1'), gr.Plot(label='PCK@0.10, gap 1')
        csv, table = gr.File(label='sweep table (CSV)', interactive=False), gr.Dataframe(interactive=False)

    @guarded
    def on_sweep(bb_name, text, nseeds, c, progress=gr.Progress(track_tqdm=True)):
        progress(0, desc='sweep')
        s = H.sweep_view(models, models.backbones.get(bb_name), H.parse_numbers(text), None, nseeds, bool(c))
        if s.cached: gr.Info('Sweep reused from the cache.')
        return s.depth_fig, s.pck_fig, str(s.csv_path), s.table

    btn.click(on_sweep, [k.backbone, ts, n_seeds, corr], [depth, pck, csv, table])


def gates_tab(models: H.AppModels, session: gr.State, k: NS):
    "The fusion's gate per visual token for the current clip and (t, layer) features."
    with gr.Tab('Fusion gates', id='gates'):
        btn = gr.Button('Compute fusion gates for this clip', variant='primary', elem_id='gates_btn')
        info = gr.Markdown(elem_id='gates_info')
        plot = gr.Plot(label='gates')

    @guarded
    def on_gates(sess, bb_name, t, l, nn, sd):
        g = H.gates_view(models, sess, models.backbones.get(bb_name), t, l, nn, sd)
        return sess, g.figure, f'Mean gate {g.mean:.3f} over all visual tokens of the clip.'

    btn.click(on_gates, k.knobs, [session, plot, info])


def chat_tab(models: H.AppModels, session: gr.State):
    "A streamed chat about the current clip with the fused model."
    with gr.Tab('Chat', id='chat'):
        gr.Markdown(H.chat_model_label(models), elem_id='chat_model')
        chatbot = gr.Chatbot(label='chat about the current clip', elem_id='chatbot', height=360)
        with gr.Row():
            box = gr.Textbox(placeholder='Ask about the clip, e.g. which object is closest to the camera?',
                             show_label=False, elem_id='chat_box', scale=4)
            send = gr.Button('Send', elem_id='send_btn', scale=1)
        with gr.Row():
            max_new = gr.Slider(8, 256, value=48, step=8, label='max new tokens')
            temp = gr.Slider(0, 1.5, value=0, step=0.1, label='temperature (0: greedy)')

    @guarded
    def on_chat(sess, message, history, mx, tp):
        for msgs in H.chat_stream(models, sess, message, history, mx, tp): yield msgs, ''

    ins, outs = [session, box, chatbot, max_new, temp], [chatbot, box]
    box.submit(on_chat, ins, outs)
    send.click(on_chat, ins, outs)


def wire_loading(models: H.AppModels, session: gr.State, inp: NS, feats: NS, depth: NS, corr: NS):
    "Loading a sample or an upload fills the Input, Features, Depth and Correspondence tabs, then the PCA view."
    def loaded(sess):
        vid = H.input_video(models, sess)
        return (sess, H.describe_input(sess), vid, vid, H.frame0_image(sess),
                gr.update(maximum=sess.clip.num_frames - 1, value=0), None, '')

    @guarded
    def on_sample(sess, smp, nf, sz, progress=gr.Progress()):
        progress(0.1, desc='loading sample')
        return loaded(H.load_input(models, sess, None, smp, nf, sz))

    @guarded
    def on_upload(sess, up, nf, sz, progress=gr.Progress()):
        if not up: return (sess,) + (gr.update(),) * 7
        progress(0.1, desc='reading upload')
        return loaded(H.load_input(models, sess, up, None, nf, sz))

    outs = [session, inp.info, inp.video, feats.in_vid, corr.frame0, depth.frame, corr.matches, corr.summary]
    inp.load_btn.click(on_sample, [session, inp.sample, inp.n_frames, inp.size], outs).success(*feats.refresh)
    inp.upload.upload(on_upload, [session, inp.upload, inp.n_frames, inp.size], outs).success(*feats.refresh)


def build_demo(models: H.AppModels) -> gr.Blocks:
    "Lay out the page, one builder per tab; `models` carries the backbones, chat model and the explorer's workspace."
    with gr.Blocks(title='vega3d_nb explorer', delete_cache=(600, 3600), analytics_enabled=False) as demo:
        session = gr.State(H.Session())
        gr.Markdown('# vega3d_nb explorer\nHow much 3D does a video diffusion model know? Load a clip, then look at '
                    'its features, probe them for depth and correspondences, sweep layers x timesteps, and chat with '
                    'the fused model.')
        if models.notes: gr.Markdown('\n'.join(f'> **Note:** {n}' for n in models.notes), elem_id='notes')
        k = controls(models, session)
        with gr.Tabs():
            inp = input_tab(models)
            feats = features_tab(models, session, k)
            depth = depth_tab(models, session, k)
            corr = correspondence_tab(models, session, k)
            sweep_tab(models, k)
            gates_tab(models, session, k)
            chat_tab(models, session)
        wire_loading(models, session, inp, feats, depth, corr)
    return demo


# ---------------------------------------------------------------- models and entry point
def _load_default_backbone(backbone, dev, notes: list, local_files_only: bool):
    "The requested backbone, else our trained default, else the tiny random one (with a note saying so)."
    from vega3d_nb.backbones import load_backbone
    if backbone is not None: return load_backbone(backbone, device=dev, local_files_only=local_files_only)
    try: return load_backbone(DEFAULT_BACKBONE, device=dev, local_files_only=local_files_only)
    except ValueError as e:
        H.logger.warning(f'default backbone unavailable: {e}')
        notes.append(f'The default backbone {DEFAULT_BACKBONE!r} is not available here ({str(e).split(". ")[0]}), so '
                     f'the app uses **{FALLBACK_BACKBONE} (random weights)**: its features, probes and gates show what '
                     'an untrained model gives.')
        return load_backbone(FALLBACK_BACKBONE, device=dev)


def _load_chat(mllm, bb, dev) -> tuple:
    "The fused chat model (the shipped offline one, else a random-weight stand-in) and a note about it."
    from vega3d_nb.small_vlm.model import load_chat_model
    note = ''
    for name in [mllm] if mllm else [DEFAULT_MLLM, FALLBACK_MLLM]:
        try: fused = load_chat_model(name, backbone=bb, device=dev)
        except (ValueError, OSError, ImportError) as e:
            note = f'Could not load the chat model {name!r}: {e}'
            H.logger.warning(note)
            continue
        if fused.vlm.weights == 'random-init':
            note = (f'{note} ' if note else '') + ('Its weights are random, so its answers are noise: this shows the '
                                                   'plumbing, not a result.')
        return fused, note
    return None, note


def load_models(backbone: str | None = None, device: str | None = None, mllm: str | None = None, workdir=None,
                local_files_only: bool = True) -> H.AppModels:
    "The backbone (our trained default, else tiny random with a note), the chat model, a scratch folder."
    import torch
    from vega3d_nb.backbones import load_backbone
    from vega3d_nb.core import default_device
    dev = torch.device(device) if device else default_device()
    notes = []
    bb = _load_default_backbone(backbone, dev, notes, local_files_only)
    if bb.weights == 'random-init' and not notes: notes.append(f'**{bb.name}** has **random weights**.')
    shelf = H.BackboneShelf(dev, loader=functools.partial(load_backbone, local_files_only=local_files_only))
    shelf.add(bb)
    workdir = Path(workdir or tempfile.mkdtemp(prefix='vega3d-app-'))
    workdir.mkdir(parents=True, exist_ok=True)
    fused, mnote = _load_chat(mllm, bb, dev)
    if fused is None: notes.append(mnote)
    return H.AppModels(shelf, bb.name, workdir, fused, mnote, notes=notes)


def concurrency_for(device) -> int:
    "One job at a time on a CPU (the models use every core); two on an accelerator."
    return 1 if str(device).startswith('cpu') else 2


def _offline() -> bool:
    "Offline unless HF_HUB_OFFLINE says otherwise; set for the libraries the models import."
    for var in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE'):
        os.environ.setdefault(var, '1')
    return os.environ['HF_HUB_OFFLINE'].strip().lower() in ('1', 'true', 'yes', 'on')


def main(argv=None):
    p = argparse.ArgumentParser(description='vega3d_nb explorer app')
    p.add_argument('--backbone', default=None,
                   help=f'registry name or diffusers folder (default: {DEFAULT_BACKBONE}, else {FALLBACK_BACKBONE})')
    p.add_argument('--device', default=None, help='torch device (default: the accelerator if there is one, else cpu)')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=7860)
    p.add_argument('--mllm', default=None, help=f'fused chat model: {DEFAULT_MLLM} (shipped, offline), '
                                                f'{FALLBACK_MLLM}, or a Qwen2.5-VL / VEGA-3D id or folder')
    args = p.parse_args(argv)
    try: models = load_models(args.backbone, args.device, args.mllm, local_files_only=_offline())
    except ValueError as e: p.exit(2, f'vega3d app: error: {e}\n')
    atexit.register(H.cleanup, models.workdir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so a terminated app still removes its scratch folder
    demo = build_demo(models)
    demo.queue(default_concurrency_limit=concurrency_for(models.backbones.device), max_size=32)
    print(f'vega3d_nb app: backbone {models.default_backbone} on {models.backbones.device}; scratch {models.workdir}',
          flush=True)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=f'{int(models.limits.max_upload_mb)}mb',
                allowed_paths=[str(models.workdir)], show_error=False, footer_links=[])


if __name__ == '__main__':
    main()
