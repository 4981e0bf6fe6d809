"""The vega3d_nb explorer: a clip's diffusion features, depth and correspondence probes, sweeps, fusion gates and chat.

`python app/app.py [--backbone NAME] [--device DEV] [--host 127.0.0.1] [--port 7860] [--mllm ID]`
Nothing is loaded or set at import: `main()` builds the models and passes them to `build_demo(models)`, whose tab
builders lay out one tab each and wire its events to `handlers` (each one library call).
"""
from __future__ import annotations
import argparse, atexit, functools, inspect, os, signal, sys, tempfile
from pathlib import Path
from types import SimpleNamespace as NS

import gradio as gr

import handlers as H

DEFAULT_BACKBONE, FALLBACK_BACKBONE = 'vega3d-tiny-scenes', 'tiny-random-wan'
DEFAULT_MLLM, FALLBACK_MLLM = 'vega3d-small-vlm', 'tiny-random-qwen2.5-vl'


def _user_error(e: Exception, event: str = 'event') -> gr.Error:
    "A one-line message for the page; a user's mistake is logged as one line, a real failure with its traceback."
    if isinstance(e, gr.Error): return e
    return gr.Error(H.ES.event_error(e, event), print_exception=False)


def guarded(fn):
    "Turn exceptions of an event function (plain or generator) into gr.Error messages: no traceback reaches the page."
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*a, **kw):
            try: yield from fn(*a, **kw)
            except Exception as e: raise _user_error(e, fn.__name__) from None
        return gen
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try: return fn(*a, **kw)
        except Exception as e: raise _user_error(e, fn.__name__) from None
    return wrapper


def warn(*messages):
    "Show each non-empty message as a warning toast."
    for m in messages:
        if m: gr.Warning(m)


RAW = dict(preprocess=False)  # events get typed values as they are, so the library clamps them with one message


# ---------------------------------------------------------------- the shared controls
def controls(models: H.AppModels, session: gr.State) -> NS:
    "The backbone, timestep, layer, noise and seed controls above the tabs; `knobs` are the views' common inputs."
    bb0 = models.backbones.get(models.default_backbone)
    c0 = H.backbone_controls(bb0)
    with gr.Row():
        backbone = gr.Dropdown(H.backbone_choices(models), value=bb0.name, label='backbone', elem_id='backbone',
                               scale=2)
        t0, l0 = H.slider_updates(c0)
        t = gr.Slider(**t0, step=1, label='timestep t (0-1000 scale)', elem_id='t_slider', scale=2)
        layer = gr.Slider(**l0, step=1, label='layer (block index)', elem_id='layer_slider', scale=2)
        n_noise = gr.Slider(1, H.ES.MAX_NOISE, value=1, step=1, label='noise samples', elem_id='n_noise', scale=1)
        seed = gr.Number(0, precision=0, label='seed', minimum=0, scale=1, elem_id='seed')
    with gr.Row():
        bb_info = gr.Markdown(f'**backbone** {c0["label"]}', elem_id='bb_info')
        t_info = gr.Markdown(H.timestep_label(bb0, c0['t']), elem_id='t_info')

    @guarded
    def on_backbone(sess, bb_name, progress=gr.Progress()):
        if bb_name == sess.backbone: return (gr.update(),) * 5  # e.g. the dropdown put back after a failed load
        progress(0.2, desc=f'loading {bb_name}')
        c, new, msg = H.switch_backbone(models, sess, bb_name)
        warn(msg)
        info = f'**backbone** {c["label"]}' + (f'\n\n**Not loaded:** {msg}' if msg else '')
        dd = gr.update(value=new.backbone, choices=H.backbone_choices(models))
        if msg: return new, dd, gr.update(), gr.update(), info  # kept the backbone: keep its t and layer as they were
        tu, lu = H.slider_updates(c)
        return new, dd, gr.update(**tu), gr.update(**lu), info

    @guarded
    def on_t(sess, bb_name, tv, lv):
        b, k = H.checked(models, sess, bb_name, tv, lv)
        return H.timestep_label(b, k.t)

    changed = backbone.change(on_backbone, [session, backbone], [session, backbone, t, layer, bb_info])
    t.change(on_t, [session, backbone, t, layer], t_info, **RAW)
    knobs = [session, backbone, t, layer, n_noise, seed]  # the views' common inputs
    return NS(backbone=backbone, t=t, layer=layer, n_noise=n_noise, seed=seed, knobs=knobs, backbone_changed=changed)


