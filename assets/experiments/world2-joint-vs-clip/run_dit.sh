#!/bin/bash
# Stage 2: the DiT from scratch at equal steps, joint (image_share 0.25) or clips only (0), on the stage-1 VAE.
tag=$1; share=$2
cd /work/main
export OMP_NUM_THREADS=1 MUJOCO_GL=egl
rm -rf /work/wm2/work_$tag && cp -r /work/wm2/joint /work/wm2/work_$tag
rm -f /work/wm2/work_$tag/transformer.ckpt
.venv/bin/vega3d-train-world --out /work/wm2/out_$tag --work_dir /work/wm2/work_$tag \
  --mix scenes:400,physics:100,tabletop:30 --val_mix scenes:8,physics:8,tabletop:6 --size 64 --n_frames 17 \
  --vae_minutes 12 --vae_batch 8 --vae_crop 32 --dit_steps 600 --dit_minutes 90 --dit_batch 8 \
  --image_share $share --init_from assets/vega3d-tiny-scenes --init_parts vae \
  --name vega3d-worlds-64-$tag --threads 1 --seed 3
