"""The app in a real browser: headless Debian chromium driven by Playwright (never `playwright install`).

Launches `app/app.py` on a free loopback port with the tiny-random backbone, loads the bundled synthetic sample, moves
the layer slider and checks the PCA image's pixels change, types an out-of-range timestep (clamped, one warning), clicks
a correspondence point (the query marker's pixels sit where the summary says the query is), fits the depth probe (its
table read against the best baseline, the rendered ground-truth panel differs between two frames, its point cloud drawn
by software WebGL), computes the fusion gates, asks one chat question and clears it, picks a backbone whose weights are
missing (the app keeps the working one), uploads an image (a one-frame clip in every tab) and then a corrupt file
(the error is shown and the image stays loaded), and changes the resolution (the image is re-sampled). The samples
are labelled for the backbone in use, and the chat states its quality and limits its messages. The app starts while
Chromium launches, and full-page screenshots are taken only when kept (and on a failure).
Every request leaving 127.0.0.1 is blocked and must not happen. Screenshots go to a temp dir (printed; kept when
VEGA3D_KEEP_SCREENSHOTS=1).
"""
import os, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get('VEGA3D_CHROMIUM', '/usr/bin/chromium')
ARGS = ['--headless', '--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',  # WebGL in software
        '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic',
        '--disable-sync']

if not Path(CHROMIUM).exists():
    pytest.skip(f'{CHROMIUM} is missing: install Debian chromium (apt-get install -y chromium) to run the browser test',
                allow_module_level=True)
pytest.importorskip('playwright.sync_api', reason='Python playwright is not installed (dev requirement)')
from playwright.sync_api import sync_playwright, expect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def app_url():
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED='False', HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1',
               PYTHONUNBUFFERED='1', NO_PROXY='127.0.0.1,localhost', no_proxy='127.0.0.1,localhost')
    log = tempfile.NamedTemporaryFile('w+', prefix='vega3d-app-', suffix='.log', delete=False)
    cmd = [sys.executable, str(ROOT / 'app' / 'app.py'), '--backbone', 'tiny-random-wan',
           '--mllm', 'tiny-random-qwen2.5-vl', '--device', 'cpu', '--host', '127.0.0.1', '--port', str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    tail = lambda: Path(log.name).read_text()[-3000:]
    url = f'http://127.0.0.1:{port}/'

    def ready() -> str:
        "The app's URL once it answers (the browser starts meanwhile)."
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None: pytest.fail(f'the app exited with {proc.returncode}:\n{tail()}')
            try:
                urllib.request.urlopen(url, timeout=2)
                return url
            except OSError:
                if time.time() > deadline: pytest.fail(f'the app did not start in 120 s:\n{tail()}')
                time.sleep(0.25)
    try:
        yield ready
        assert proc.poll() is None, f'the app died during the test:\n{tail()}'
    finally:
        proc.terminate()
        try: proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out = Path(log.name).read_text()
        Path(log.name).unlink()
    scratch = [l.split('scratch ', 1)[1].strip() for l in out.splitlines() if 'scratch ' in l]
    assert scratch and not Path(scratch[0]).exists(), f'the app left its scratch folder behind: {scratch}'


def _img_src(page, elem_id: str) -> str:
    loc = page.locator(f'#{elem_id} img')
    return loc.first.get_attribute('src') if loc.count() else ''


def _wait_new_src(page, elem_id: str, old: str, timeout: float = 60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        src = _img_src(page, elem_id)
        if src and src != old: return src
        page.wait_for_timeout(250)
    raise AssertionError(f'#{elem_id} image did not change within {timeout} s (still {old!r:.80})')


def _set_slider(page, elem_id: str, value):
    box = page.locator(f'#{elem_id} input[type=number]')
    box.fill(str(value))
    box.press('Enter')


def _toasts(page) -> list:
    return [t.inner_text() for t in page.locator('.toast-body, [data-testid="toast-body"]').all()]


def _wait_toast(page, text: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        hit = [t for t in _toasts(page) if text in t]
        if hit: return hit[-1]
        page.wait_for_timeout(250)
    raise AssertionError(f'no message containing {text!r} within {timeout} s; messages: {_toasts(page)}')


def _close_toasts(page):
    for b in page.locator('.toast-close, [data-testid="toast-close"]').all():
        try: b.click(timeout=300)  # a toast may close itself meanwhile
        except Exception: pass


def _png(data_url: str):
    "The RGB pixels (float) of a base64 PNG data URL."
    import base64, io
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(',', 1)[1]))).convert('RGB')).astype(float)


