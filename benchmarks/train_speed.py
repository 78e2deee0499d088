"""Training speed of the rate back end: fraction of the CPU's matmul limit, stacked runs, a reference loop (not a test).

``flop_fraction`` = achieved GFLOP/s / single-thread matmul peak (256 x 256 float32, measured in the same run),
for bp, dfa and clapp on case b ((16,4,16,2,3), H = 256, P = 2048, batch 128, 40 epochs; alone and a stack of 4
seeds) and case a ((8,4,8,2,2), H = 256, P = 256, 60 epochs; alone and a stack of 8 seeds).  Achieved GFLOP/s =
the training steps' FLOPs (torch's flop counter on one step, matmuls only, x the samples trained on) / the
training loop's time (``train_time``: steps, optimiser, the per-epoch test errors); "with the test evaluations"
also counts the test errors' matmuls; "without its test evaluations" subtracts from a lone run's loop time its
number of test evaluations x one evaluation's time (timed alone).  The network-shape rate is the matmuls of one bp step at the network's
shapes, in sequence.  Case a also prints 8 seeds' throughput one after another vs stacked (interleaved, the
fastest of ``--repeats``) and, for bp, the bound on that ratio: the stack's step matmuls alone, as 8-run ``bmm``
at the network's shapes.  ``--clock cpu`` (default) times with this process's CPU time (one thread: the time
the core ran it, usable on a shared machine), ``--clock wall`` with wall time.  docs/performance.md has results.

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py [--clock cpu|wall] [--repeats 2] [--rules bp,dfa,clapp]
        [--reference] [--device cpu|cuda] [--step-scaling]

``--step-scaling`` prints only the CPU time per run of one stacked bp step of case a for stacks of 1, 2, 4 and
8 runs.

``--reference`` adds a reference-style loop, written from the description of ``pcsl-epfl/hierarchy-learning``:
``NonOverlappingConv1d`` built with ``unfold`` and a broadcast product that materialises a
``[B, C_out, C_in, P, s]`` temporary, ``nn.Module`` CNN, SGD(momentum 0.9, lr 0.1 H), and a
``DataLoader`` over a ``Subset`` of a ``TensorDataset`` (batch 128, shuffled).  The rate back
end (``rate_models.train.train_rate``) runs the same network (reshape + matmul), the whole
training set as one tensor, and its per-epoch bookkeeping (test error, alignment) included.
It prints samples/s and epochs/s of both and their ratio, per setting.
"""

from __future__ import annotations

import argparse
import contextlib
import time
import types

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


# ----------------------------------------------------------------------------- fraction of the limit
CASE_A = ((8, 4, 8, 2, 2), 256, 256)  # (v, m, n_c, s, L), width, P
CASE_B = ((16, 4, 16, 2, 3), 256, 2048)
FLOP_RULES = ("bp", "dfa", "clapp")
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


@contextlib.contextmanager
def loop_clock(name: str):
    """Time the training loops (``EpochLog.train_time``) with clock ``name``: ``cpu`` = this process's CPU
    time (one thread: the time the core ran it, not the time other processes held it), ``wall`` = wall time."""
    import spiking_rhm.epochs as epochs

    saved = epochs.time
    epochs.time = types.SimpleNamespace(perf_counter=CLOCKS[name])
    try:
        yield CLOCKS[name]
    finally:
        epochs.time = saved


