"""Prototype kept for reproducibility of docs/results_ssl_research.md 2.5 (not package code)."""
"""Prototype: within-patch (dendritic) sibling InfoNCE. Layer l's weight split by tap k:
z_k = W[:, k-block] h_{l-1}[p s + k] / sqrt(fan_in); contrast z_0 vs z_1 of the same patch
against z_1 of other patches in the batch. Hidden layers trained simultaneously, inputs detached."""
import argparse, math, time
import numpy as np, torch, torch.nn.functional as F
from spiking_rhm.rhm import RHM, onehot
from spiking_rhm.metrics import synonymic_sensitivity, linear_probe

ap = argparse.ArgumentParser()
ap.add_argument("--setting", default="8"); ap.add_argument("--P", type=int, default=1024)
ap.add_argument("--H", type=int, default=128); ap.add_argument("--epochs", type=int, default=30)
ap.add_argument("--lr", type=float, default=0.01); ap.add_argument("--tau", type=float, default=0.2)
ap.add_argument("--seed", type=int, default=0); ap.add_argument("--adam", type=int, default=1)
ap.add_argument("--neg", default="batch")  # batch: all patches of other samples (any position)
ap.add_argument("--train", default="1,2,3")  # which layers to train
ap.add_argument("--bias", type=int, default=0)
ap.add_argument("--B", type=int, default=128)
ap.add_argument("--loss", default="nce")
ap.add_argument("--center", type=int, default=1)
a = ap.parse_args()
torch.manual_seed(a.seed)
v, m, nc, s, L = {"8": (8, 4, 8, 2, 3), "16": (16, 4, 16, 2, 3), "s2": (8, 4, 8, 2, 2)}[a.setting]
rhm = RHM(v, m, nc, s, L, seed=0)
tr, te = rhm.split(a.P, 4000, seed=a.seed)
X, Xt = onehot(tr.inputs, v).float().transpose(1, 2), onehot(te.inputs, v).float().transpose(1, 2)   # [N, d, v] channel-last?
print("X", tuple(X.shape))
g = torch.Generator().manual_seed(a.seed)
C = [v] + [a.H] * L
W = [torch.randn(a.H, s * C[l], generator=g).requires_grad_(True) for l in range(L)]
b = [torch.zeros(a.H).requires_grad_(bool(a.bias)) for l in range(L)]
R = [[torch.randn(a.H, C[l], generator=g) / math.sqrt(C[l]) for k in range(s)] for l in range(L)]
trainset = [int(t) - 1 for t in a.train.split(",") if t]

def fwd(x):  # x [N, P, C]
    hs = []
    h = x
    for l in range(L):
        N, P, Cin = h.shape
        patch = h.reshape(N, P // s, s * Cin)
        a_ = patch @ W[l].T / math.sqrt(s * Cin) + 0.1 * b[l]
        h = torch.relu(a_)
        hs.append(h)
    return hs

def local_losses(x):
    losses = []
    h = x
    for l in range(L):
        N, P, Cin = h.shape
        hin = h.detach()
        Wk = W[l].reshape(a.H, s, Cin)
        z = torch.einsum("npkc,hkc->npkh", hin.reshape(N, P // s, s, Cin), Wk) / math.sqrt(s * Cin)
        if l in trainset and a.loss == "mse":
            hp = hin.reshape(N, P // s, s, Cin)
            loss = 0
            for k in range(s):
                sib = hp[:, :, (k + 1) % s]            # s = 2: the other tap
                if a.center: sib = sib - sib.mean((0, 1), keepdim=True)
                target = sib @ R[l][k].T
                loss = loss + ((z[:, :, k] - target) ** 2).sum(-1).mean()
            losses.append(loss / s)
        elif l in trainset:
            zz = F.normalize(z, dim=-1).reshape(N * (P // s), s, a.H)
            loss = 0
            for k in range(s):
                for k2 in range(s):
                    if k == k2: continue
                    S = zz[:, k] @ zz[:, k2].T / a.tau
                    loss = loss + F.cross_entropy(S, torch.arange(len(S)))
            losses.append(loss / (s * (s - 1)))
        else:
            losses.append(torch.zeros(()))
        h = torch.relu(z.sum(2) + 0.1 * b[l]).detach()
    return losses

params = [W[l] for l in trainset] + ([b[l] for l in trainset] if a.bias else [])
opt = torch.optim.Adam(params, lr=a.lr) if a.adam else torch.optim.SGD(params, lr=a.lr, momentum=0.9)
W0 = [w.detach().clone() for w in W]
def report(ep, ls):
    with torch.no_grad():
        sens = synonymic_sensitivity(lambda inp: [h.reshape(len(inp), -1).numpy() for h in fwd(onehot(inp, v).float().transpose(1, 2))],
                                     rhm, te.take(np.arange(500)), np.random.default_rng(3))
        htr, hte = fwd(X), fwd(Xt)
        top = linear_probe(htr[-1].flatten(1), tr.labels, hte[-1].flatten(1), te.labels, nc)["test_error"]
        l1 = linear_probe(htr[-2].flatten(1), tr.labels, hte[-2].flatten(1), te.labels, nc)["test_error"]
        dw = [float((w - w0).norm() / w0.norm()) for w, w0 in zip(W, W0)]
    print(f"ep {ep:3d} loss {[round(float(x),3) for x in ls]} dW {[round(x,2) for x in dw]} S_bot {[round(x[0],3) for x in sens['layers']]} S_lvl2 {[round(x[1],3) for x in sens['layers']]} probe top {top:.3f} L-1flat {l1:.3f}", flush=True)

t0 = time.time()
report(0, [0] * L)
for ep in range(1, a.epochs + 1):
    perm = torch.randperm(a.P, generator=g)
    acc = [0.0] * L; nb = 0
    for i in range(0, a.P - a.B + 1, a.B):
        ls = local_losses(X[perm[i:i + a.B]])
        opt.zero_grad(); sum(ls).backward(); opt.step()
        acc = [x + float(y) for x, y in zip(acc, ls)]; nb += 1
    if ep % 10 == 0 or ep == a.epochs:
        report(ep, [x / nb for x in acc])
print("time", time.time() - t0)
