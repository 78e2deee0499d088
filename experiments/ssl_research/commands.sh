#!/usr/bin/env bash
# Reproduces every number of docs/results_ssl_research.md (run from the repository root, venv active).
set -e
R="nice -n 5 python -m experiments.ssl_research.run"
D="nice -n 5 python -W ignore -m experiments.ssl_research.diagnose"
# --- 1. baselines
$R --tag bp --rule bp --P 0.5x 1x 1.5x 2x 3x 4x --seeds 0 1 --epochs 100
$R --tag random-features --rule random-features --P 1x 4x --seeds 0 1 --epochs 50
$R --tag bp --setting 16 --rule bp --P 0.5x 1x 2x 4x --seeds 0 1 --epochs 100
$R --tag random-features --setting 16 --rule random-features --P 1x 4x --seeds 0 1 --epochs 50
# --- 2. first full runs (readout on all layers)
$R --tag clapp-lr1-all --rule clapp --P 4x --seeds 0 --epochs 50 --lr 1 --opt readout=all
$R --tag clapp-lr8-all --rule clapp --P 4x --seeds 0 --epochs 50 --lr 8 --opt readout=all
# --- 3. diagnostics (s8, P = 2048, seed 0, 20 epochs, hidden layers only)
$D --rule clapp --lr 1 --epochs 20 --every 5
$D --rule clapp --adam --lr 0.01 --epochs 20 --every 5
$D --rule clapp --lr 4 --epochs 20 --every 10
$D --rule clapp --lr 4 --wd 0.01 --epochs 20 --every 10
$D --rule infonce --lr 4 --epochs 20 --every 10
$D --rule vicreg --lr 0.1 --epochs 20 --every 10
$D --rule clapp --lr 1 --opt pairs=resample resample_level=1 --epochs 20 --every 10
$D --rule clapp --lr 4 --opt pairs=resample resample_level=2 --epochs 20 --every 10
$D --rule infonce --adam --lr 0.003 --epochs 20 --every 10
$D --rule infonce --lr 16 --epochs 20 --every 10
$D --rule infonce --lr 4 --opt pairs=resample resample_level=2 --epochs 20 --every 10
# --- 4. full runs of the best variants (readout on all layers, 20 epochs)
$R --tag infonce-sib-lr16-all --rule infonce --P 2x 4x 8x 16x --seeds 0 1 --epochs 20 --lr 16 --opt readout=all
$R --tag ORACLE-infonce-R2-lr4-all --rule infonce --P 4x --seeds 0 1 --epochs 20 --lr 4 --opt readout=all pairs=resample resample_level=2
$R --tag clapp-sib-lr4-all --rule clapp --P 4x --seeds 0 1 --epochs 20 --lr 4 --opt readout=all
$R --tag infonce-sib-lr16-all --setting 16 --rule infonce --P 4x --seeds 0 1 --epochs 20 --lr 16 --opt readout=all
python -m experiments.ssl_research.summarize
python -m experiments.ssl_research.plot
# --- 5. stop 10: the online, branch-local rule `sibling-cca` (section 2.6); tuning on s8 seed 0, P = 1024 only
T="python -m experiments.ssl_research.run --setting 8 --rule sibling-cca --P 1024 --seeds 0 --batch 32 --P_test 4000"
$T --tag scca-tune-try --epochs 30 --opt shrink=0.25
$T --tag scca-tune-lr30 --lr 30 --epochs 30 --opt shrink=0.25
$T --tag scca-tune-lr300 --lr 300 --epochs 30 --opt shrink=0.25
$T --tag scca-tune-ep60 --epochs 60 --opt shrink=0.25
$T --tag scca-tune-sh20 --epochs 30 --opt shrink=0.2    # and shrink=0.1 / 0.15 / 0.35, whiten=0.03 / 0.3, dim=32, lr 150
# full runs at the registered defaults (lr 100, shrink 0.2, dim 16, whiten 0.1), 30 epochs, batch 32
S="python -m experiments.ssl_research.run --batch 32 --epochs 30 --P_test 4000 --tag sibling-cca-rule --rule sibling-cca"   # (tag sibling-cca-center0: the same with --opt center=0)
$S --setting 8 --P 768 1024 1280 1536 2048 --seeds 0 1 2
$S --setting 16 --P 1024 1536 2048 3072 --seeds 0 1 2
python -m experiments.ssl_research.run --batch 32 --epochs 30 --P_test 4000 --tag rf-b32 --rule random-features --setting 8 --P 1024 2048 --seeds 0 1
python -m experiments.ssl_research.run --batch 32 --epochs 30 --P_test 4000 --tag rf-b32 --rule random-features --setting 16 --P 1024 2048 --seeds 0 1
python -m experiments.ssl_research.run --tag scca-width64 --setting 8 --rule sibling-cca --P 1536 --seeds 0 --batch 32 --epochs 30 --P_test 4000 --width 64
python -m experiments.ssl_research.run --tag scca-width256 --setting 8 --rule sibling-cca --P 1536 --seeds 0 --batch 32 --epochs 30 --P_test 4000 --width 256
