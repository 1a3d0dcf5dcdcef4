"""The peer a user would pick instead: the same workloads as bench/side_by_side.ts, in PyTorch.

Small CNN (28x28x1 conv32-pool-conv64-pool-dense128-dense10, 'same' padding), batch 128:
  - PGD L-inf (eps 8/255, step 2/255), `steps` steps: image-steps per second;
  - SGD training steps (momentum 0.9, wd 5e-4) on cross-entropy: images per second.
Prints one JSON line. Run with Debian's interpreter: /usr/bin/python3 bench/torch_workloads.py
"""
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


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


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = cnn()
    batch, steps = 128, 10
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    model.eval()
    pgd(model, x, y, 8 / 255, 2 / 255, 2)  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        pgd(model, x, y, 8 / 255, 2 / 255, steps)
    pgd_s = (time.perf_counter() - t0) / reps
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(reps * 2):
        step()
    train_s = (time.perf_counter() - t0) / (reps * 2)
    print(json.dumps({
        "peer": f"pytorch {torch.__version__}",
        "threads": threads,
        "pgd_image_steps_per_s": batch * steps / pgd_s,
        "train_images_per_s": batch / train_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
