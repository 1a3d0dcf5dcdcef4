"""The peer a user would pick instead: the same workloads as bench/side_by_side.ts, in PyTorch.

Small CNN (28x28x1 conv32-pool-conv64-pool-dense128-dense10, 'same' padding), batch 128:
  - PGD L-inf (eps 8/255, step 2/255), `steps` steps: image-steps per second;
  - SGD training steps (momentum 0.9, wd 5e-4) on cross-entropy: images per second.

Two modes, both run with Debian's interpreter (/usr/bin/python3):
  - `torch_workloads.py THREADS REPS`: runs both workloads, prints one JSON line;
  - `torch_workloads.py --serve THREADS`: warms up, prints `{"ready": ...}`, then for each line
    `pgd` or `train` on stdin runs that workload once and prints `{"seconds": s}`, so that
    bench/side_by_side.ts can interleave it with its own repeats (A B A B ...) on a shared machine;
    `rss` prints the peak RSS in MiB.
TORCH_DEVICE=cuda runs them on the GPU (timings then wait for the device to finish).
"""
import os
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH, STEPS = 128, 10
DEVICE = os.environ.get("TORCH_DEVICE", "cpu")


def sync():
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def pgd(model, x, y, eps, alpha, steps):
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), y)
        (g,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = adv + alpha * g.sign()
            adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()


class Workloads:
    def __init__(self, threads):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.model = cnn().to(DEVICE)
        self.x = torch.rand(BATCH, 1, 28, 28).to(DEVICE)
        self.y = torch.randint(0, 10, (BATCH,)).to(DEVICE)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9,
                                   weight_decay=5e-4)

    def pgd(self, steps=STEPS):
        self.model.eval()
        t0 = time.perf_counter()
        pgd(self.model, self.x, self.y, 8 / 255, 2 / 255, steps)
        sync()
        return time.perf_counter() - t0

    def train(self):
        self.model.train()
        t0 = time.perf_counter()
        self.opt.zero_grad()
        F.cross_entropy(self.model(self.x), self.y).backward()
        self.opt.step()
        sync()
        return time.perf_counter() - t0


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve(threads):
    w = Workloads(threads)
    w.pgd(2)
    w.train()
    name = f"pytorch {torch.__version__}" + ("" if DEVICE == "cpu" else f" {DEVICE}")
    print(json.dumps({"ready": name, "threads": threads}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "pgd":
            print(json.dumps({"seconds": w.pgd()}), flush=True)
        elif cmd == "train":
            print(json.dumps({"seconds": w.train()}), flush=True)
        elif cmd == "rss":
            print(json.dumps({"peak_rss_mib": peak_rss_mib()}), flush=True)
        elif cmd == "quit":
            break


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
        return
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    w = Workloads(threads)
    w.pgd(2)
    w.train()
    pgd_s = sorted(w.pgd() for _ in range(reps))[reps // 2]
    train_s = sorted(w.train() for _ in range(reps * 2))[reps]
    print(json.dumps({
        "peer": f"pytorch {torch.__version__}",
        "threads": threads,
        "pgd_image_steps_per_s": BATCH * STEPS / pgd_s,
        "train_images_per_s": BATCH / train_s,
        "peak_rss_mib": peak_rss_mib(),
    }))


if __name__ == "__main__":
    main()