def _img_pixels(page, elem_id: str, timeout: float = 60):
    "The pixels of the element's image as the browser decoded them, at its natural size (drawn onto a canvas)."
    url = page.wait_for_function("""(sel) => {
        const img = document.querySelector(sel);
        if (!img || !img.complete || !img.naturalWidth) return null;
        const c = document.createElement('canvas');
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
        c.getContext('2d').drawImage(img, 0, 0);
        return c.toDataURL('image/png');
    }""", arg=f'#{elem_id} img', timeout=timeout * 1000).json_value()
    return _png(url)


def _heatmap_panels(page, title: str, timeout: float = 60) -> list:
    "The rendered heatmap images (left to right) of the plotly figure titled `title`, once it is drawn."
    hrefs = page.wait_for_function("""(title) => {
        const plot = [...document.querySelectorAll('.js-plotly-plot')].find(
            p => [...p.querySelectorAll('.gtitle')].some(t => t.textContent.includes(title)));
        if (!plot) return null;
        const hrefs = [...plot.querySelectorAll('g.hm image')].map(
            e => e.getAttribute('href') || e.getAttribute('xlink:href'));
        return hrefs.length && hrefs.every(h => h && h.startsWith('data:image/png')) ? hrefs : null;
    }""", arg=title, timeout=timeout * 1000).json_value()
    return [_png(h) for h in hrefs]


def _query_marker(before, after, summary: str):
    "Check the yellow query dot drawn after a click is centred on the pixel the summary names, at one integer scale."
    import re
    x, y = (int(v) for v in re.search(r'Query \((\d+), (\d+)\)', summary).groups())
    new_yellow = (np.abs(after - before).sum(-1) > 30) & (after[..., 0] > 200) & (after[..., 1] > 200) & \
        (after[..., 2] < 80)
    ys, xs = np.nonzero(new_yellow)
    assert len(xs) >= 9, f'no query marker drawn ({len(xs)} new yellow pixels)'
    cx, cy = xs.mean() + 0.5, ys.mean() + 0.5  # the dot's centre in image pixels
    s = round(cy / (y + 0.5))  # the integer display scale the app drew at
    assert s >= 1 and abs(cx - (x + 0.5) * s) <= 1.5 and abs(cy - (y + 0.5) * s) <= 1.5, (x, y, cx, cy, s)


def _canvas_is_drawn(page, selector: str) -> bool:
    "The element's pixels vary (a blank or failed WebGL canvas is one flat colour)."
    import io
    from PIL import Image
    loc = page.locator(selector).first
    loc.wait_for(timeout=60_000)
    a = np.asarray(Image.open(io.BytesIO(loc.screenshot())).convert('RGB')).reshape(-1, 3)
    return len(np.unique(a, axis=0)) > 20


def shot(page, shots: Path, name: str, keep: bool):
    "A full-page screenshot, only when they are kept (each one costs about a second with software WebGL)."
    if keep: page.screenshot(path=str(shots / name), full_page=True)