def checked_knobs(models, sess, bb_name, t, l, nn, sd) -> tuple:
    "(backbone, Knobs) with a warning when a typed value was clamped."
    b, k = H.checked(models, sess, bb_name, t, l, nn, sd)
    warn(k.message)
    return b, k


# ---------------------------------------------------------------- one builder per tab
def input_tab(models: H.AppModels, session: gr.State, k: NS) -> NS:
    "Upload or pick a sample, choose how to sample it; the load events are wired by `wire_loading`."
    lim, samples = models.limits, H.sample_names()
    with gr.Tab('Input', id='input'), gr.Row():
        with gr.Column():
            upload = gr.File(label=f'upload a video, an image or a .zip of images (at most {lim.max_upload_mb:g} MB)',
                             file_types=list(H.VIDEO_EXTS + H.IMAGE_EXTS) + ['.zip'], type='filepath', elem_id='upload')
            sample = gr.Dropdown(H.sample_choices(models), value=samples[0] if samples else None, elem_id='sample',
                                 label='or a bundled sample (in or out of distribution for the backbone in use)')
            n_frames = gr.Slider(1, lim.max_frames, value=H.DEFAULT_FRAMES, step=1, label='frames', elem_id='n_frames')
            stride = gr.Slider(0, lim.max_stride, value=0, step=1, elem_id='stride',
                               label='stride: every n-th source frame from the start (0: spread evenly)')
            with gr.Row():
                start = gr.Number(0, minimum=0, label='start time (s; Enter to apply)', elem_id='start_s')
                end = gr.Number(0, minimum=0, label='end time (s; 0: the end)', elem_id='end_s')
            size = gr.Slider(32, lim.max_size, value=H.DEFAULT_SIZE, step=16, label='resolution (shorter side, px)',
                             elem_id='size')
            load_btn = gr.Button('Load (the uploaded file, else the sample) with these settings', variant='primary',
                                 elem_id='load_btn')
        with gr.Column():
            info = gr.Markdown('No clip loaded yet.', elem_id='input_info')
            video = gr.Video(label='input', elem_id='input_video', interactive=False, autoplay=True, loop=True,
                             height=320)
    sample.change(lambda: None, None, upload)  # picking a sample means loading it, not the earlier upload
    k.backbone_changed.then(lambda sess: gr.update(choices=H.sample_choices(models, sess)), session, sample)
    return NS(upload=upload, sample=sample, n_frames=n_frames, size=size, stride=stride, start=start, end=end,
              load_btn=load_btn, info=info, video=video, sampling=[n_frames, size, stride, start, end])


def features_tab(models: H.AppModels, session: gr.State, k: NS) -> NS:
    "PCA colouring of the features; any control move refreshes it (from cached features when it can)."
    with gr.Tab('Features', id='features'):
        with gr.Row():
            fixed = gr.Checkbox(True, label='keep PCA colours fixed across timesteps (refit per layer)')
            opacity = gr.Slider(0, 1, value=0.5, step=0.05, label='overlay opacity', elem_id='pca_opacity')
        caption = gr.Markdown(elem_id='feat_caption')
        image = gr.Image(label='input frames (top) and PCA of their features (below)', type='numpy', interactive=False,
                         elem_id='pca_image', format='png')
        overlay = gr.Image(label='PCA colours over the frames', type='numpy', interactive=False,
                           elem_id='pca_overlay', format='png')
        pca_vid = gr.Video(label='input | PCA colouring (one video, so the two halves play in sync)', interactive=False,
                           autoplay=True, loop=True, elem_id='pca_video', height=300)

    @guarded
    def on_features(sess, bb_name, t, l, nn, sd, fix, op, progress=gr.Progress()):
        keep = (gr.update(),) * 4
        if sess.input is None: return (gr.update(), None, 'Load a clip on the Input tab first.', None) + keep
        b, kn = checked_knobs(models, sess, bb_name, t, l, nn, sd)
        v = H.features_view(models, sess, b, kn.t, kn.layer, kn.n_noise, kn.seed, bool(fix), progress, op)
        boxes = tuple(gr.update(value=x) for x in (kn.t, kn.layer, kn.n_noise, kn.seed)) if kn.message else keep
        return (v.mosaic, v.overlay, v.caption, H.pca_video(models, sess, v)) + boxes

    ins, outs = k.knobs + [fixed, opacity], [image, overlay, caption, pca_vid, k.t, k.layer, k.n_noise, k.seed]
    for c in (k.t, k.layer, k.n_noise, k.seed, fixed, opacity):
        c.change(on_features, ins, outs, trigger_mode='always_last', **RAW)
    return NS(refresh=(on_features, ins, outs))


