"""Prototype kept for reproducibility of docs/results_ssl_research.md 2.5 (not package code)."""
"""Concept test: each layer's tap-k weights = ridge regression of a fixed random projection of the sibling
tap's (centered) input, solved exactly layer by layer on the P training inputs."""
import argparse, math
import numpy as np, torch
from spiking_rhm.rhm import RHM, onehot
from spiking_rhm.metrics import synonymic_sensitivity, linear_probe
ap = argparse.ArgumentParser()
ap.add_argument("--setting", default="8"); ap.add_argument("--P", type=int, default=1024)
ap.add_argument("--H", type=int, default=128); ap.add_argument("--lam", type=float, default=1e-2)
ap.add_argument("--seed", type=int, default=0); ap.add_argument("--bias", type=float, default=0.0)
ap.add_argument("--norm", type=int, default=1); ap.add_argument("--mode", default="reg"); ap.add_argument("--K", type=int, default=16); ap.add_argument("--pw", type=float, default=1.0); ap.add_argument("--layer1", default="ridge")
a = ap.parse_args()
v, m, nc, s, L = {"8": (8, 4, 8, 2, 3), "16": (16, 4, 16, 2, 3), "s2": (8, 4, 8, 2, 2)}[a.setting]
rhm = RHM(v, m, nc, s, L, seed=0)
tr, te = rhm.split(a.P, 4000, seed=a.seed)
X, Xt = onehot(tr.inputs, v).double().transpose(1, 2), onehot(te.inputs, v).double().transpose(1, 2)
g = torch.Generator().manual_seed(a.seed)
C = [v] + [a.H] * L
Ws, mus, sds = [], [], []
h = X
for l in range(L):
    N, P, Cin = h.shape
    hp = h.reshape(N, P // s, s, Cin)
    Wk = []
    for k in range(s):
        inp = hp[:, :, k].reshape(-1, Cin); sib = hp[:, :, (k + 1) % s].reshape(-1, Cin)
        R = torch.randn(a.H, Cin, generator=g, dtype=torch.double) / math.sqrt(Cin)
        if l == 0 and a.layer1 == "random":
            Wk.append(torch.randn(a.H, Cin, generator=g, dtype=torch.double)); continue
        mu = inp.mean(0)
        A = inp - mu
        Bc = sib - sib.mean(0)
        G = A.T @ A / len(A) + a.lam * torch.eye(Cin, dtype=torch.double)
        if a.mode == "reg":
            tgt = Bc @ R.T
            Wk.append(torch.linalg.solve(G, A.T @ tgt / len(A)).T)   # [H, Cin]
        else:  # cca: top-K canonical directions of tap k vs its sibling, weighted by rho^pw, random mixing to H
            GB = Bc.T @ Bc / len(Bc) + a.lam * torch.eye(Cin, dtype=torch.double)
            ea, Ua = torch.linalg.eigh(G); Ga = Ua @ torch.diag(ea.clamp_min(1e-12) ** -0.5) @ Ua.T
            eb, Ub = torch.linalg.eigh(GB); Gb = Ub @ torch.diag(eb.clamp_min(1e-12) ** -0.5) @ Ub.T
            Mx = Ga @ (A.T @ Bc / len(A)) @ Gb
            U, S, Vh = torch.linalg.svd(Mx)
            dirs = (Ga @ U[:, :a.K]) * S[:a.K] ** a.pw          # [Cin, K]
            Mix = torch.randn(a.H, a.K, generator=g, dtype=torch.double) / math.sqrt(a.K)
            if l == 1 and k == 0: print("top canonical correlations", [round(float(x), 2) for x in S[:12]])
            Wk.append((dirs @ Mix.T).T)
    W = torch.cat(Wk, 1)
    if l >= 1:
        lev = rhm.tree(tr)
        a0 = torch.as_tensor(lev[L - l][:, 0::s].reshape(-1))       # parent of tap-0 inputs
        tup = torch.as_tensor(lev[L - l + 1].reshape(N, -1, s)[:, ::s].reshape(N * (P // s), -1) @ (v ** torch.arange(s)).numpy())
        z0 = hp[:, :, 0].reshape(-1, Cin) @ Wk[0].T
        def r2(groups):
            tot = ((z0 - z0.mean(0)) ** 2).sum()
            fit = torch.zeros_like(z0)
            for gv in torch.unique(groups):
                sel = groups == gv; fit[sel] = z0[sel].mean(0)
            return float(((fit - z0.mean(0)) ** 2).sum() / tot)
        print(f"layer {l+1} tap-0 branch: R2 by parent {r2(a0):.3f}, by input tuple {r2(torch.as_tensor(tup)):.3f}")
    z = hp.reshape(N, P // s, s * Cin) @ W.T
    mu, sd = z.mean((0, 1)), z.std((0, 1)) + 1e-9
    if not a.norm: mu, sd = torch.zeros_like(mu), torch.ones_like(sd)
    Ws.append(W); mus.append(mu); sds.append(sd)
    h = torch.relu((z - mu) / sd + a.bias)

def fwd(x):
    hs = []; h = x
    for W, mu, sd in zip(Ws, mus, sds):
        N, P, Cin = h.shape
        h = torch.relu((h.reshape(N, P // s, s * Cin) @ W.T - mu) / sd + a.bias); hs.append(h)
    return hs
sens = synonymic_sensitivity(lambda inp: [h.reshape(len(inp), -1).numpy() for h in fwd(onehot(inp, v).double().transpose(1, 2))],
                             rhm, te.take(np.arange(1000)), np.random.default_rng(3))
htr, hte = fwd(X), fwd(Xt)
pr = [linear_probe(htr[l].flatten(1), tr.labels, hte[l].flatten(1), te.labels, nc)["test_error"] for l in range(L)]
cat = lambda hs: torch.cat([x.flatten(1) for x in hs], 1)
pc = linear_probe(cat(htr[1:]), tr.labels, cat(hte[1:]), te.labels, nc)["test_error"]
print(f"P {a.P} bias {a.bias} layer1 {a.layer1} probe[2:] {pc:.3f} lam {a.lam} S_bot {[round(x[0],3) for x in sens['layers']]} S_lvl2 {[round(x[1],3) for x in sens['layers']]} probe per layer {[round(x,3) for x in pr]}")
