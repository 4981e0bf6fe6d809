"""The vega3d_nb explorer: a clip's diffusion features, depth and correspondence probes, sweeps, fusion gates and chat.

`python app/app.py [--backbone NAME] [--device DEV] [--host 127.0.0.1] [--port 7860] [--mllm ID]`
Nothing is loaded at import: `main()` builds the models and passes them to `build_demo(...)`.
"""
from __future__ import annotations
import argparse, atexit, functools, inspect, os, signal, sys, tempfile, traceback
from pathlib import Path

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
sys.path.insert(0, str(Path(__file__).resolve().parent))  # `python app/app.py` from the repo root

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


def build_demo(models: H.AppModels) -> gr.Blocks:
    "Lay out the page and wire every event to a handler; `models` carries the backbones, chat model and caches."
    lim, bb0 = models.limits, models.backbones.get(models.default_backbone)
    c0 = H.backbone_controls(bb0)
    samples = H.sample_names()
    with gr.Blocks(title='vega3d_nb explorer', delete_cache=(600, 3600)) as demo:
        session = gr.State(H.Session())
        gr.Markdown('# vega3d_nb explorer\nHow much 3D does a video diffusion model know? Load a clip, then look at its features, '
                    'probe them for depth and correspondences, sweep layers x timesteps, and chat with the fused model.')
        if models.notes: gr.Markdown('\n'.join(f'> **Note:** {n}' for n in models.notes), elem_id='notes')

        with gr.Row():
            backbone = gr.Dropdown(H.backbone_choices(), value=bb0.name, label='backbone', elem_id='backbone', scale=2)
            t_slider = gr.Slider(c0['t_min'], c0['t_max'], value=c0['t'], step=1, label='timestep t (0-1000 scale)', elem_id='t_slider', scale=2)
            layer = gr.Slider(0, c0['n_layers'] - 1, value=c0['layer'], step=1, label='layer (block index)', elem_id='layer_slider', scale=2)
            n_noise = gr.Slider(1, 8, value=1, step=1, label='noise samples', elem_id='n_noise', scale=1)
            seed = gr.Number(0, precision=0, label='seed', minimum=0, scale=1)
        with gr.Row():
            bb_info = gr.Markdown(f'**backbone** {c0["label"]}', elem_id='bb_info')
            t_info = gr.Markdown(H.timestep_label(bb0, c0['t']), elem_id='t_info')

        with gr.Tabs():
            with gr.Tab('Input', id='input'):
                with gr.Row():
                    with gr.Column():
                        upload = gr.File(label=f'upload a video, an image or a .zip of images (at most {lim.max_upload_mb:g} MB)',
                                         file_types=list(H.VIDEO_EXTS + H.IMAGE_EXTS) + ['.zip'], type='filepath', elem_id='upload')
                        sample = gr.Dropdown([(H.sample_label(s), s) for s in samples], value=samples[0] if samples else None,
                                             label='or a bundled sample', elem_id='sample')
                        n_frames = gr.Slider(1, lim.max_frames, value=9, step=1, label='frames', elem_id='n_frames')
                        size = gr.Slider(32, lim.max_size, value=64, step=16, label='resolution (shorter side, px)', elem_id='size')
                        load_btn = gr.Button('Load the selected sample', variant='primary', elem_id='load_btn')
                    with gr.Column():
                        input_info = gr.Markdown('No clip loaded yet.', elem_id='input_info')
                        input_vid = gr.Video(label='input', elem_id='input_video', interactive=False, autoplay=True, loop=True, height=320)
            with gr.Tab('Features', id='features'):
                fixed = gr.Checkbox(True, label='keep PCA colours fixed across timesteps (refit per layer)')
                feat_caption = gr.Markdown(elem_id='feat_caption')
                pca_img = gr.Image(label='input frames (top) and PCA of their features (below)', type='numpy', interactive=False,
                                   elem_id='pca_image', format='png')
                with gr.Row():
                    in_vid2 = gr.Video(label='input', interactive=False, autoplay=True, loop=True, height=300)
                    pca_vid = gr.Video(label='input | PCA colouring', interactive=False, autoplay=True, loop=True, elem_id='pca_video', height=300)
            with gr.Tab('Depth probe', id='depth'):
                gr.Markdown('A linear probe fitted on synthetic training scenes predicts depth from the current (t, layer) features. '
                            'On the synthetic sample it is compared with the exact ground truth; on other clips its held-out scene scores are stated.')
                with gr.Row():
                    depth_frame = gr.Slider(0, 8, value=0, step=1, label='frame', elem_id='depth_frame')
                    depth_btn = gr.Button('Fit probe and predict depth', variant='primary', elem_id='depth_btn')
                depth_note = gr.Markdown(elem_id='depth_note')
                depth_plot = gr.Plot(label='depth')
                depth_table = gr.Dataframe(label='depth metrics (none: as predicted; scale / scale_shift: aligned per image)', interactive=False)
                cloud_plot = gr.Plot(label='point cloud')
                ply_file = gr.File(label='point cloud (PLY)', interactive=False)
            with gr.Tab('Correspondence', id='corr'):
                gr.Markdown('Click a point in frame 0: red crosses are its cosine nearest-neighbour matches in the other frames, '
                            'green rings the true positions (synthetic clips).')
                with gr.Row():
                    frame0 = gr.Image(label='frame 0: click a point', type='numpy', interactive=False, elem_id='corr_frame0', format='png')
                    corr_img = gr.Image(label='matches', type='numpy', interactive=False, elem_id='corr_matches', format='png')
                corr_summary = gr.Markdown(elem_id='corr_summary')
                corr_table = gr.Dataframe(interactive=False)
            with gr.Tab('Sweep', id='sweep'):
                gr.Markdown('Depth delta1 and PCK of linear probes for every layer x timestep on the scene set, mean ± std over seeds, '
                            'with position / RGB / constant / identity baselines. Results are cached per settings.')
                with gr.Row():
                    sweep_ts = gr.Textbox('100, 500, 900', label='timesteps (comma-separated, 0-1000 scale)', elem_id='sweep_ts')
                    sweep_seeds = gr.Slider(1, 5, value=1, step=1, label='seeds (2+ for a spread)')
                    sweep_corr = gr.Checkbox(True, label='also correspondence (PCK)')
                    sweep_btn = gr.Button('Run sweep', variant='primary', elem_id='sweep_btn')
                sweep_depth = gr.Plot(label='depth delta1')
                sweep_pck = gr.Plot(label='PCK@0.10, gap 1')
                sweep_csv = gr.File(label='sweep table (CSV)', interactive=False)
                sweep_df = gr.Dataframe(interactive=False)
            with gr.Tab('Fusion gates', id='gates'):
                gates_btn = gr.Button('Compute fusion gates for this clip', variant='primary', elem_id='gates_btn')
                gates_info = gr.Markdown(elem_id='gates_info')
                gates_plot = gr.Plot(label='gates')
            with gr.Tab('Chat', id='chat'):
                gr.Markdown(H.chat_model_label(models), elem_id='chat_model')
                chatbot = gr.Chatbot(label='chat about the current clip', elem_id='chatbot', height=360)
                with gr.Row():
                    chat_box = gr.Textbox(placeholder='Ask about the clip, e.g. which object is closest to the camera?', show_label=False,
                                          elem_id='chat_box', scale=4)
                    send = gr.Button('Send', elem_id='send_btn', scale=1)
                with gr.Row():
                    max_new = gr.Slider(8, 256, value=48, step=8, label='max new tokens')
                    temp = gr.Slider(0, 1.5, value=0, step=0.1, label='temperature (0: greedy)')

        # ------------------------------------------------------------ events
        knobs = [session, backbone, t_slider, layer, n_noise, seed]

        def loaded(sess):
            vid = H.input_video(sess, models.workdir)
            return (sess, H.describe_input(sess), vid, vid, H.frame0_image(sess), gr.update(maximum=sess.clip.num_frames - 1, value=0), None, '')

        @guarded
        def on_sample(sess, smp, nf, sz, progress=gr.Progress()):
            progress(0.1, desc='loading sample')
            return loaded(H.load_input(models, sess, None, smp, nf, sz))

        @guarded
        def on_upload(sess, up, nf, sz, progress=gr.Progress()):
            if not up: return (sess,) + (gr.update(),) * 7
            progress(0.1, desc='reading upload')
            return loaded(H.load_input(models, sess, up, None, nf, sz))

        load_outs = [session, input_info, input_vid, in_vid2, frame0, depth_frame, corr_img, corr_summary]

        def view(sess, bb_name, t, l, nn, sd, fix):
            v = H.features_view(sess, models.backbones.get(bb_name), t, int(l), int(nn), int(sd or 0), fix)
            return sess, v

        @guarded
        def on_features(sess, bb_name, t, l, nn, sd, fix):
            if sess.clip is None: return sess, gr.update(), 'Load a clip on the Input tab first.', None
            sess, v = view(sess, bb_name, t, l, nn, sd, fix)
            return sess, v.mosaic, v.caption, H.pca_video(sess, v, models.workdir)

        @guarded
        def on_backbone(bb_name, progress=gr.Progress()):
            progress(0.2, desc=f'loading {bb_name}')
            c = H.backbone_controls(models.backbones.get(bb_name))
            return (gr.update(minimum=c['t_min'], maximum=c['t_max'], value=c['t']), gr.update(maximum=c['n_layers'] - 1, value=c['layer']),
                    f'**backbone** {c["label"]}')

        @guarded
        def on_t(bb_name, t): return H.timestep_label(models.backbones.get(bb_name), t)

        @guarded
        def on_depth(sess, bb_name, t, l, nn, sd, f, progress=gr.Progress()):
            d = H.depth_view(models, sess, models.backbones.get(bb_name), t, int(l), int(nn), int(sd or 0), int(f), progress)
            return sess, d.depth_fig, d.cloud_fig, str(d.ply_path), d.table, d.note

        @guarded
        def on_click(sess, bb_name, t, l, nn, sd, evt: gr.SelectData):
            x, y = H.click_to_pixel(sess, evt.index)
            c = H.correspondence_view(sess, models.backbones.get(bb_name), t, int(l), x, y, int(nn), int(sd or 0))
            return sess, c.image, c.summary, c.table

        @guarded
        def on_sweep(bb_name, ts, nseeds, corr, progress=gr.Progress(track_tqdm=True)):
            progress(0, desc='sweep')
            s = H.sweep_view(models, models.backbones.get(bb_name), H.parse_numbers(ts), None, int(nseeds), bool(corr))
            if s.cached: gr.Info('Sweep reused from the cache.')
            return s.depth_fig, s.pck_fig, str(s.csv_path), s.table

        @guarded
        def on_gates(sess, bb_name, t, l, nn, sd):
            fig, mean = H.gates_view(models, sess, models.backbones.get(bb_name), t, int(l), int(nn), int(sd or 0))
            return sess, fig, f'Mean gate {mean:.3f} over all visual tokens of the clip.'

        @guarded
        def on_chat(sess, message, history, mx, tp):
            for msgs in H.chat_stream(models, sess, message, history, int(mx), float(tp)): yield msgs, ''

        feat_outs = [session, pca_img, feat_caption, pca_vid]
        feat_ins = knobs + [fixed]
        load_btn.click(on_sample, [session, sample, n_frames, size], load_outs).success(on_features, feat_ins, feat_outs)
        upload.upload(on_upload, [session, upload, n_frames, size], load_outs).success(on_features, feat_ins, feat_outs)
        backbone.change(on_backbone, backbone, [t_slider, layer, bb_info])
        t_slider.change(on_t, [backbone, t_slider], t_info)
        for c in (t_slider, layer, n_noise, fixed):
            c.change(on_features, feat_ins, feat_outs, trigger_mode='always_last')
        seed.submit(on_features, feat_ins, feat_outs)
        depth_btn.click(on_depth, knobs + [depth_frame], [session, depth_plot, cloud_plot, ply_file, depth_table, depth_note])
        frame0.select(on_click, knobs, [session, corr_img, corr_summary, corr_table])
        sweep_btn.click(on_sweep, [backbone, sweep_ts, sweep_seeds, sweep_corr], [sweep_depth, sweep_pck, sweep_csv, sweep_df])
        gates_btn.click(on_gates, knobs, [session, gates_plot, gates_info])
        chat_ins, chat_outs = [session, chat_box, chatbot, max_new, temp], [chatbot, chat_box]
        chat_box.submit(on_chat, chat_ins, chat_outs)
        send.click(on_chat, chat_ins, chat_outs)
    return demo


