"""Figure: test error vs P (s8) for bp, the best local SSL rule, the grammar oracle and random-features."""
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from experiments.ssl_research.summarize import load

OUT = Path(__file__).resolve().parents[2] / "docs/figures/ssl_research/test_error_vs_P_s8.png"

recs = [r for r in load() if r["setting"] == "8"]
curves = defaultdict(lambda: defaultdict(list))
for r in recs:
    curves[r["tag"]][r["P"]].append(r["test_error"])
fig, ax = plt.subplots(figsize=(5.5, 4))
for tag in ("bp", "infonce-sib-lr16-all", "clapp-sib-lr4-all", "ORACLE-infonce-R2-lr4-all", "random-features"):
    if tag in curves:
        Ps = sorted(curves[tag])
        ax.plot([p / 512 for p in Ps], [np.mean(curves[tag][p]) for p in Ps], "o-", label=tag)
ax.axhline(0.1, color="grey", ls=":", lw=1)
ax.set_xscale("log"); ax.set_xlabel("P / (n_c m^L)"); ax.set_ylabel("test error (mean of 2 seeds)")
ax.set_title("(8,4,8,2,3), H = 128"); ax.legend(fontsize=7)
fig.tight_layout(); OUT.parent.mkdir(parents=True, exist_ok=True); fig.savefig(OUT, dpi=120)
print(OUT)
