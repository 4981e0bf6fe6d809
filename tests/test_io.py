"Clip I/O on real files made here: round trips, formats, and broken inputs (truncated, random bytes, empty, missing)."
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vega3d_nb.core import Clip
from vega3d_nb.frames import ClipTooLargeError
from vega3d_nb.io import load_clip, sample_clip_paths, save_clip


def _frames(T=30, H=64, W=96, seed=0):
    "Smooth moving gradients plus a little noise: compressible, but every frame differs."
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    f = [np.stack([(xx * 3 + 5 * t) % 256, (yy * 4 + 3 * t) % 256, 128 + rng.integers(-20, 20, xx.shape)], -1) for t in range(T)]
    return np.stack(f).astype(np.uint8)


@pytest.fixture
def mp4(tmp_path):
    return save_clip(load_clip(_frames(), fps=10), tmp_path / 'clip.mp4')


# ---------- round trips and sampling ----------

def test_round_trip(mp4):
    src = load_clip(_frames(), fps=10)
    back = load_clip(mp4)
    assert back.frames.shape == src.frames.shape
    assert back.frame_indices == list(range(30))
    assert back.fps == pytest.approx(10.)
    assert back.frames.dtype == torch.float32 and 0 <= back.frames.min() and back.frames.max() <= 1
    assert (back.frames - src.frames).abs().mean() < 0.03  # lossy, but close
    assert back.source == str(mp4)


def test_save_clip_returns_path_and_writes_h264_or_mpeg4(tmp_path):
    p = save_clip(_frames(5), tmp_path / 'sub' / 'x.mp4', fps=5)
    assert p == tmp_path / 'sub' / 'x.mp4' and p.stat().st_size > 0
    with av.open(str(p)) as c:
        assert c.streams.video[0].codec_context.name in ('h264', 'mpeg4')
        assert c.streams.video[0].average_rate == Fraction(5)
    assert not list((tmp_path / 'sub').glob('.*tmp*'))  # no temp file left behind


def test_odd_sizes_are_padded_to_even(tmp_path):
    odd = load_clip(_frames(4, 33, 47))
    back = load_clip(save_clip(odd, tmp_path / 'odd.mp4'))
    assert back.size == (34, 48)
    assert (back.frames[..., :33, :47] - odd.frames).abs().mean() < 0.03
    assert load_clip(tmp_path / 'odd.mp4', size=(33, 47)).size == (33, 47)


def test_sampling(mp4):
    assert load_clip(mp4, num_frames=4).frame_indices == [0, 10, 19, 29]
    s = load_clip(mp4, stride=7)
    assert s.frame_indices == [0, 7, 14, 21, 28] and s.fps == pytest.approx(10 / 7)
    assert load_clip(mp4, num_frames=3, stride=5).frame_indices == [0, 5, 10]
    assert load_clip(mp4, num_frames=100).num_frames == 30  # never invents frames
    # the sampled frames are the same frames as in the full decode
    full = load_clip(mp4)
    assert torch.equal(load_clip(mp4, num_frames=4).frames, full.frames[[0, 10, 19, 29]])


def test_resize_keeps_aspect_and_center_crop(mp4):
    assert load_clip(mp4, size=32).size == (32, 48)            # shorter side, aspect kept
    assert load_clip(mp4, size=(32, 32)).size == (32, 32)      # exact
    c = load_clip(mp4, size=(32, 32), center_crop=True)
    assert c.size == (32, 32)
    full = load_clip(mp4, size=32)                             # 32x48: the crop is its middle 32 columns
    assert (c.frames - full.frames[..., 8:40]).abs().max() < 1e-5
    assert load_clip(mp4, size=16, center_crop=True).size == (16, 16)


def test_content_hash_is_stable(mp4):
    assert load_clip(mp4, num_frames=5).content_hash == load_clip(mp4, num_frames=5).content_hash
    assert load_clip(mp4, num_frames=5).content_hash != load_clip(mp4, num_frames=6).content_hash


# ---------- other formats ----------

def test_gif_image_folder_and_single_image(tmp_path):
    fr = _frames(6, 40, 60)
    ims = [Image.fromarray(f) for f in fr]
    ims[0].save(tmp_path / 'a.gif', save_all=True, append_images=ims[1:], duration=100, loop=0)
    g = load_clip(tmp_path / 'a.gif')
    assert g.num_frames == 6 and g.size == (40, 60)
    folder = tmp_path / 'frames'; folder.mkdir()
    for i, im in enumerate(ims): im.save(folder / f'{i:03d}.png')
    (folder / 'notes.txt').write_text('not an image')
    c = load_clip(folder, num_frames=3)
    assert c.frame_indices == [0, 2, 5] and c.size == (40, 60)
    assert torch.equal(c.frames, load_clip(fr).frames[[0, 2, 5]])   # png is lossless
    one = load_clip(folder / '001.png', size=20)
    assert one.num_frames == 1 and one.size == (20, 30)


def test_mkv_and_avi(tmp_path):
    fr = _frames(8, 32, 48)
    for ext, codec in (('.mkv', 'mpeg4'), ('.avi', 'mpeg4')):
        p = tmp_path / f'x{ext}'
        with av.open(str(p), 'w') as out:
            st = out.add_stream(codec, rate=8); st.width, st.height, st.pix_fmt = 48, 32, 'yuv420p'
            for f in fr:
                for pkt in st.encode(av.VideoFrame.from_ndarray(f, format='rgb24')): out.mux(pkt)
            for pkt in st.encode(): out.mux(pkt)
        c = load_clip(p)
        assert c.num_frames == 8 and c.size == (32, 48), (ext, c.num_frames)


