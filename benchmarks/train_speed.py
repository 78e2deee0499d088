"""Training speed of the rate back end: fraction of the CPU's matmul limit, stacked runs, a reference loop (not a test).

``flop_fraction`` = achieved GFLOP/s / single-thread matmul peak (256 x 256 float32, measured in the same
run), for bp, dfa and clapp on case b ((16,4,16,2,3), H = 256, P = 2048, batch 128) and case a ((8,4,8,2,2),
H = 256, P = 256), alone and stacked; FLOPs per sample from torch's flop counter on one step (matmuls only),
time = the training loop's train_time (steps and per-epoch test errors).  Then the stacked mode's samples/s per
run vs the runs alone for 8 seeds of case a (A/B interleaved, best of ``--repeats``).  ``--reference`` adds:

Reference-style loop, written from the description of ``pcsl-epfl/hierarchy-learning``:
``NonOverlappingConv1d`` built with ``unfold`` and a broadcast product that materialises a
``[B, C_out, C_in, P, s]`` temporary, ``nn.Module`` CNN, SGD(momentum 0.9, lr 0.1 H), and a
``DataLoader`` over a ``Subset`` of a ``TensorDataset`` (batch 128, shuffled).  The rate back
end (``rate_models.train.train_rate``) runs the same network (reshape + matmul), the whole
training set as one tensor, and its per-epoch bookkeeping (test error, alignment) included.

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py [--repeats 3] [--seeds 8] [--reference] [--device cpu|cuda]

The reference comparison prints samples/s and epochs/s of both and their ratio, per setting.
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

from timing import best_of

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


# ----------------------------------------------------------------------------- fraction of the limit
CASE_A = ((8, 4, 8, 2, 2), 256, 256)  # (v, m, n_c, s, L), width, P
CASE_B = ((16, 4, 16, 2, 3), 256, 2048)
FLOP_RULES = ("bp", "dfa", "clapp")


def matmul_peak(n: int = 256, repeats: int = 7, inner: int = 200) -> float:
    """GFLOP/s of an n x n float32 matmul (best of ``repeats`` blocks of ``inner`` products)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    best, _ = best_of(lambda: [torch.mm(a, b, out=out) for _ in range(inner)], repeats)
    return 2 * n**3 * inner / best / 1e9


def shape_rate(cfg: RunConfig, repeats: int = 7, inner: int = 50) -> float:
    """GFLOP/s of the network's own forward matmuls at batch ``cfg.optim.batch_size``."""
    from rate_models.networks import spec_from_config

    spec = spec_from_config(cfg)
    B = cfg.optim.batch_size
    mats = [(torch.randn(B * P, K), torch.randn(K, spec.width)) for P, K in zip(spec.positions(), spec.fan_ins())]
    flops = sum(2 * x.shape[0] * x.shape[1] * w.shape[1] for x, w in mats) * inner
    best, _ = best_of(lambda: [x @ w for _ in range(inner) for x, w in mats], repeats)
    return flops / best / 1e9


def case_config(case, rule: str, seed: int = 0, epochs: int = 3, batch: int = 128) -> RunConfig:
    params, width, P = case
    rhm = RHMConfig(*params)
    return RunConfig(rhm=rhm, P=P, P_test=min(1000, rhm.build().P_max - P), rule=rule, seed=seed,
                     net=NetConfig(width=width), optim=OptimConfig(epochs=epochs, batch_size=batch, stop_train_loss=0.0))


def flops_per_sample(cfg: RunConfig) -> float:
    """FLOPs of one training step (torch's flop counter: matmuls) per sample, the optimiser excluded."""
    from torch.utils.flop_counter import FlopCounterMode

    from rate_models.train import RateBackend

    backend = RateBackend(cfg)
    idx = torch.arange(cfg.optim.batch_size)
    backend.step(idx, 1.0, False)  # warm-up (lazy state)
    with FlopCounterMode(display=False) as counter:
        backend.step(idx, 1.0, False)
    return counter.get_total_flops() / cfg.optim.batch_size


def train_alone(cfg: RunConfig) -> float:
    """samples/s of the training loop (train_time: steps and the per-epoch test error, not the final scores)."""
    return train_rate(cfg)["samples_per_s"]


