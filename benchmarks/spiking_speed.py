"""Speed of spiking (Norse back end) training against the rate back end, side by side on CPU.

Measures, on the same RHM batches and network (default: v=8, m=4, n_c=8, s=2, L=2, CNN width 64,
batch 64, T=20, rule dfa):

* samples/s of one spiking training epoch (present T steps, eligibility online, L x e update);
* the time of one rate epoch (``rate_models``: forward + local-loss backward + SGD step);
* ``ratio = spiking epoch time / (T x rate epoch time)`` (aim: <= 2).

``--plasticity online [--update-every k]`` times the per-step form (weights change inside the window);
``--rule eprop`` the e-prop learner (a learning signal every step).

Both epochs are timed with the same clock: the process's CPU time (``--clock cpu``, the default on
CPU: on a shared machine it does not count the time other processes hold the core) or wall time
(``--clock wall``; always for ``--device cuda``).  The spiking and rate epochs are repeated alternately
(``--repeats``), so load changes hit both; ``ratio`` uses the best (shortest) of each, and the medians
are printed beside it.

Prints one line per measurement and ``ratio=<number>`` last.  ``--device cuda`` times the
spiking epoch on a GPU (the ratio is then still against the rate epoch on the same device).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def _cfg(args, backend: str):
    from spiking_rhm.config import RunConfig

    return RunConfig.from_dict({
        "rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "P": args.P, "P_test": 0, "rule": args.rule,
        "backend": backend, "device": args.device, "net": {"width": args.width},
        "optim": {"epochs": 1, "batch_size": args.batch, "schedule": "constant"},
        "spiking": {"T": args.T, "eligibility": args.eligibility, "plasticity": args.plasticity,
                    "update_every": args.update_every}})


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def _clock(args):
    """The timer of ``args.clock`` (wall time on a GPU, where the CPU clock misses the device's work)."""
    return CLOCKS["wall" if args.device.startswith("cuda") else getattr(args, "clock", "wall")]


def spiking_epoch(args) -> float:
    """Seconds for one epoch of spiking training (encoding included, evaluation excluded)."""
    from spiking_rhm.backends.norse.train import NorseSetup

    cfg = _cfg(args, "norse")
    setup = NorseSetup(cfg)
    train, _ = setup.rhm.split(args.P, 0, seed=0)
    opt = torch.optim.SGD(setup.weights.parameters(), lr=1e-3, momentum=0.9)
    batches = [train.take(np.arange(i, min(args.P, i + args.batch))) for i in range(0, args.P, args.batch)]
    setup.learner.step(setup.weights, setup.present(batches[0]), 1e-3)  # warm-up
    _sync(args.device)
    clock = _clock(args)
    start = clock()
    for sample in batches:
        res = setup.learner.step(setup.weights, setup.present(sample), 1e-3)
        for p, g in zip(setup.weights.parameters(), [*res.grads, res.grad_readout]):
            p.grad = g
        opt.step()
    _sync(args.device)
    return clock() - start


def rate_epoch(args) -> float:
    """Seconds for one epoch of the rate back end's inner loop (same batches, network and rule)."""
    import torch.nn.functional as F

    from rate_models.networks import forward, init_params, spec_from_config
    from spiking_rhm.rhm import onehot
    from spiking_rhm.rules.base import LearningContext, get_rule

    cfg = _cfg(args, "rate")
    rhm = cfg.rhm.build()
    spec = spec_from_config(cfg)
    params = init_params(spec, torch.Generator().manual_seed(0), device=args.device)
    for t in (*params.weights, params.readout):
        t.requires_grad_(True)
    rule = get_rule(args.rule)
    state = rule.init_state(spec.layer_shapes(), spec.n_out, torch.Generator().manual_seed(1), device=args.device)
    opt = torch.optim.SGD([*params.weights, params.readout], lr=1e-3, momentum=0.9)
    train, _ = rhm.split(args.P, 0, seed=0)
    X = onehot(train.inputs, rhm.v, device=args.device)
    Y = torch.as_tensor(train.labels, device=args.device)

    def step(i):
        x, y = X[i:i + args.batch], Y[i:i + args.batch]
        out, act = forward(params, x, cut=True)
        loss = F.cross_entropy(out, y)
        ctx = LearningContext(layers=act.post, pre_activations=act.pre, output=out.detach(),
                              target=F.one_hot(y, spec.n_out).float())
        total = loss + sum(rule.local_losses(ctx, state))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    step(0)  # warm-up
    _sync(args.device)
    clock = _clock(args)
    start = clock()
    for i in range(0, args.P, args.batch):
        step(i)
    _sync(args.device)
    return clock() - start


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rule", default="dfa")
    parser.add_argument("--T", type=int, default=20)
    parser.add_argument("--P", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--eligibility", default="factored", choices=["factored", "synapse"])
    parser.add_argument("--plasticity", default="window", choices=["window", "online"],
                        help="online: weights change every --update-every steps inside the window")
    parser.add_argument("--update-every", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock", default="cpu", choices=sorted(CLOCKS),
                        help="cpu: process CPU time (default; wall for --device cuda); wall: wall-clock time")
    args = parser.parse_args(argv)
    clock = "wall" if args.device.startswith("cuda") else args.clock
    torch.set_num_threads(args.threads)
    spk_runs, rate_runs = [], []
    for _ in range(args.repeats):  # alternately, so that a change of load hits both
        spk_runs.append(spiking_epoch(args))
        rate_runs.append(rate_epoch(args))
    spk, rate = min(spk_runs), min(rate_runs)
    spk_med, rate_med = statistics.median(spk_runs), statistics.median(rate_runs)
    print(f"config: rule={args.rule} T={args.T} P={args.P} batch={args.batch} width={args.width} "
          f"eligibility={args.eligibility} plasticity={args.plasticity} update_every={args.update_every} "
          f"device={args.device} threads={args.threads} clock={clock} (best of {args.repeats}, alternating)")
    print(f"spiking epoch: {spk:.3f} s  ({args.P / spk:.0f} samples/s; median {spk_med:.3f} s)")
    print(f"rate epoch:    {rate:.4f} s  ({args.P / rate:.0f} samples/s; median {rate_med:.4f} s)")
    print(f"median ratio=spiking/(T*rate)={spk_med / (args.T * rate_med):.3f}")
    ratio = spk / (args.T * rate)
    print(f"ratio=spiking/(T*rate)={ratio:.3f}")
    print(f"ratio={ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
