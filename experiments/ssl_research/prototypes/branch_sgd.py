"""Prototype (stop 10): the spectral sibling-CCA objective on tap branches trained by SGD, before it became the
registered rule `sibling-cca` (docs/results_ssl_research.md 2.6). Rough research code, not package code.

    OMP_NUM_THREADS=1 python experiments/ssl_research/prototypes/branch_sgd.py --lr 100 --precond 0.1 --epochs 30
"""
import math, time, argparse, torch
from rate_models.networks import make_spec, init_params, forward
from spiking_rhm.metrics import linear_probe
from spiking_rhm.rhm import RHM, onehot
torch.set_num_threads(1)
ap=argparse.ArgumentParser()
ap.add_argument('--setting',default='8'); ap.add_argument('--P',type=int,default=1024); ap.add_argument('--seed',type=int,default=0)
ap.add_argument('--lr',type=float,default=1.0); ap.add_argument('--lam',type=float,default=0.25); ap.add_argument('--K',type=int,default=16)
ap.add_argument('--epochs',type=int,default=30); ap.add_argument('--batch',type=int,default=32); ap.add_argument('--uncentered',action='store_true')
ap.add_argument('--layer1',action='store_true'); ap.add_argument('--H',type=int,default=128); ap.add_argument('--mom',type=float,default=0.9)
ap.add_argument('--precond',type=float,default=0.0); ap.add_argument('--bias',action='store_true'); ap.add_argument('--homeo',type=float,default=0.0)
a=ap.parse_args()
S={'8':(8,4,8,2,3),'16':(16,4,16,2,3)}
v,m,n_c,s,L=S[a.setting]
rhm=RHM(v,m,n_c,s,L,seed=0); tr,te=rhm.split(a.P,4000,seed=a.seed)
X=onehot(tr.inputs,v); Xt=onehot(te.inputs,v)
spec=make_spec('cnn',v,s**L,s,L,a.H,n_c,a.bias)
g=torch.Generator().manual_seed(a.seed)
p=init_params(spec,g)
R=[[torch.linalg.qr(torch.randn(a.H,a.K,generator=g))[0].T for _ in range(s)] for _ in range(L)]  # [K, H] orthonormal rows
W=[w.requires_grad_(True) for w in p.weights]
bs=[b.requires_grad_(True) for b in p.biases if b is not None]
opt=torch.optim.SGD(W+bs,lr=a.lr,momentum=a.mom)
layers=range(0 if a.layer1 else 1, L)
def loss_layer(l, act):
    x=act.patches[l].detach()  # [B,P,s*C]
    B,P,F=x.shape; C=F//s
    xt=x.reshape(B,P,s,C)
    Wl=W[l].reshape(a.H,s,C)
    z=torch.einsum('bpkc,hkc->bpkh',xt,Wl)/math.sqrt(F)  # [B,P,s,H]
    z=z.reshape(B*P,s,a.H)
    ys=[z[:,k]@R[l][k].T for k in range(s)]
    ys=[y-y.mean(0) for y in ys]
    n=len(z); tot=0
    for i in range(s):
        for j in range(i+1,s):
            C12=ys[i].T@ys[j]/n; C11=ys[i].T@ys[i]/n; C22=ys[j].T@ys[j]/n
            tot=tot-2*torch.trace(C12)+(C11*C22).sum()
    zz = z if a.uncentered else z-z.mean(0)
    tot=tot+a.lam*(zz**2).sum()/n
    if a.homeo:
        pre=act.pre[l]  # [B,H,P]
        tot=tot+a.homeo*(pre.mean(0)**2).sum()/2
    return tot
steps=a.P//a.batch; total=steps*a.epochs; st=0
t0=time.time(); cov={}
for ep in range(a.epochs):
    perm=torch.randperm(a.P,generator=g)
    ls=0
    for k in range(steps):
        idx=perm[k*a.batch:(k+1)*a.batch]
        _,act=forward(p,X[idx],cut=True)
        loss=sum(loss_layer(l,act) for l in layers)
        opt.zero_grad(); loss.backward()
        if a.precond:
            with torch.no_grad():
                for l in layers:
                    x=act.patches[l].detach(); B_,P_,F_=x.shape; C_=F_//s
                    xt=x.reshape(B_*P_,s,C_)
                    for kk in range(s):
                        xc=xt[:,kk]-xt[:,kk].mean(0)
                        Cb=xc.T@xc/len(xc)
                        key=(l,kk)
                        cov[key]=Cb if key not in cov else 0.99*cov[key]+0.01*Cb
                    G=W[l].grad.reshape(a.H,s,C_)
                    for kk in range(s):
                        Cv=cov[(l,kk)]; Q=torch.linalg.inv(Cv+a.precond*torch.trace(Cv)/C_*torch.eye(C_))*torch.trace(Cv)/C_
                        G[:,kk]=G[:,kk]@Q
        for gr in opt.param_groups: gr['lr']=a.lr*0.5*(1+math.cos(math.pi*st/total))
        opt.step(); st+=1; ls+=float(loss)
    if ep%10==9 or ep==a.epochs-1:
        with torch.no_grad():
            htr=forward(p,X)[1].post; hte=forward(p,Xt)[1].post
        errs=[linear_probe(h1.mean(-1) if False else h1.flatten(1),tr.labels,h2.flatten(1),te.labels,n_c)['test_error'] for h1,h2 in zip(htr,hte)]
        means=[float(h.mean()) for h in htr]; frac=[float((h>0).float().mean()) for h in htr]
        print(f'ep {ep+1} loss {ls/steps:.4f} probe {[round(e,3) for e in errs]} mean {[round(x,3) for x in means]} active {[round(x,2) for x in frac]} {time.time()-t0:.0f}s',flush=True)