def depth_tab(models: H.AppModels, session: gr.State, k: NS) -> NS:
    "The scene-set depth probe on the current clip: prediction, metrics against the baselines, point cloud and PLY."
    with gr.Tab('Depth probe', id='depth'):
        gr.Markdown('A linear probe fitted on synthetic training scenes predicts depth from the current (t, layer) '
                    'features. On the synthetic sample it is compared with the exact ground truth; on other clips its '
                    'held-out scene scores are stated. Rows that lose to the best trivial baseline are red.')
        with gr.Row():
            frame = gr.Slider(0, 8, value=0, step=1, label='frame', elem_id='depth_frame')
            btn = gr.Button('Fit probe and predict depth', variant='primary', elem_id='depth_btn')
        note = gr.Markdown(elem_id='depth_note')
        plot = gr.Plot(label='depth')
        table = gr.Dataframe(label='depth metrics (none: as predicted; scale / scale_shift: aligned per image)',
                             interactive=False, elem_id='depth_table')
        cloud = gr.Plot(label='point cloud', elem_id='depth_cloud')
        ply = gr.File(label='point cloud (PLY)', interactive=False)

    @guarded
    def on_depth(sess, bb_name, t, l, nn, sd, f, progress=gr.Progress()):
        b, kn = checked_knobs(models, sess, bb_name, t, l, nn, sd)
        d = H.depth_view(models, sess, b, kn.t, kn.layer, kn.n_noise, kn.seed, f, progress)
        return d.depth_fig, d.cloud_fig, str(d.ply_path), H.EP.highlight_losses(d.table), d.note

    btn.click(on_depth, k.knobs + [frame], [plot, cloud, ply, table, note], **RAW)
    return NS(frame=frame)


def correspondence_tab(models: H.AppModels, session: gr.State, k: NS) -> NS:
    "Click a point of a source frame: its matches in the target frames, DIFT's similarity heatmap, truth and PCK."
    with gr.Tab('Correspondence', id='corr'):
        gr.Markdown('Click a point in the source frame: red crosses are its cosine nearest-neighbour matches in the '
                    'target frames, green rings the true positions (synthetic clips). The heatmap is the cosine '
                    'similarity of the clicked point over the first target frame (as in DIFT). Any two frames can be '
                    'paired, or two images of your own (below).')
        with gr.Row():
            source = gr.Dropdown([('frame 0', 0)], value=0, label='source frame', elem_id='corr_source')
            target = gr.Dropdown([('every other frame', -1)], value=-1, label='target frame', elem_id='corr_target')
        with gr.Accordion('or match between two images of your own', open=False):
            with gr.Row():
                pair_a = gr.File(label='query image', file_types=list(H.IMAGE_EXTS), type='filepath',
                                 elem_id='pair_a')
                pair_b = gr.File(label='image to match into', file_types=list(H.IMAGE_EXTS), type='filepath',
                                 elem_id='pair_b')
            pair_btn = gr.Button('Load the two images as a two-frame clip', elem_id='pair_btn')
        with gr.Row():
            frame0 = gr.Image(label='source frame: click a point', type='numpy', interactive=False,
                              elem_id='corr_frame0', format='png')
            heat = gr.Image(label='cosine similarity over the target frame', type='numpy', interactive=False,
                            elem_id='corr_heatmap', format='png')
        matches = gr.Image(label='matches', type='numpy', interactive=False, elem_id='corr_matches', format='png')
        summary = gr.Markdown(elem_id='corr_summary')
        table = gr.Dataframe(interactive=False)

    @guarded
    def on_click(sess, bb_name, t, l, nn, sd, src, tgt, evt: gr.SelectData):
        x, y = H.click_to_pixel(sess, evt.index)
        b, kn = checked_knobs(models, sess, bb_name, t, l, nn, sd)
        c = H.correspondence_view(models, sess, b, kn.t, kn.layer, x, y, kn.n_noise, kn.seed, int(src),
                                  None if int(tgt) < 0 else int(tgt))
        return H.frame_image(sess, c.source, (x, y)), c.image, c.heatmap, c.summary, c.table

    @guarded
    def on_source(sess, src): return H.frame_image(sess, int(src)) if sess.input is not None else None

    frame0.select(on_click, k.knobs + [source, target], [frame0, matches, heat, summary, table], **RAW)
    source.change(on_source, [session, source], frame0, **RAW)
    return NS(frame0=frame0, matches=matches, summary=summary, heat=heat, source=source, target=target,
              pair=[pair_a, pair_b], pair_btn=pair_btn)