def best_time(fn, repeats: int, clock) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def matmul_peak(clock, n: int = 256, repeats: int = 30, inner: int = 50) -> float:
    """GFLOP/s of an n x n float32 matmul (best of ``repeats`` blocks of ``inner`` products)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    best = best_time(lambda: [torch.mm(a, b, out=out) for _ in range(inner)], repeats, clock)
    return 2 * n**3 * inner / best / 1e9


def shape_rate(cfg: RunConfig, clock, repeats: int = 30, inner: int = 10, runs: int = 0) -> float:
    """GFLOP/s of the matmuls of one bp step at the network's shapes (batch ``cfg.optim.batch_size``): per
    layer the forward ``x W^T``, the weight gradient ``g^T x`` and (above layer 1) the input gradient ``g W``;
    ``runs > 0``: the same as batched matmuls of that many runs (``bmm``, what a stack's step does)."""
    from rate_models.networks import spec_from_config

    spec = spec_from_config(cfg)
    B, H = cfg.optim.batch_size, spec.width
    lead = (runs,) if runs else ()
    t = (lambda m: m.transpose(-1, -2))
    mats = []
    for l, (P, K) in enumerate(zip(spec.positions[1:], spec.fan_ins())):
        M = B * P
        mats += [(torch.randn(*lead, M, K), t(torch.randn(*lead, H, K))),
                 (t(torch.randn(*lead, M, H)), torch.randn(*lead, M, K))]
        if l > 0:
            mats.append((torch.randn(*lead, M, H), torch.randn(*lead, H, K)))
    flops = sum(2 * a.shape[-2] * a.shape[-1] * b.shape[-1] for a, b in mats) * inner * max(1, runs)
    best = best_time(lambda: [a @ b for _ in range(inner) for a, b in mats], repeats, clock)
    return flops / best / 1e9


def case_config(case, rule: str, seed: int = 0, epochs: int = 3, batch: int = 128) -> RunConfig:
    params, width, P = case
    rhm = RHMConfig(*params)
    return RunConfig(rhm=rhm, P=P, P_test=min(1000, rhm.build().P_max - P), rule=rule, seed=seed,
                     net=NetConfig(width=width), optim=OptimConfig(epochs=epochs, batch_size=batch, stop_train_loss=0.0))


def loop_flops(cfg: RunConfig) -> tuple[float, float]:
    """(FLOPs of one training step per sample, FLOPs of the test error per test point): torch's flop counter
    (matmuls) on one step and one test evaluation; the optimiser's element-wise work is not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    from rate_models.train import RateBackend

    backend = RateBackend(cfg)
    idx = torch.arange(cfg.optim.batch_size)
    backend.step(idx, 1.0, False)  # warm-up (lazy state)
    with FlopCounterMode(display=False) as counter:
        backend.step(idx, 1.0, False)
    step = counter.get_total_flops() / cfg.optim.batch_size
    with FlopCounterMode(display=False) as counter:
        backend.test_error()
    return step, counter.get_total_flops() / backend.Y_test.shape[0]


def work(metrics: list[dict], per_sample: float, per_test: float, P_test: int) -> tuple[float, float, float, int]:
    """(training-step FLOPs, test-evaluation FLOPs, loop time, samples) of runs trained together: the loop
    time is the longest run's ``train_time`` (alone: the run's own)."""
    samples = sum(round(m["samples_per_s"] * m["train_time"]) for m in metrics)
    evals = sum(len(m["curve"]["test_epoch"]) for m in metrics)
    return per_sample * samples, per_test * P_test * evals, max(m["train_time"] for m in metrics), samples


def measure(cfgs: list[RunConfig], repeats: int) -> list[dict]:
    """The metrics of the fastest of ``repeats`` trainings of ``cfgs``: alone (one config) or as one stack."""
    from rate_models.stacked import train_stack

    best = None
    for _ in range(repeats):
        metrics = [train_rate(cfgs[0])] if len(cfgs) == 1 else train_stack(cfgs)
        if best is None or max(m["train_time"] for m in metrics) < max(m["train_time"] for m in best):
            best = metrics
    return best


def eval_seconds(cfg: RunConfig, clock, repeats: int = 5) -> float:
    """Time of one test evaluation of ``cfg``'s lone run (the best of ``repeats``)."""
    from rate_models.train import RateBackend

    backend = RateBackend(cfg)
    return best_time(backend.test_error, repeats, clock)


def steps_line(metrics: dict, flops, P_test: int, peak: float, one_eval: float) -> str:
    """A lone run's steps without its test evaluations: loop time minus (evaluations x one evaluation's time)."""
    step, _ev, t, _samples = work([metrics], *flops, P_test)
    n = len(metrics["curve"]["test_epoch"])
    t_steps = t - n * one_eval
    return (f"    without its {n} test evaluations ({one_eval * 1e3:.1f} ms each, timed alone; {n * one_eval / t:.0%} "
            f"of the loop): steps flop_fraction={step / t_steps / 1e9 / peak:.3f}")


def limit_line(label: str, metrics, flops, P_test: int, peak: float, rate: float) -> str:
    step, ev, t, samples = work(metrics, *flops, P_test)
    gflops = step / t / 1e9
    return (f"  {label:<20} {samples / t:>8.0f} samples/s {gflops:>6.1f} GFLOP/s flop_fraction={gflops / peak:.3f} "
            f"(with the test evaluations {(step + ev) / t / 1e9 / peak:.3f}; of the network-shape rate "
            f"{gflops / rate:.2f})")


