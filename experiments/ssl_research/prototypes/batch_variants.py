"""Prototype (stop 10): variants of the batch sibling CCA (weighting, shared vs per-tap mixing, normalisation,
ridge) at P = 1024, seed 0, (8,4,8,2,3). Rough research code (docs/results_ssl_research.md 2.6).

    LAM=0.01 OMP_NUM_THREADS=1 python experiments/ssl_research/prototypes/batch_variants.py 1024 [variant ...]
"""
import sys, math, time, torch
from experiments.ssl_research.batch_cca import _inv_sqrt, channel_last, SETTINGS
from spiking_rhm.metrics import linear_probe
from spiking_rhm.rhm import RHM
torch.set_num_threads(1)

def fit(x, sib, weight, lam):
    A, B = x - x.mean(0), sib - sib.mean(0); n=len(A)
    Ca = A.T@A/n + lam*torch.eye(A.shape[1],dtype=A.dtype); Cb = B.T@B/n + lam*torch.eye(B.shape[1],dtype=A.dtype)
    Ga, Gb = _inv_sqrt(Ca), _inv_sqrt(Cb)
    U, rho, _ = torch.linalg.svd(Ga@(A.T@B/n)@Gb)
    w = weight(rho)
    return (Ga@U[:, :len(w)])*w, rho  # [C, K]

def net(setting, P, seed, weight, shared, norm, H=128, lam=1e-2):
    lam = float(__import__('os').environ.get('LAM', lam))
    v,m,n_c,s,L = SETTINGS[setting]
    rhm = RHM(v,m,n_c,s,L,seed=0); tr, te = rhm.split(P, 4000, seed=seed)
    g = torch.Generator().manual_seed(seed)
    def run(x, layers=None):
        h = x; fitl = layers is None; layers = layers or []; out=[]
        for l in range(L):
            N,Pp,C = h.shape
            if fitl:
                if l==0: W = torch.randn(H, s*C, generator=g, dtype=h.dtype)/math.sqrt(s*C)
                else:
                    taps = h.reshape(N*(Pp//s), s, C); blocks=[]; M=None
                    for k in range(s):
                        others = torch.cat([taps[:,j] for j in range(s) if j!=k],1)
                        D, rho = fit(taps[:,k], others, weight, lam)
                        if M is None or not shared: M = torch.randn(H, D.shape[1], generator=g, dtype=h.dtype)/math.sqrt(D.shape[1])
                        blocks.append(M@D.T)
                    W = torch.cat(blocks,1)
                a = h.reshape(N,Pp//s,s*C)@W.T
                mu, sd = a.mean((0,1)), a.std((0,1)).clamp_min(1e-9)
                if norm=='center': sd = torch.ones_like(sd)
                if norm=='none': mu, sd = torch.zeros_like(mu), torch.ones_like(sd)
                if norm=='center_g': sd = torch.ones_like(sd)*a.std()
                if norm=='none_g': mu, sd = torch.zeros_like(mu), torch.ones_like(sd)*a.std()
                layers.append((W,mu,sd))
            W,mu,sd = layers[l]
            h = torch.relu((h.reshape(N,Pp//s,s*C)@W.T - mu)/sd); out.append(h)
        return out, layers
    htr, layers = run(channel_last(tr.inputs, v)); hte,_ = run(channel_last(te.inputs, v), layers)
    return linear_probe(htr[-1].flatten(1), tr.labels, hte[-1].flatten(1), te.labels, n_c)['test_error']

variants = {
 'base K16 pw3': (lambda r: r[:16]**3, False, 'std'),
 'shared K16 pw3': (lambda r: r[:16]**3, True, 'std'),
 'soft0.2 all': (lambda r: (r-0.2).clamp_min(0), False, 'std'),
 'soft0.3 all': (lambda r: (r-0.3).clamp_min(0), False, 'std'),
 'soft0.2 shared': (lambda r: (r-0.2).clamp_min(0), True, 'std'),
 'soft0.3 shared': (lambda r: (r-0.3).clamp_min(0), True, 'std'),
 'base center': (lambda r: r[:16]**3, False, 'center'),
 'base none': (lambda r: r[:16]**3, False, 'none'),
 'center_g': (lambda r: r[:16]**3, False, 'center_g'),
 'none_g': (lambda r: r[:16]**3, False, 'none_g'),
 'soft0.25 center_g': (lambda r: (r-0.25).clamp_min(0), False, 'center_g'),
 'soft0.25 none_g': (lambda r: (r-0.25).clamp_min(0), False, 'none_g'),
 'K8 pw0': (lambda r: r[:8]**0, False, 'std'),
 'K8 pw0.5': (lambda r: r[:8]**0.5, False, 'std'),
}
sel = sys.argv[2:] or list(variants)
P = int(sys.argv[1])
for name in sel:
    t=time.time(); w, sh, nm = variants[name]
    print(name, P, round(net('8', P, 0, w, sh, nm),3), f'{time.time()-t:.0f}s', flush=True)