def sweep_tab(models: H.AppModels, session: gr.State, k: NS):
    "Layer x timestep depth and PCK heatmaps on the scene set, read against the best baseline, with the CSV."
    with gr.Tab('Sweep', id='sweep'):
        gr.Markdown('Depth delta1 and PCK (alpha 0.10) of linear probes for every layer x timestep on the scene set, '
                    'with position / RGB / constant / identity baselines. The colour scale includes the best '
                    'baseline and crosses mark the cells worse than it; the right-hand plots show each cell minus '
                    'the best baseline. Results are cached per settings.')
        with gr.Row():
            ts = gr.Textbox('100, 500, 900', label='timesteps (comma-separated, 0-1000 scale)', elem_id='sweep_ts')
            n_seeds = gr.Slider(1, H.EP.MAX_SWEEP_SEEDS, value=1, step=1, label='seeds (2+ for a spread)')
            corr = gr.Checkbox(True, label='also correspondence (PCK)')
            btn = gr.Button('Run sweep', variant='primary', elem_id='sweep_btn')
        with gr.Row():
            depth, depth_diff = gr.Plot(label='depth delta1'), gr.Plot(label='depth delta1 minus the best baseline')
        with gr.Row():
            pck, pck_diff = gr.Plot(label='PCK (alpha 0.10, gap 1)'), gr.Plot(label='PCK minus the identity baseline')
        csv, table = gr.File(label='sweep table (CSV)', interactive=False), gr.Dataframe(interactive=False)

    @guarded
    def on_sweep(sess, bb_name, text, nseeds, c, progress=gr.Progress(track_tqdm=True)):
        progress(0, desc='sweep')
        s = H.sweep_view(models, H.backbone(models, sess, bb_name), H.parse_numbers(text), None, nseeds, bool(c))
        if s.cached: gr.Info('Sweep reused from the cache.')
        return s.depth_fig, s.depth_diff_fig, s.pck_fig, s.pck_diff_fig, str(s.csv_path), s.table

    btn.click(on_sweep, [session, k.backbone, ts, n_seeds, corr], [depth, depth_diff, pck, pck_diff, csv, table],
              **RAW)


def gates_tab(models: H.AppModels, session: gr.State, k: NS):
    "The fusion's gate per visual token for the current clip and (t, layer) features."
    with gr.Tab('Fusion gates', id='gates'):
        btn = gr.Button('Compute fusion gates for this clip', variant='primary', elem_id='gates_btn')
        info = gr.Markdown(elem_id='gates_info')
        over = gr.Image(label='gates over the frames (red: semantic stream, blue: generative)', type='numpy',
                        interactive=False, elem_id='gates_overlay', format='png')
        plot = gr.Plot(label='gates')

    @guarded
    def on_gates(sess, bb_name, t, l, nn, sd):
        b, kn = checked_knobs(models, sess, bb_name, t, l, nn, sd)
        g = H.gates_view(models, sess, b, kn.t, kn.layer, kn.n_noise, kn.seed)
        return g.figure, g.overlay, f'Mean gate {g.mean:.3f} over all visual tokens of the clip.'

    btn.click(on_gates, k.knobs, [plot, over, info], **RAW)


def chat_tab(models: H.AppModels, session: gr.State):
    "A streamed chat about the current clip with the fused model, its held-out quality stated beside it."
    with gr.Tab('Chat', id='chat'):
        gr.Markdown(H.chat_model_label(models), elem_id='chat_model')
        chatbot = gr.Chatbot(label='chat about the current clip', elem_id='chatbot', height=360)
        with gr.Row():
            box = gr.Textbox(placeholder='Ask about the clip, e.g. which object is closest to the camera?',
                             show_label=False, elem_id='chat_box', scale=4, max_length=H.ES.MAX_MESSAGE_CHARS)
            send = gr.Button('Send', elem_id='send_btn', scale=1)
            clear = gr.Button('Clear chat', elem_id='clear_btn', scale=1)
        with gr.Row():
            max_new = gr.Slider(8, 256, value=48, step=8, label='max new tokens')
            temp = gr.Slider(0, 1.5, value=0, step=0.1, label='temperature (0: greedy)')
        gr.Markdown(f'Messages are limited to {H.ES.MAX_MESSAGE_CHARS} characters; the model sees the last '
                    f'{H.ES.MAX_HISTORY_MESSAGES} messages of the conversation.')

    @guarded
    def on_chat(sess, message, history, mx, tp):
        for msgs in H.chat_stream(models, sess, message, history, mx, tp): yield msgs, ''

    ins, outs = [session, box, chatbot, max_new, temp], [chatbot, box]
    box.submit(on_chat, ins, outs)
    send.click(on_chat, ins, outs)
    clear.click(lambda: ([], ''), None, [chatbot, box])