def test_app_in_a_real_browser(app_url, capsys):
    t0 = time.time()
    shots = Path(tempfile.mkdtemp(prefix='vega3d-app-shots-'))
    keep = bool(os.environ.get('VEGA3D_KEEP_SCREENSHOTS'))
    external, marks = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1100})
            def only_loopback(route):
                if route.request.url.startswith(('http://127.0.0.1', 'ws://127.0.0.1', 'data:', 'blob:')):
                    route.continue_()
                else:
                    external.append(route.request.url)
                    route.abort()
            page.route('**/*', only_loopback)
            page.goto(app_url(), wait_until='load')
            page.wait_for_selector('#load_btn', timeout=60_000)
            expect(page.locator('#notes')).to_contain_text('random weights')
            # 4. the samples say whether the backbone in use trained on them (random weights: none)
            assert 'unseen' in page.locator('#sample input').input_value()

            marks.append(('1', time.time()))
            # 1. load the bundled synthetic sample: input info and the PCA image appear
            page.click('#load_btn')
            expect(page.locator('#input_info')).to_contain_text('scene_orbit', timeout=90_000)
            expect(page.locator('#input_info')).to_contain_text('ground truth')
            page.get_by_role('tab', name='Features').click()
            first = _wait_new_src(page, 'pca_image', '', 90)
            expect(page.locator('#feat_caption')).to_contain_text('layer 2')
            pca_layer2 = _img_pixels(page, 'pca_image')
            assert pca_layer2.std() > 5, 'the PCA image is one flat colour'
            shot(page, shots, '1-features.png', keep)

            marks.append(('2', time.time()))
            # 2. move the layer slider: the PCA image changes, from cached features (no new forward)
            _set_slider(page, 'layer_slider', 0)
            second = _wait_new_src(page, 'pca_image', first, 60)
            expect(page.locator('#feat_caption')).to_contain_text('layer 0', timeout=30_000)
            expect(page.locator('#feat_caption')).to_contain_text('Reused cached features')
            assert second != first
            pca_layer0 = _img_pixels(page, 'pca_image')
            assert pca_layer0.shape == pca_layer2.shape and np.abs(pca_layer0 - pca_layer2).mean() > 2, \
                'the PCA image looks the same at layers 0 and 2'
            shot(page, shots, '2-layer0.png', keep)

            marks.append(('2b', time.time()))
            # 2b. a typed timestep out of range: clamped into the box, one warning, the picture at the clamped value
            _set_slider(page, 't_slider', 2000)
            msg = _wait_toast(page, 'timestep 2000 is outside')
            assert msg.count('timestep 2000') == 1, msg
            expect(page.locator('#t_slider input[type=number]')).to_have_value('1000', timeout=30_000)
            expect(page.locator('#feat_caption')).to_contain_text('t=1000', timeout=30_000)
            _close_toasts(page)

            marks.append(('3', time.time()))
            # 3. click a point of frame 0: matches, ground truth and PCK appear
            page.get_by_role('tab', name='Correspondence').click()
            img = page.locator('#corr_frame0 img').first
            img.wait_for(timeout=30_000)
            box = img.bounding_box()
            src0, frame_before = _img_src(page, 'corr_frame0'), _img_pixels(page, 'corr_frame0')
            img.click(position={'x': box['width'] * 0.45, 'y': box['height'] * 0.7})
            expect(page.locator('#corr_summary')).to_contain_text('PCK', timeout=60_000)
            _wait_new_src(page, 'corr_frame0', src0, 60)
            _query_marker(frame_before, _img_pixels(page, 'corr_frame0'), page.locator('#corr_summary').inner_text())
            assert _img_src(page, 'corr_matches')
            shot(page, shots, '3-correspondence.png', keep)

            marks.append(('4', time.time()))
            # 4. depth probe (fitted on the scene set, compared with the sample's ground truth) and the fusion gates
            page.get_by_role('tab', name='Depth probe').click()
            page.click('#depth_btn')
            expect(page.locator('#depth_note')).to_contain_text('held-out test scenes', timeout=120_000)
            expect(page.locator('#depth_table')).to_contain_text('than', timeout=30_000)  # read against a baseline
            assert 'WORSE than' in page.locator('#depth_table').inner_text() or \
                'better than' in page.locator('#depth_table').inner_text()
            gt0, pred0 = _heatmap_panels(page, 'frame 0')[:2]
            assert gt0.std() > 5 and np.abs(gt0 - pred0).mean() > 1, 'the truth and prediction panels look the same'
            marks.append(('4-frame', time.time()))
            _set_slider(page, 'depth_frame', 3)
            page.click('#depth_btn')
            gt3 = _heatmap_panels(page, 'frame 3')[0]
            assert gt3.shape == gt0.shape and abs(gt3.mean() - gt0.mean()) > 0.5, 'frame 3 shows the same truth'
            marks.append(('4-cloud', time.time()))
            assert _canvas_is_drawn(page, '#depth_cloud .gl-container canvas, #depth_cloud canvas'), \
                'the point cloud canvas is blank'
            shot(page, shots, '4a-depth.png', keep)
            marks.append(('4-gates', time.time()))
            page.get_by_role('tab', name='Fusion gates').click()
            page.click('#gates_btn')
            expect(page.locator('#gates_info')).to_contain_text('Mean gate', timeout=60_000)
            shot(page, shots, '4b-gates.png', keep)

            marks.append(('5', time.time()))
            # 5. one chat question: a non-empty streamed answer, and the page names the model and CPU/GPU
            page.get_by_role('tab', name='Chat').click()
            expect(page.locator('#chat_model')).to_contain_text('CPU')
            page.locator('#chat_box textarea').fill('Which object is closest to the camera?')
            page.locator('#chat_box textarea').press('Enter')
            bot = page.locator('#chatbot .message.bot, #chatbot [data-testid="bot"]').last
            bot.wait_for(timeout=90_000)
            page.wait_for_function("""() => {
                const m = document.querySelectorAll('#chatbot .message.bot, #chatbot [data-testid="bot"]');
                return m.length && m[m.length - 1].innerText.trim().length > 0;
            }""", timeout=90_000)
            assert bot.inner_text().strip()
            label = page.locator('#chat_model').inner_text()
            assert 'random' in label and str(ROOT) not in label and '/tmp/' not in label, label
            assert 'held-out scores' in label and page.locator('#chat_box textarea').get_attribute('maxlength') == '1000'
            shot(page, shots, '5-chat.png', keep)
            page.click('#clear_btn')
            page.wait_for_function("""() => !document.querySelectorAll('#chatbot .message.bot, '
                                   + '#chatbot [data-testid="bot"]').length""", timeout=30_000)

            marks.append(('5b', time.time()))
            # 5b. a backbone whose weights are missing: the message names the download, the working one stays
            page.locator('#backbone input').click()
            page.get_by_role('option', name='wan2.1-t2v-1.3b', exact=False).first.click()
            msg = _wait_toast(page, 'huggingface-cli download')
            expect(page.locator('#backbone input')).to_have_value('tiny-random-wan (random weights)', timeout=30_000)
            expect(page.locator('#bb_info')).to_contain_text('Not loaded', timeout=30_000)
            expect(page.locator('#t_slider input[type=number]')).to_have_value('1000')  # the controls stay as they were
            page.locator('#backbone input').click()
            assert 'unavailable' in page.get_by_role('option', name='wan2.1-t2v-1.3b', exact=False).first.inner_text()
            page.keyboard.press('Escape')
            _close_toasts(page)

            marks.append(('5c', time.time()))
            # 5c. an image after the sample: a one-frame clip in every tab, no error
            page.get_by_role('tab', name='Input').click()
            png = shots / 'photo.png'
            from PIL import Image
            Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(png)
            page.locator('#upload input[type=file]').set_input_files(str(png))
            expect(page.locator('#input_info')).to_contain_text('1 frame (an image)', timeout=60_000)
            page.get_by_role('tab', name='Features').click()
            expect(page.locator('#feat_caption')).to_contain_text('grid 8x12', timeout=60_000)
            assert not [t for t in _toasts(page) if 'Error' in t], _toasts(page)

            marks.append(('6', time.time()))
            # 6. a corrupt upload: the library's message appears as an error, no traceback
            page.get_by_role('tab', name='Input').click()
            page.locator('#upload button[aria-label="Clear"]').click()
            bad = shots / 'corrupt.mp4'
            bad.write_bytes(b'\x00\x00\x00\x18ftypmp42' + os.urandom(4000))
            page.locator('#upload input[type=file]').set_input_files(str(bad))
            toast = page.locator('.toast-body, [data-testid="toast-body"]').first
            toast.wait_for(timeout=60_000)
            msg = toast.inner_text()
            assert 'corrupt.mp4' in msg and 'Could not read' in msg, msg
            assert 'Traceback' not in msg and '/tmp/' not in msg, msg
            shot(page, shots, '6-corrupt-upload.png', keep)
            expect(page.locator('#input_info')).to_contain_text('photo.png')  # the loaded clip is still there

            # 7. the page keeps working: a new resolution re-samples the upload (the image, not a sample)
            marks.append(('7', time.time()))
            _set_slider(page, 'size', 64)
            expect(page.locator('#input_info')).to_contain_text('photo.png: 1 frame (an image), 64x96', timeout=60_000)
            page.get_by_role('tab', name='Features').click()
            expect(page.locator('#feat_caption')).to_contain_text('grid 4x6', timeout=60_000)
            shot(page, shots, '7-still-working.png', keep)
        except Exception:
            page.screenshot(path=str(shots / 'failure.png'), full_page=True)
            print(f'the page when the test failed: {shots / "failure.png"}')
            raise
        finally:
            browser.close()
    assert not external, f'the page tried to reach the internet: {external[:5]}'
    with capsys.disabled():
        steps = ', '.join(f'{a}: {tb - ta:.1f}' for (a, ta), (_, tb) in zip(marks, marks[1:] + [('end', time.time())]))
        load = ', '.join(f'{v:.1f}' for v in os.getloadavg())
        print(f'\nbrowser test: {time.time() - t0:.1f} s from the browser launch (steps, s: {steps}); load average '
              f'{load}' + (f'; screenshots in {shots}' if keep else ''))
    if not keep: shutil.rmtree(shots, ignore_errors=True)