def load_models(backbone: str | None = None, device: str | None = None, mllm: str | None = None, workdir=None) -> H.AppModels:
    "The backbone (our trained default, else tiny random with a note), the chat model, caches and a scratch folder."
    import torch
    from vega3d_nb.backbones import load_backbone
    from vega3d_nb.core import default_device
    dev = torch.device(device) if device else default_device()
    notes, shelf = [], H.BackboneShelf(dev)
    if backbone is None:
        try: bb = load_backbone(DEFAULT_BACKBONE, device=dev)
        except ValueError as e:
            H.logger.warning(f'default backbone unavailable: {e}')
            bb = load_backbone(FALLBACK_BACKBONE, device=dev)
            notes.append(f'The default backbone {DEFAULT_BACKBONE!r} is not available here ({str(e).split(". ")[0]}), so the app uses '
                         f'**{FALLBACK_BACKBONE} (random weights)**: its features, probes and gates show what an untrained model gives.')
    else: bb = load_backbone(backbone, device=dev)
    if bb.weights == 'random-init' and not notes: notes.append(f'**{bb.name}** has **random weights**.')
    shelf.add(bb)
    workdir = Path(workdir or tempfile.mkdtemp(prefix='vega3d-app-'))
    workdir.mkdir(parents=True, exist_ok=True)
    from vega3d_nb.small_vlm.model import load_chat_model
    fused, mnote = None, ''
    names = [mllm] if mllm else [DEFAULT_MLLM, FALLBACK_MLLM]   # the shipped offline model, else a random-weight stand-in
    for name in names:
        try: fused = load_chat_model(name, backbone=bb, device=dev)
        except (ValueError, OSError, ImportError) as e:
            mnote = f'Could not load the chat model {name!r}: {e}'
            H.logger.warning(mnote)
            continue
        if fused.vlm.weights == 'random-init':
            mnote = (f'{mnote} ' if mnote else '') + 'Its weights are random, so its answers are noise: this shows the plumbing, not a result.'
        break
    if fused is None: notes.append(mnote)
    return H.AppModels(shelf, bb.name, workdir, fused, mnote, notes=notes)