def train_stacked(cfgs) -> float:
    """Samples/s of all runs of the stack together over the stack's training time."""
    from rate_models.stacked import train_stack

    metrics = train_stack(cfgs)
    return sum(m["samples_per_s"] * m["train_time"] for m in metrics) / max(m["train_time"] for m in metrics)


def limit_report(repeats: int, seeds: int, epochs_b: int, epochs_a: int) -> None:
    torch.set_num_threads(1)
    peak = max(matmul_peak() for _ in range(2))
    print(f"single-thread matmul peak (256x256 float32): {peak:.1f} GFLOP/s")
    for name, case, epochs in (("a", CASE_A, epochs_a), ("b", CASE_B, epochs_b)):
        base = case_config(case, "bp", epochs=epochs)
        rate = shape_rate(base)
        print(f"case {name} {case[0]} H={case[1]} P={case[2]} batch 128: network-shape matmuls {rate:.1f} GFLOP/s "
              f"({rate / peak:.2f} of peak)")
        for rule in FLOP_RULES:
            cfg = case_config(case, rule, epochs=epochs)
            fps = flops_per_sample(cfg)
            sps = max(train_alone(cfg) for _ in range(repeats))
            cfgs = [case_config(case, rule, seed=s, epochs=epochs) for s in range(seeds)]
            stacked = max(train_stacked(cfgs) for _ in range(repeats))
            for mode, rate_sps in (("alone", sps), (f"stacked x{seeds}", stacked)):
                gflops = fps * rate_sps / 1e9
                print(f"  {rule:<6} {mode:<11} {rate_sps:>9.0f} samples/s {gflops:>6.1f} GFLOP/s "
                      f"flop_fraction={gflops / peak:.3f} (of network-shape rate {gflops / rate:.2f})", flush=True)


def stack_report(repeats: int, seeds: int, epochs: int, rules=("bp", "dfa", "clapp")) -> None:
    """Stacked vs unstacked samples/s per run, ``seeds`` seeds of case a (alone and stacked interleaved)."""
    torch.set_num_threads(1)
    for rule in rules:
        cfgs = [case_config(CASE_A, rule, seed=s, epochs=epochs) for s in range(seeds)]
        alone, stacked = [], []
        for _ in range(repeats):  # interleaved A/B, best of each
            alone.append(sum(cfg.P * epochs for cfg in cfgs) / sum(cfg.P * epochs / train_alone(cfg) for cfg in cfgs))
            stacked.append(train_stacked(cfgs))
        a, s = max(alone), max(stacked)
        print(f"case a, {seeds} seeds, {rule:<6}: alone {a:>8.0f} samples/s per run, stacked {s:>8.0f} samples/s "
              f"over {seeds} runs = {s:.0f} per run-equivalent: stacked/alone = {s / a:.2f}x", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reference", action="store_true", help="also the reference-style loop comparison")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many (interleaved) [3]")
    ap.add_argument("--seeds", type=int, default=8, help="runs per stack [8]")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device={args.device} torch threads={torch.get_num_threads()} torch {torch.__version__}")
    if args.reference:
        reference_report(args.device)
    if args.device == "cpu":
        limit_report(args.repeats, args.seeds, epochs_b=2, epochs_a=10)
        stack_report(args.repeats, args.seeds, epochs=10)


def reference_report(device: str) -> None:
    print(f"{'setting (v,m,nc,s,L)':<22}{'H':>5}{'P':>6} | {'reference samples/s':>20}{'epochs/s':>10} | "
          f"{'rate samples/s':>15}{'epochs/s':>10} | {'ratio':>7}")
    for params, width, P, ref_epochs, our_epochs in SETTINGS:
        ref_sps, ref_eps = reference_loop(params, width, P, ref_epochs, device)
        our_sps, our_eps = rate_backend(params, width, P, our_epochs, device)
        print(f"{str(params):<22}{width:>5}{P:>6} | {ref_sps:>20.0f}{ref_eps:>10.2f} | {our_sps:>15.0f}"
              f"{our_eps:>10.2f} | {our_sps / ref_sps:>6.1f}x", flush=True)


if __name__ == "__main__":
    main()
