"Scene dataset caching on disk: the default cache location, a broken cache file, and cache keys."
import numpy as np
import pytest
import torch

from vega3d_nb.scenes import (SceneDataset, default_cache_dir, flat_ground_clip, load_scene_clip, make_scene,
                              render_scene_clip)


def test_default_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv('VEGA3D_CACHE', str(tmp_path))
    assert default_cache_dir() == tmp_path / 'scenes'
    ds = SceneDataset(2, 'val', n_frames=2, size=16)
    ds[0]
    assert ds.cache_path(0).parent == tmp_path / 'scenes' and ds.cache_path(0).is_file()
    monkeypatch.delenv('VEGA3D_CACHE')
    assert default_cache_dir().parts[-3:] == ('.cache', 'vega3d_nb', 'scenes')


def test_broken_cache_file_is_rerendered(tmp_path):
    ds = SceneDataset(1, 'test', n_frames=2, size=16, cache_dir=tmp_path)
    good = ds[0]
    ds.cache_path(0).write_bytes(b'garbage')
    ds2 = SceneDataset(1, 'test', n_frames=2, size=16, cache_dir=tmp_path)
    again = ds2[0]
    assert ds2.n_rendered == 1 and torch.equal(again.depth, good.depth)
    assert torch.equal(load_scene_clip(ds.cache_path(0)).depth, good.depth)  # the file was rewritten


def test_cache_key_separates_settings(tmp_path):
    a = SceneDataset(1, n_frames=2, size=16, cache_dir=tmp_path)
    b = SceneDataset(1, n_frames=3, size=16, cache_dir=tmp_path)
    c = SceneDataset(1, n_frames=2, size=(16, 24), cache_dir=tmp_path)
    assert len({a.cache_path(0), b.cache_path(0), c.cache_path(0)}) == 3
    assert b[0].num_frames == 3 and c[0].clip.size == (16, 24)


def test_render_input_checks():
    s = make_scene(0)
    with pytest.raises(ValueError, match='n_frames'): render_scene_clip(s, 0)
    with pytest.raises(ValueError, match='size'): render_scene_clip(s, 2, (2, 2))
    with pytest.raises(ValueError, match='fov_deg'): render_scene_clip(s, 2, 16, fov_deg=200)
    with pytest.raises(ValueError, match='n_objects'): make_scene(0, n_objects=50)


def test_flat_ground_has_only_ground_and_sky():
    g = flat_ground_clip(3, 2, (24, 24), 'pan')
    assert set(np.unique(g.object_ids.numpy())) <= {-1, 0}
    assert g.valid.float().mean() > 0.5