def limit_report(clock_name: str, repeats: int, stack_b: int, seeds_a: int, epochs_b: int, epochs_a: int,
                 rules=FLOP_RULES) -> None:
    """Case b: achieved GFLOP/s / peak, alone and stacked; case a: the same and stacked vs alone throughput."""
    torch.set_num_threads(1)
    with loop_clock(clock_name) as clock:
        peak = matmul_peak(clock)
        print(f"clock={clock_name}; single-thread matmul peak (256x256 float32): {peak:.1f} GFLOP/s", flush=True)
        for name, case, epochs, n_stack in (("b", CASE_B, epochs_b, stack_b), ("a", CASE_A, epochs_a, seeds_a)):
            base = case_config(case, "bp", epochs=epochs)
            rate = shape_rate(base, clock)
            P_test = base.P_test
            print(f"case {name} {case[0]} H={case[1]} P={case[2]} P_test={P_test} batch 128, {epochs} epochs: "
                  f"network-shape matmuls {rate:.1f} GFLOP/s ({rate / peak:.2f} of peak)", flush=True)
            if name == "a":
                stacked_rate = shape_rate(base, clock, runs=n_stack)
                print(f"  the same as x{n_stack} batched matmuls: {stacked_rate:.1f} GFLOP/s "
                      f"({stacked_rate / peak:.2f} of peak)", flush=True)
            for rule in rules:
                cfgs = [case_config(case, rule, seed=s, epochs=epochs) for s in range(n_stack)]
                flops = loop_flops(cfgs[0])
                one_eval = eval_seconds(cfgs[0], clock)
                if name == "b":
                    alone = measure(cfgs[:1], repeats)
                    print(limit_line(f"{rule} alone", alone, flops, P_test, peak, rate), flush=True)
                    print(steps_line(alone[0], flops, P_test, peak, one_eval), flush=True)
                    print(limit_line(f"{rule} stacked x{n_stack}", measure(cfgs, 1), flops, P_test, peak, rate),
                          flush=True)
                    continue
                # case a: every seed alone, one after another, vs the stack (interleaved, the fastest of each)
                alone, stacked = [[] for _ in cfgs], []
                for _ in range(repeats):
                    for i, cfg in enumerate(cfgs):
                        alone[i].append(train_rate(cfg))
                    stacked.append(measure(cfgs, 1))
                alone = [min(runs, key=lambda m: m["train_time"]) for runs in alone]
                stacked = min(stacked, key=lambda ms: max(m["train_time"] for m in ms))
                print(limit_line(f"{rule} alone", alone[:1], flops, P_test, peak, rate), flush=True)
                print(steps_line(alone[0], flops, P_test, peak, one_eval), flush=True)
                print(limit_line(f"{rule} stacked x{n_stack}", stacked, flops, P_test, peak, rate), flush=True)
                n_alone, t_alone = sum(work([m], *flops, P_test)[3] for m in alone), sum(m["train_time"] for m in alone)
                _, _, t_stack, n_stack_samples = work(stacked, *flops, P_test)
                print(f"  {rule} x{n_stack} seeds: one after another {n_alone / t_alone:.0f} samples/s, stacked "
                      f"{n_stack_samples / t_stack:.0f} samples/s: stacked/alone = "
                      f"{(n_stack_samples / t_stack) / (n_alone / t_alone):.2f}x", flush=True)
                if rule == "bp":  # a stack that did nothing but its step's matmuls, at the batched shapes' rate
                    bound = stacked_rate * 1e9 / flops[0]
                    print(f"  bound: the stack's step matmuls alone ({stacked_rate:.1f} GFLOP/s as x{n_stack} bmm) "
                          f"would train {bound:.0f} samples/s = {bound / (n_alone / t_alone):.2f}x the runs one "
                          f"after another", flush=True)


def step_scaling(clock_name: str, sizes=(1, 2, 4, 8), steps: int = 50, repeats: int = 3) -> None:
    """Case a: CPU time of one stacked bp step (batched_gradients + momentum SGD) per run, for stacks of
    ``sizes`` runs (the best of ``repeats`` blocks of ``steps`` steps): what stacking saves per step."""
    from rate_models.stacked import _sgd, _Stack
    from rate_models.train import RateBackend

    torch.set_num_threads(1)
    clock = CLOCKS[clock_name]
    for R in sizes:
        stack = _Stack([RateBackend(case_config(CASE_A, "bp", seed=s)) for s in range(R)])
        gen = torch.Generator().manual_seed(0)
        idx = torch.stack([torch.randperm(stack.X.shape[1], generator=gen)[:128] for _ in range(R)])
        rows = torch.arange(R)[:, None]

        def step():
            grads, _loss, _wrong = stack.stacked_gradients(stack.trainables(), stack.X[rows, idx], stack.Y[rows, idx])
            _sgd(stack, grads, 1e-3, 0.9, 0.0)

        for _ in range(10):
            step()
        t = best_time(lambda: [step() for _ in range(steps)], repeats, clock) / steps
        print(f"  case a stacked bp step, {R} run(s): {t * 1e3:.2f} ms = {t * 1e3 / R:.2f} ms per run", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reference", action="store_true", help="also the reference-style loop comparison")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="time with process CPU time or wall "
                    "time [cpu]")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many (interleaved) [2]")
    ap.add_argument("--seeds", type=int, default=8, help="runs per stack, case a [8]")
    ap.add_argument("--stack-b", type=int, default=4, help="runs per stack, case b [4]")
    ap.add_argument("--epochs-a", type=int, default=60, help="[60]")
    ap.add_argument("--epochs-b", type=int, default=40, help="[40]")
    ap.add_argument("--rules", default=",".join(FLOP_RULES), help=f"[{','.join(FLOP_RULES)}]")
    ap.add_argument("--step-scaling", action="store_true", help="only the per-run time of a stacked step of case a "
                    "for stacks of 1, 2, 4, 8 runs")
    args = ap.parse_args()
    if args.step_scaling:
        return step_scaling(args.clock)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device={args.device} torch threads={torch.get_num_threads()} torch {torch.__version__}")
    if args.reference:
        reference_report(args.device)
    if args.device == "cpu":
        limit_report(args.clock, args.repeats, args.stack_b, args.seeds, args.epochs_b, args.epochs_a,
                     tuple(args.rules.split(",")))


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
