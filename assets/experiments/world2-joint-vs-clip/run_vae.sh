#!/bin/bash
# Stage 1 of the joint-vs-clip-only experiment: data + VAE (warm start from vega3d-tiny-scenes), no DiT steps.
cd /work/main
export OMP_NUM_THREADS=1 MUJOCO_GL=egl
.venv/bin/vega3d-train-world --out /work/wm2/out_vae --work_dir /work/wm2/joint \
  --mix scenes:400,physics:100,tabletop:30 --val_mix scenes:8,physics:8,tabletop:6 --size 64 --n_frames 17 \
  --vae_minutes 12 --vae_batch 8 --vae_crop 32 --dit_steps 0 --init_from assets/vega3d-tiny-scenes \
  --name vega3d-worlds-64 --threads 1 --seed 3
