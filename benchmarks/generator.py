"""Throughput of the RHM generator.

1. Building P = 100 000 train + 20 000 test one-hot points of (v, m, n_c, s, L) = (16, 4, 16, 2, 3)
   (``split`` + ``onehot``).
2. Streaming P = 10^7 training points of a large setting (default (32, 8, 32, 2, 4), P_max = 2^50),
   as int inputs and as one-hot tensors.

Usage: ``python benchmarks/generator.py [--stream-P 10000000] [--batch 65536] [--profile]``.
Prints samples/s; ``--profile`` adds a cProfile summary of the streaming loop.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import torch

from spiking_rhm.rhm import RHM, onehot


def bench_split(v=16, m=4, n_c=16, s=2, L=3, P=100_000, P_test=20_000) -> None:
    rhm = RHM(v, m, n_c, s, L, seed=0)
    t0 = time.perf_counter()
    train, test = rhm.split(P, P_test, seed=0)
    t1 = time.perf_counter()
    x_train, x_test = onehot(train.inputs, v), onehot(test.inputs, v)
    t2 = time.perf_counter()
    n = P + P_test
    print(f"split+onehot {(v, m, n_c, s, L)}: {n} points in {t2 - t0:.3f} s = {n / (t2 - t0):,.0f} samples/s "
          f"(split {n / (t1 - t0):,.0f}/s, onehot {n / (t2 - t1):,.0f}/s); shapes {tuple(x_train.shape)}, "
          f"{tuple(x_test.shape)}")


def bench_stream(params=(32, 8, 32, 2, 4), P=10_000_000, batch=65_536, as_onehot=False) -> float:
    rhm = RHM(*params, seed=0)
    t0 = time.perf_counter()
    n = 0
    for sample in rhm.stream(P, batch, seed=0, P_test=20_000):
        if as_onehot:
            x = onehot(sample.inputs, rhm.v)
        n += sample.size
    dt = time.perf_counter() - t0
    kind = "one-hot" if as_onehot else "int"
    print(f"stream {kind:7s} {params} (P_max = {rhm.P_max:.3g}): {n:,} points in {dt:.2f} s = {n / dt:,.0f} samples/s "
          f"(batch {batch})")
    return n / dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream-P", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=65_536)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    bench_split()
    bench_stream(P=args.stream_P, batch=args.batch)
    bench_stream(P=args.stream_P, batch=args.batch, as_onehot=True)
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(bench_stream, P=min(args.stream_P, 2_000_000), batch=args.batch)
        pstats.Stats(prof).sort_stats("tottime").print_stats(8)


if __name__ == "__main__":
    main()
