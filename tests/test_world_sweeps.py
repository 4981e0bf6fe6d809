"World sweeps beyond the notebook: another world's clips (static ray-cast scenes with moving cameras), clear errors, CSVs."
import dataclasses

import pytest
import torch

from vega3d_nb.core import SceneClip
from vega3d_nb.scenes import make_scene, render_scene_clip
from vega3d_nb.sweep import load_sweep_csv
from vega3d_nb.object_probe import object_positions, object_probe_scores, object_velocities
from vega3d_nb.world_sweeps import object_sweep, physics_clip_splits, run_world_sweep, world_sweep


@dataclasses.dataclass
class RigidSceneClip(SceneClip):
    "A ray-cast scene clip with its (static) objects' poses: what any world needs to give for the object probes."
    body_poses: torch.Tensor = None   # [T, N, 4, 4] object-to-world


def rigid_clip(seed: int) -> RigidSceneClip:
    "Scene `seed` under an orbiting camera, its objects' base centres as body poses (not moving)."
    scene = make_scene(seed)
    gt = render_scene_clip(scene, n_frames=4, size=(32, 32), camera_path='orbit')
    bp = torch.eye(4, dtype=torch.float64).repeat(4, len(scene.objects), 1, 1)
    bp[:, :, :3, 3] = torch.tensor([list(o.center) for o in scene.objects], dtype=torch.float64)
    return RigidSceneClip(**{f.name: getattr(gt, f.name) for f in dataclasses.fields(SceneClip)}, body_poses=bp)


def test_object_probes_on_another_world():
    "Static objects under a moving camera: camera-frame positions change, velocities (finite differences) are 0."
    clips = [rigid_clip(s) for s in range(7)]
    pos = object_positions(clips[0])
    assert not torch.allclose(pos[0], pos[-1])        # the camera orbits, so camera coordinates change
    assert object_velocities(clips[0]).abs().max() < 1e-9
    df = object_sweep(None, clips[:4], clips[5:], [], [], seeds=(0,), val_clips=clips[4:5], collide=False)
    assert set(df['source']) == {'position', 'rgb', 'constant', 'oracle-state'}
    oracle = df.set_index('source').loc['oracle-state']
    assert oracle['position.err'] < 1e-3 and 'collide.accuracy' not in df


def test_clear_errors():
    "Clips without body poses and one-clip training sets say what to do."
    plain = render_scene_clip(make_scene(0), n_frames=2, size=(16, 16))
    feats = [torch.zeros(2, 2, 2, 1)] * 2
    with pytest.raises(ValueError, match='need clips with body_poses'):
        object_probe_scores(feats, [plain, plain], feats, [plain, plain])
    clip = rigid_clip(1)
    with pytest.raises(ValueError, match='cannot be split for validation'):
        object_probe_scores(feats[:1], [clip], feats[:1], [clip], collide=False)
    tr, _, te = physics_clip_splits(2, 1, n_frames=4, size=32)
    with pytest.raises(ValueError, match='in both train and test'):
        world_sweep(None, tr, tr[:1], objects=True, correspondence=False)
    with pytest.raises(ValueError, match='unknown world'):
        run_world_sweep(None, world='clevrer')


def test_run_world_sweep_csv(tmp_path):
    "A tiny run writes both tables as CSVs that read back with their conventions."
    from vega3d_nb.backbones import load_backbone
    bb = load_backbone('tiny-random-wan', device='cpu')
    ws = run_world_sweep(bb, n_train=3, n_val=2, n_test=2, n_frames=4, size=32, timesteps=(300,), layers=[1],
                         seeds=(0, 1), out_dir=tmp_path, gaps=(1,), n_queries=10, max_pixels=5000)
    depth = load_sweep_csv(tmp_path / 'physics_depth_sweep.csv')
    objs = load_sweep_csv(tmp_path / 'physics_object_sweep.csv')
    assert set(depth['source']) >= {'backbone', 'random-init', 'vae-latents', 'position', 'identity'}
    assert set(objs['source']) >= {'backbone', 'random-init', 'vae-latents', 'oracle-state'}
    assert 'object pooling' in objs.attrs and 'random weights' in ws.backbone
    assert len(depth) == len(ws.depth) and len(objs) == len(ws.objects)