def test_existing_clip_and_arrays():
    c = load_clip(torch.rand(5, 3, 16, 16))
    assert load_clip(c, stride=2).frame_indices == [0, 2, 4]
    assert load_clip(np.zeros((16, 16, 3), np.uint8)).num_frames == 1


def test_sample_clips_load():
    s = sample_clip_paths()
    assert {'scene_orbit', 'bikes'} <= set(s)
    assert sum(p.stat().st_size for p in s.values() if 'assets' in str(p)) < 3e6
    assert load_clip(s['bikes']).num_frames == 48


# ---------- broken inputs: ValueErrors a person understands ----------

def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match='No such file or folder'): load_clip(tmp_path / 'nope.mp4')


def test_empty_file(tmp_path):
    p = tmp_path / 'empty.mp4'; p.write_bytes(b'')
    with pytest.raises(ValueError, match='empty file'): load_clip(p)


@pytest.mark.parametrize('name', ['noise.mp4', 'noise.webm', 'noise'])
def test_random_bytes(tmp_path, name):
    p = tmp_path / name; p.write_bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match='(Could not read .* as a video|no decodable video frames)'): load_clip(p)


def test_random_bytes_image(tmp_path):
    p = tmp_path / 'noise.png'; p.write_bytes(b'\x89PNG not really' * 100)
    with pytest.raises(ValueError, match='Could not read .* as an image'): load_clip(p)


def test_text_file_is_not_a_video(tmp_path):
    p = tmp_path / 'readme.txt'; p.write_text('hello, I am not a video\n' * 50)
    with pytest.raises(ValueError, match='readme.txt looks like a text file, not a video'):
        load_clip(p)


def test_audio_only_file_has_no_video_stream(tmp_path):
    p = tmp_path / 'tone.mkv'
    with av.open(str(p), 'w') as out:
        st = out.add_stream('pcm_s16le', rate=8000)
        fr = av.AudioFrame.from_ndarray((np.sin(np.arange(8000) / 5) * 3000).astype(np.int16)[None], format='s16', layout='mono')
        fr.sample_rate = 8000
        for pkt in st.encode(fr): out.mux(pkt)
        for pkt in st.encode(): out.mux(pkt)
    with pytest.raises(ValueError, match='no video stream'): load_clip(p)


def test_folder_without_images(tmp_path):
    (tmp_path / 'a.txt').write_text('x')
    with pytest.raises(ValueError, match='No images'): load_clip(tmp_path)


def test_truncated_mp4_warns_and_returns_what_decodes(mp4, tmp_path):
    data = mp4.read_bytes()
    p = tmp_path / 'cut.mp4'; p.write_bytes(data[:int(len(data) * 0.6)])
    with pytest.warns(UserWarning, match='truncated or corrupt'):
        c = load_clip(p)
    assert 1 <= c.num_frames < 30
    assert c.frame_indices == list(range(c.num_frames))
    full = load_clip(mp4)
    assert (c.frames - full.frames[:c.num_frames]).abs().max() < 1e-6   # the frames that decoded are intact


def test_truncated_mp4_with_nothing_decodable(mp4, tmp_path):
    data = mp4.read_bytes()
    for n in (len(data) // 20, 200):
        p = tmp_path / f'cut{n}.mp4'; p.write_bytes(data[:n])
        with pytest.raises(ValueError, match='(no decodable video frames|Could not read|no video stream.*truncated)'): load_clip(p)


def test_corrupt_middle(mp4, tmp_path):
    "Garbage over three packets in the middle: a warning, and the intact frames decoded before the damage."
    with av.open(str(mp4)) as c:
        starts = [pk.pos for pk in c.demux(video=0) if pk.size]
    data = bytearray(mp4.read_bytes())
    a, b = starts[12], starts[15]
    data[a:b] = np.random.default_rng(2).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    p = tmp_path / 'bad.mp4'
    p.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match='truncated or corrupt') as caught:
        c = load_clip(p)
    assert 1 <= c.num_frames <= 12 and c.frame_indices == list(range(c.num_frames))   # nothing from after the damage
    assert f'returning {c.num_frames} of the 30 requested frames' in str(caught[0].message)
    assert torch.equal(c.frames, load_clip(mp4).frames[:c.num_frames])                 # and nothing garbled


def test_absurd_size_vs_cap(mp4):
    with pytest.raises(ClipTooLargeError, match=r'max_pixels=67,108,864.*load_clip\(\.\.\., max_pixels='):
        load_clip(mp4, size=(20_000, 20_000))
    with pytest.raises(ValueError, match='over the limit'):   # a ValueError too
        load_clip(mp4, max_pixels=10_000)
    # the message's suggestion works
    assert load_clip(mp4, size=(8, 8), max_pixels=30 * 64).num_frames == 30
    with pytest.raises(ValueError, match='size must be a positive'): load_clip(mp4, size=0)
    with pytest.raises(ValueError, match='num_frames must be a positive int'): load_clip(mp4, num_frames=0)


def test_bad_fps_for_save(tmp_path):
    with pytest.raises(ValueError, match='fps must be in'): save_clip(_frames(3), tmp_path / 'x.mp4', fps=-1)


def test_clip_type_check():
    with pytest.raises(ValueError, match='Clip has zero frames'):
        Clip(torch.rand(0, 3, 4, 4))
    with pytest.raises(ValueError, match=r'Clip.frames must be a \[T, 3, H, W\] tensor, got torch.Size\(\[3, 4, 4\]\)'):
        Clip(torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match='takes a path'):
        load_clip(12)