def wire_loading(models: H.AppModels, session: gr.State, inp: NS, feats: NS, depth: NS, corr: NS):
    "A load makes a new session and fills every tab from it; a failed load changes nothing and says why."
    def loaded(new):
        vid, n = H.input_video(models, new), new.clip.num_frames
        warn(*new.input.warnings)
        frames = [(f'frame {i}', i) for i in range(n)]
        return (new, H.describe_input(new), vid, H.frame0_image(new), gr.update(**H.frame_slider(new)),
                gr.update(choices=frames, value=0), gr.update(choices=[('every other frame', -1)] + frames, value=-1),
                None, None, '')

    @guarded
    def on_load(sess, up, smp, nf, sz, st, t0, t1, progress=gr.Progress()):
        progress(0.1, desc='reading the upload' if up else 'loading the sample')
        return loaded(H.load_input(models, sess, up, None if up else smp, nf, sz, st, t0, t1))

    @guarded
    def on_upload(sess, up, nf, sz, st, t0, t1, progress=gr.Progress()):
        if not up: return (gr.update(),) * 10
        progress(0.1, desc='reading the upload')
        return loaded(H.load_input(models, sess, up, None, nf, sz, st, t0, t1))

    @guarded
    def on_resample(sess, nf, sz, st, t0, t1, progress=gr.Progress()):
        "Frames, size, stride or span changed: the loaded clip (upload or sample) read again with them."
        if not sess.source: return (gr.update(),) * 10
        progress(0.1, desc='re-sampling the clip')
        return loaded(H.resample(models, sess, nf, sz, st, t0, t1))

    @guarded
    def on_pair(sess, a, b, sz, progress=gr.Progress()):
        progress(0.1, desc='reading the two images')
        return loaded(H.load_image_pair(models, sess, a, b, sz))

    outs = [session, inp.info, inp.video, corr.frame0, depth.frame, corr.source, corr.target, corr.matches, corr.heat,
            corr.summary]
    inp.load_btn.click(on_load, [session, inp.upload, inp.sample] + inp.sampling, outs,
                       **RAW).success(*feats.refresh, **RAW)
    inp.upload.upload(on_upload, [session, inp.upload] + inp.sampling, outs, **RAW).success(*feats.refresh, **RAW)
    corr.pair_btn.click(on_pair, [session] + corr.pair + [inp.size], outs, **RAW).success(*feats.refresh, **RAW)
    for c, ev in ((inp.n_frames, 'change'), (inp.size, 'change'), (inp.stride, 'change'), (inp.start, 'submit'),
                  (inp.end, 'submit')):
        getattr(c, ev)(on_resample, [session] + inp.sampling, outs, trigger_mode='always_last',
                       **RAW).success(*feats.refresh, **RAW)


