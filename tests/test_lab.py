"`make lab` starts JupyterLab on the notebooks, also as root (containers), bound to the loopback address."
import json, os, signal, socket, subprocess, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_make_lab_answers_on_its_port():
    port, token = _free_port(), 'vega3d-test'
    args = f'ARGS=--no-browser --port={port} --ServerApp.token={token} --ServerApp.port_retries=0'
    proc = subprocess.Popen(['make', '-s', 'lab', args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, 'JUPYTER_RUNTIME_DIR': '/tmp/vega3d-lab'})
    try:
        status, deadline = None, time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            try:
                url = f'http://127.0.0.1:{port}/api/status?token={token}'
                status = json.loads(urllib.request.urlopen(url, timeout=2).read())
                break
            except OSError:
                time.sleep(0.5)
        out = '' if proc.poll() is None else proc.stdout.read()
        assert status is not None, f'JupyterLab did not answer on 127.0.0.1:{port}; make lab said:\n{out[-2000:]}'
        assert 'started' in status
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
