r"""Batch sibling CCA: each layer is fitted, in closed form, to what its input taps share.

A batch probe of the idea behind the registered online rule ``sibling-cca`` (``spiking_rhm.rules``);
this script is not that rule and labels its records ``batch-cca``.

In the hierarchical CNN (filter = stride = s), the s input taps of one patch of layer l are
*siblings*: the level-(l-1) symbols they carry share the parent that layer l should encode. What
two siblings have in common is, by the RHM's construction, only that parent (their sub-trees are
drawn independently given it). So each tap's weights are fitted to the directions of its input
that are most correlated with its siblings' input, i.e. canonical correlation analysis (CCA)
between tap k's input ``x_k`` and the other taps ``x_{-k}`` of the same patch, pooled over
positions and the P training inputs (no labels, no fresh samples)::

    C_kk^{-1/2} C_{k,-k} C_{-k,-k}^{-1/2} = U diag(rho) V^T        (ridge lam on both covariances)
    A_k = C_kk^{-1/2} U_K diag(rho_K^pw)                            (top-K directions, weighted)
    W^l[:, tap k] = M_k A_k^T ,  M_k ~ N(0, 1/K) fixed [H, K]        (random mixing to H units)
    h^l = relu((a^l - mean a^l) / std a^l),  a^l = sum_k W^l[:, tap k] x_k

The layer's pre-activation is then *additive in the taps' parent codes*, which the layer can
express (unlike invariance to the synonyms of its own patch, docs/results_ssl_research.md 2.3), and
the ReLU of the random mixture is a conjunctive code of the s parents from which the next layer's
CCA can read the grandparent. Layer 1 (taps = bottom symbols, nothing to be invariant to) is left
random. The readout is a linear probe (L-BFGS, ``spiking_rhm.metrics.linear_probe``) on the top
layer. Each layer is fitted once from the statistics of its own input: local in space, but a batch
computation, not an online plasticity rule (see the research log for what that means for the goal).

Usage::

    python -m experiments.ssl_research.batch_cca --setting 8 --P 1024,1536 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch

from spiking_rhm.metrics import linear_probe, synonymic_sensitivity
from spiking_rhm.rhm import RHM, onehot

SETTINGS = {"8": (8, 4, 8, 2, 3), "16": (16, 4, 16, 2, 3), "8L2": (8, 4, 8, 2, 2)}
OUT = os.path.join(os.path.dirname(__file__), "results_cca.jsonl")


def _inv_sqrt(C: torch.Tensor) -> torch.Tensor:
    e, U = torch.linalg.eigh(C)
    return U @ torch.diag(e.clamp_min(1e-12) ** -0.5) @ U.T


def fit_tap(x: torch.Tensor, sib: torch.Tensor, K: int, pw: float, lam: float, H: int,
            gen: torch.Generator) -> tuple[torch.Tensor, list[float]]:
    """Weights ``[H, C_in]`` of one tap from its input ``x [n, C_in]`` and its siblings ``sib [n, C']``."""
    A, B = x - x.mean(0), sib - sib.mean(0)
    n = len(A)
    Ca = A.T @ A / n + lam * torch.eye(A.shape[1], dtype=A.dtype)
    Cb = B.T @ B / n + lam * torch.eye(B.shape[1], dtype=B.dtype)
    Ga, Gb = _inv_sqrt(Ca), _inv_sqrt(Cb)
    U, rho, _ = torch.linalg.svd(Ga @ (A.T @ B / n) @ Gb)
    K = min(K, len(rho))
    dirs = (Ga @ U[:, :K]) * rho[:K] ** pw  # [C_in, K]
    mix = torch.randn(H, K, generator=gen, dtype=x.dtype) / math.sqrt(K)
    return mix @ dirs.T, [float(r) for r in rho[:K]]


class SiblingCCANet:
    """Hierarchical CNN whose layers 2..L are fitted by sibling CCA (layer 1 random)."""

    def __init__(self, v: int, s: int, L: int, H: int, K: int, pw: float, lam: float, seed: int,
                 control: bool = False):
        self.v, self.s, self.L, self.H, self.K, self.pw, self.lam = v, s, L, H, K, pw, lam
        self.control = control  # every layer random (same standardisation and probe): the control
        self.gen = torch.Generator().manual_seed(seed)
        self.layers: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.rho: list[list[float]] = []

    def _pre(self, h: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        N, P, C = h.shape
        return h.reshape(N, P // self.s, self.s * C) @ W.T

    def fit(self, x: torch.Tensor) -> "SiblingCCANet":
        """``x``: channel-last one-hot ``[N, d, v]`` of the P training inputs."""
        h = x
        for l in range(self.L):
            N, P, C = h.shape
            if l == 0 or self.control:
                W = torch.randn(self.H, self.s * C, generator=self.gen, dtype=h.dtype)
                self.rho.append([])
            else:
                taps = h.reshape(N * (P // self.s), self.s, C)
                blocks, rhos = [], []
                for k in range(self.s):
                    others = torch.cat([taps[:, j] for j in range(self.s) if j != k], 1)
                    Wk, r = fit_tap(taps[:, k], others, self.K, self.pw, self.lam, self.H, self.gen)
                    blocks.append(Wk)
                    rhos.append(r)
                W = torch.cat(blocks, 1)
                self.rho.append(rhos[0])
            a = self._pre(h, W)
            mu, sd = a.mean((0, 1)), a.std((0, 1)).clamp_min(1e-9)
            self.layers.append((W, mu, sd))
            h = torch.relu((a - mu) / sd)
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        hs, h = [], x
        for W, mu, sd in self.layers:
            h = torch.relu((self._pre(h, W) - mu) / sd)
            hs.append(h)
        return hs


def channel_last(inputs, v: int) -> torch.Tensor:
    return onehot(inputs, v, dtype=torch.float64).transpose(1, 2).contiguous()


def run(setting: str, P: int, seed: int, K: int, pw: float, lam: float, H: int, P_test: int,
        control: bool = False) -> dict:
    v, m, n_c, s, L = SETTINGS[setting]
    rhm = RHM(v, m, n_c, s, L, seed=0)
    train, test = rhm.split(P, P_test, seed=seed)
    t0 = time.time()
    net = SiblingCCANet(v, s, L, H, K, pw, lam, seed, control).fit(channel_last(train.inputs, v))
    h_tr, h_te = net.forward(channel_last(train.inputs, v)), net.forward(channel_last(test.inputs, v))
    probes = [linear_probe(a.flatten(1), train.labels, b.flatten(1), test.labels, n_c) for a, b in zip(h_tr, h_te)]
    sens = synonymic_sensitivity(lambda inp: [h.flatten(1).numpy() for h in net.forward(channel_last(inp, v))],
                                 rhm, test.take(np.arange(min(1000, P_test))), np.random.default_rng(seed + 3))
    return {"setting": [v, m, n_c, s, L], "P": P, "seed": seed, "rhm_seed": 0, "P_test": P_test,
            "rule": "random-features (standardised)" if control else "batch-cca",
            "config": {"K": K, "pw": pw, "lam": lam, "width": H, "layer1": "random", "readout": "linear probe, top layer"},
            "test_error": probes[-1]["test_error"], "train_error": probes[-1]["train_error"],
            "probe_test_error_per_layer": [p["test_error"] for p in probes],
            "S_bottom_per_layer": [row[0] for row in sens["layers"]],
            "canonical_correlations_layer2": net.rho[1][:K], "seconds": time.time() - t0}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="8")
    ap.add_argument("--P", default="1024")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--K", type=int, default=16)
    ap.add_argument("--pw", type=float, default=3.0)
    ap.add_argument("--lam", type=float, default=1e-2)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--P-test", type=int, default=4000)
    ap.add_argument("--control", action="store_true", help="every layer random: the control")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args(argv)
    for P in (int(p) for p in a.P.split(",")):
        for seed in (int(x) for x in a.seeds.split(",")):
            rec = run(a.setting, P, seed, a.K, a.pw, a.lam, a.width, a.P_test, a.control)
            with open(a.out, "a") as f:  # one line per finished run
                f.write(json.dumps(rec) + "\n")
            print(f"{rec['rule']} s{a.setting} P={P} seed={seed} K={a.K} pw={a.pw}: test error {rec['test_error']:.4f} "
                  f"(per layer {[round(e, 3) for e in rec['probe_test_error_per_layer']]}), "
                  f"S_bottom {[round(x, 3) for x in rec['S_bottom_per_layer']]}", flush=True)


if __name__ == "__main__":
    main()