# ---------------------------------------------------------------- compare and export (issue 18, item 14)
def compare_tab(models: H.AppModels, session: gr.State, k: NS):
    "A against B (another backbone, or A's random-init twin): one PCA projection, one probe table, the sweep A - B."
    twins = H.EC.TwinShelf()    # random-init twins built for this page, once per backbone
    with gr.Tab('Compare & export', id='compare'):
        gr.Markdown('Backbone A is the one chosen above; B is another backbone or A\'s random-init twin (same '
                    'architecture, random weights). Both read the same clip at the same t (snapped to each schedule) '
                    'and layer (by relative depth when their block counts differ), coloured by one PCA projection, '
                    'with one probe table against the baselines; the sweep shows A minus B per cell.')
        with gr.Row():
            b_name = gr.Dropdown(H.compare_choices(models), value=H.EC.TWIN, label='backbone B', elem_id='compare_b')
            btn = gr.Button('Compare features and depth probes', variant='primary', elem_id='compare_btn')
        caption = gr.Markdown(elem_id='compare_caption')
        image = gr.Image(label='A (left) and B (right): frames above their PCA colours', type='numpy',
                         interactive=False, elem_id='compare_image', format='png')
        summary = gr.Markdown(elem_id='compare_summary')
        table = gr.Dataframe(label='held-out depth probes of A and B with the baselines', interactive=False,
                             elem_id='compare_table')
        with gr.Row():
            ts = gr.Textbox('100, 500, 900', label='sweep timesteps (comma-separated)', elem_id='compare_ts')
            n_seeds = gr.Slider(1, H.EP.MAX_SWEEP_SEEDS, value=1, step=1, label='seeds (2+ for a spread)')
            corr = gr.Checkbox(True, label='also correspondence (PCK)')
            sweep_btn = gr.Button('Compare sweeps', elem_id='compare_sweep_btn')
        sweep_note = gr.Markdown(elem_id='compare_sweep_note')
        with gr.Row():
            depth_diff, pck_diff = gr.Plot(label='depth delta1, A minus B'), gr.Plot(label='PCK, A minus B')
        with gr.Row():
            export_btn = gr.Button('Export session (zip: settings, tables, figures, reproduce.py)',
                                   elem_id='export_btn')
            export_file = gr.File(label='exported session', interactive=False, elem_id='export_file')
    last = gr.State({})  # the last comparison's pair and results, for the export

    def pair_of(sess, bb_name, t, l, nn, sd, bn):
        b, kn = checked_knobs(models, sess, bb_name, t, l, nn, sd)
        return H.compare_pair(models, twins, sess, b, bn, kn.t, kn.layer, kn.n_noise, kn.seed)

    @guarded
    def on_compare(sess, bb_name, t, l, nn, sd, bn, last, progress=gr.Progress()):
        pair = pair_of(sess, bb_name, t, l, nn, sd, bn)
        f, p = H.compare_view(models, sess, pair, progress)
        return (f.caption, f.image, f'{p.summary}\n\n{p.note}', H.EP.highlight_losses(p.table),
                H.remember(last, pair, compare_features=f, compare_probes=p))

    @guarded
    def on_sweeps(sess, bb_name, t, l, nn, sd, bn, text, nseeds, c, last, progress=gr.Progress(track_tqdm=True)):
        pair = pair_of(sess, bb_name, t, l, nn, sd, bn)
        s = H.compare_sweeps(models, pair, H.parse_numbers(text), nseeds, bool(c))
        return s.depth_fig, s.pck_fig, s.note, H.remember(last, pair, compare_sweep=s)

    @guarded
    def on_export(sess, bb_name, t, l, nn, sd, bn, last, progress=gr.Progress()):
        progress(0.2, desc='writing the export')
        b, kn = checked_knobs(models, sess, bb_name, t, l, nn, sd)
        try: view = H.compare_pair(models, twins, sess, b, bn, kn.t, kn.layer, kn.n_noise, kn.seed)
        except ValueError: view = H.E.view_settings(b, kn.t, kn.layer, kn.n_noise, kn.seed)  # B is A: A alone
        return str(H.export_session(models, sess, last, view))

    ins = k.knobs + [b_name]
    btn.click(on_compare, ins + [last], [caption, image, summary, table, last], **RAW)
    sweep_btn.click(on_sweeps, ins + [ts, n_seeds, corr, last], [depth_diff, pck_diff, sweep_note, last], **RAW)
    export_btn.click(on_export, ins + [last], export_file, **RAW)


def build_demo(models: H.AppModels) -> gr.Blocks:
    "Lay out the page, one builder per tab; `models` carries the backbones, chat model and the explorer's workspace."
    with gr.Blocks(title='vega3d_nb explorer', delete_cache=(600, 3600), analytics_enabled=False) as demo:
        session = gr.State(H.new_session(models))
        gr.Markdown('# vega3d_nb explorer\nHow much 3D does a video diffusion model know? Load a clip, then look at '
                    'its features, probe them for depth and correspondences, sweep layers x timesteps, and chat with '
                    'the fused model.')
        if models.notes: gr.Markdown('\n'.join(f'> **Note:** {n}' for n in models.notes), elem_id='notes')
        k = controls(models, session)
        with gr.Tabs():
            inp = input_tab(models, session, k)
            feats = features_tab(models, session, k)
            depth = depth_tab(models, session, k)
            corr = correspondence_tab(models, session, k)
            sweep_tab(models, session, k)
            gates_tab(models, session, k)
            chat_tab(models, session)
            compare_tab(models, session, k)   # issue 18, item 14
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
    shelf = H.BackboneShelf(dev, loader=functools.partial(load_backbone, local_files_only=local_files_only),
                            check=H.ES.weights_missing if local_files_only else None)  # offline: refuse at once
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