def concurrency_for(device) -> int:
    "One job at a time on a CPU (the models use every core); two on an accelerator."
    return 1 if str(device).startswith('cpu') else 2


def main(argv=None):
    p = argparse.ArgumentParser(description='vega3d_nb explorer app')
    p.add_argument('--backbone', default=None, help=f'registry name or diffusers folder (default: {DEFAULT_BACKBONE}, else {FALLBACK_BACKBONE})')
    p.add_argument('--device', default=None, help='torch device (default: the accelerator if there is one, else cpu)')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=7860)
    p.add_argument('--mllm', default=None, help=f'fused chat model: {DEFAULT_MLLM} (shipped, offline), {FALLBACK_MLLM}, or a Qwen2.5-VL / VEGA-3D id or folder')
    args = p.parse_args(argv)
    try: models = load_models(args.backbone, args.device, args.mllm)
    except ValueError as e: p.exit(2, f'vega3d app: error: {e}\n')
    atexit.register(H.cleanup, models.workdir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so a terminated app still removes its scratch folder
    demo = build_demo(models)
    demo.queue(default_concurrency_limit=concurrency_for(models.backbones.device), max_size=32)
    print(f'vega3d_nb app: backbone {models.default_backbone} on {models.backbones.device}; scratch {models.workdir}', flush=True)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=f'{int(models.limits.max_upload_mb)}mb',
                allowed_paths=[str(models.workdir)], show_error=False, footer_links=[])


if __name__ == '__main__':
    main()
