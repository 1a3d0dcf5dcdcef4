"""PyTorch's side of bench/webgpu_check.ts: the same two models and the same two workloads, timed
the same way, so the check can put tfjs WebGPU (ours and stock) beside PyTorch CUDA in one run.

Models (twins of bench/small_cnn.ts and src/lab/vgg_bn.ts):
  - cnn: 28x28x1 conv32-pool-conv64-pool-dense128-dense10, 'same' padding, ReLU;
  - vgg: 32x32x3 [conv3x3(w)-BN-ReLU]x2-pool, [2w]x2-pool, [4w]x2-pool, flatten, dense10;
    convolutions without bias, BatchNorm2d(eps=1e-3, momentum=0.01) = Keras's (0.99, 1e-3).
Workloads, per model and batch size, on seeded random inputs in [0, 1]:
  - pgd: PGD-10 L-inf (eps 8/255, step 2/255, sign step, projection), model in eval mode;
    reported as image-steps per second (batch x steps / seconds);
  - sgd: one SGD step (momentum 0.9, weight decay 5e-4, lr 0.01) on cross-entropy, model in
    train mode; reported as images per second.
Each timing ends with torch.cuda.synchronize() on CUDA. The first repeat of each (cuDNN autotune,
allocator warm-up) is not counted; the median of the rest is reported. cudnn.benchmark is on:
what a user who wants speed sets.

  /usr/bin/python3 bench/webgpu_check_torch.py --device cuda|cpu|auto --batches 32,256 \
      --reps 5 --steps 10 --vgg-width 64 [--models cnn,vgg]

Prints one JSON object: {"device", "torch", "cuda_name", "results": [{model, batch, workload,
median_s, per_s}]}, or {"skipped": reason} with --device auto on a host without CUDA.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The small CNN and PGD of bench/torch_workloads.py, beside this file.
from torch_workloads import cnn, pgd


def vgg_bn(width):
    layers, cin = [], 3
    for mult in (1, 2, 4):
        for _ in range(2):
            layers += [
                nn.Conv2d(cin, width * mult, 3, padding=1, bias=False),
                nn.BatchNorm2d(width * mult, eps=1e-3, momentum=0.01),
                nn.ReLU(),
            ]
            cin = width * mult
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(cin * 4 * 4, 10)]
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batches", default="32,256")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--vgg-width", type=int, default=64)
    ap.add_argument("--models", default="cnn,vgg")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    a = ap.parse_args()
    device = a.device
    if device == "auto":
        if not torch.cuda.is_available():
            print(json.dumps({"skipped": "no CUDA device (torch.cuda.is_available() is false)"}))
            return
        device = "cuda"
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"error": "--device cuda but torch.cuda.is_available() is false"}))
        sys.exit(2)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.backends.cudnn.benchmark = True

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    results = []
    for name in a.models.split(","):
        torch.manual_seed(0)
        model = (cnn() if name == "cnn" else vgg_bn(a.vgg_width)).to(device)
        shape = (1, 28, 28) if name == "cnn" else (3, 32, 32)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        for batch in (int(b) for b in a.batches.split(",")):
            x = torch.rand(batch, *shape, device=device)
            y = torch.randint(0, 10, (batch,), device=device)

            def run_pgd():
                model.eval()
                pgd(model, x, y, 8 / 255, 2 / 255, a.steps)

            def run_sgd():
                model.train()
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()

            times = {"pgd": [], "sgd": []}
            for r in range(a.reps + 1):
                for workload, fn in (("pgd", run_pgd), ("sgd", run_sgd)):
                    sync()
                    t0 = time.perf_counter()
                    fn()
                    sync()
                    if r > 0:
                        times[workload].append(time.perf_counter() - t0)
            for workload, ts in times.items():
                med = statistics.median(ts)
                units = batch * a.steps if workload == "pgd" else batch
                results.append({"model": name, "batch": batch, "workload": workload,
                                "median_s": med, "per_s": units / med})
    print(json.dumps({
        "device": device,
        "torch": torch.__version__,
        "cuda_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "threads": torch.get_num_threads(),
        "results": results,
    }))


if __name__ == "__main__":
    main()
