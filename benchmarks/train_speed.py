"""BP training speed of the rate back end vs a reference-style loop (not a test).

Reference-style loop, written from the description of ``pcsl-epfl/hierarchy-learning``:
``NonOverlappingConv1d`` built with ``unfold`` and a broadcast product that materialises a
``[B, C_out, C_in, P, s]`` temporary, ``nn.Module`` CNN, SGD(momentum 0.9, lr 0.1 H), and a
``DataLoader`` over a ``Subset`` of a ``TensorDataset`` (batch 128, shuffled).  The rate back
end (``rate_models.train.train_rate``) runs the same network (reshape + matmul), the whole
training set as one tensor, and its per-epoch bookkeeping (test error, alignment) included.

    python benchmarks/train_speed.py [--device cpu|cuda] [--threads N]

Prints samples/s and epochs/s of both and their ratio, per setting.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from rate_models.train import train_rate
from spiking_rhm.config import NetConfig, OptimConfig, RHMConfig, RunConfig
from spiking_rhm.rhm import onehot

SETTINGS = [((8, 4, 8, 2, 2), 256, 256, 5, 60), ((16, 4, 16, 2, 3), 256, 2048, 1, 15)]


class NonOverlappingConv1d(nn.Module):
    """Reference-style conv: unfold into patches, broadcast-multiply, sum (large temporaries)."""

    def __init__(self, c_in, c_out, s, bias=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 1, s))
        self.bias = nn.Parameter(torch.randn(1, c_out, 1)) if bias else None
        self.c_in = c_in
        self.s = s

    def forward(self, x):  # x [B, C_in, P]
        x = x[:, None, ...].unfold(-1, self.s, self.s)  # [B, 1, C_in, P/s, s]
        x = (x * self.weight).sum(dim=[-1, -3]) / self.c_in**0.5  # temp [B, C_out, C_in, P/s, s]
        if self.bias is not None:
            x = x + 0.1 * self.bias
        return x


class ReferenceCNN(nn.Module):
    def __init__(self, v, width, s, L, n_out):
        super().__init__()
        self.hier = nn.Sequential(*[nn.Sequential(NonOverlappingConv1d(v if l == 0 else width, width, s), nn.ReLU())
                                    for l in range(L)])
        self.beta = nn.Parameter(torch.randn(width, n_out))
        self.width = width

    def forward(self, x):
        return self.hier(x).mean(-1) @ self.beta / self.width


def reference_loop(rhm_params, width, P, epochs, device):
    v, m, n_c, s, L = rhm_params
    rhm = RHMConfig(*rhm_params).build()
    train, _ = rhm.split(P, 0, seed=0)
    data = TensorDataset(onehot(train.inputs, v), torch.as_tensor(train.labels))
    subset = Subset(data, torch.randperm(P, generator=torch.Generator().manual_seed(0)).tolist())
    loader = DataLoader(subset, batch_size=128, shuffle=True)
    torch.manual_seed(0)
    net = ReferenceCNN(v, width, s, L, n_c).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1 * width, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(0.8 * epochs)))
    crit = nn.CrossEntropyLoss()
    start = time.perf_counter()
    seen = 0
    for _ in range(epochs):
        net.train()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss = crit(net(x), y)
            loss.backward()
            opt.step()
            seen += x.shape[0]
        sched.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - start
    return seen / dt, epochs / dt


def rate_backend(rhm_params, width, P, epochs, device):
    cfg = RunConfig(rhm=RHMConfig(*rhm_params), P=P, P_test=min(1000, RHMConfig(*rhm_params).build().P_max - P),
                    rule="bp", seed=0, device=device, net=NetConfig(width=width),
                    optim=OptimConfig(epochs=epochs, batch_size=128, stop_train_loss=0.0))
    m = train_rate(cfg)
    return m["samples_per_s"], m["epochs_run"] / m["train_time"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device={args.device} torch threads={torch.get_num_threads()} torch {torch.__version__}")
    print(f"{'setting (v,m,nc,s,L)':<22}{'H':>5}{'P':>6} | {'reference samples/s':>20}{'epochs/s':>10} | "
          f"{'rate samples/s':>15}{'epochs/s':>10} | {'ratio':>7}")
    for params, width, P, ref_epochs, our_epochs in SETTINGS:
        ref_sps, ref_eps = reference_loop(params, width, P, ref_epochs, args.device)
        our_sps, our_eps = rate_backend(params, width, P, our_epochs, args.device)
        print(f"{str(params):<22}{width:>5}{P:>6} | {ref_sps:>20.0f}{ref_eps:>10.2f} | {our_sps:>15.0f}"
              f"{our_eps:>10.2f} | {our_sps / ref_sps:>6.1f}x", flush=True)


if __name__ == "__main__":
    main()
