"""The reader matrix of docs/hardware.md: every export profile read by every NIR reader, measured.

For a native NIR file (``spiking-rhm export``), each profile's file is written and handed to each
reader -- this package's chain simulation (``hardware.nir_sim``, the profile's input convention),
``norse.torch.from_nir`` and ``snntorch.import_nir`` -- on the same input spikes of ``P_test``
held-out points; a reader that fails to load or run gets its error line.  Reported against the
Norse back end's simulation: loads?, test error, fraction of equal predictions, spike agreement
per layer (fraction of equal (step, neuron) entries).

    python experiments/deploy/readers.py runs/deploy/net.nir --P-test 128 --out readers.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def measure(native_path: str, P_test: int, seed: int | None = None) -> dict:
    from hardware.deploy import READERS, flat_trains, run_reader
    from hardware.nir_graph import PROFILES, from_nir, read_nir, to_nir, write_nir
    from hardware.nir_sim import input_shape, load_chain, run_chain
    from spiking_rhm.backends.norse.deployed import encode, simulate

    net = from_nir(read_nir(native_path))
    cfg = net.config
    P, _ = cfg.sizes()
    _, test = cfg.rhm.build().split(P, P_test, seed=cfg.seed)
    spikes = encode(net, test.inputs, cfg.seed + 1 if seed is None else seed)
    _, logits, trains = simulate(net, spikes, record=True)
    ref, ref_pred = flat_trains(trains), logits.argmax(1).numpy()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for profile in PROFILES:
            path = write_nir(Path(tmp) / f"{profile}.nir", to_nir(net, profile=profile, conv=True))
            for reader in ["sim", *READERS]:
                row = {"profile": profile, "reader": reader}
                try:
                    if reader == "sim":
                        graph = read_nir(path)
                        nodes = load_chain(graph)
                        x = spikes.reshape(spikes.shape[0], spikes.shape[1], *input_shape(nodes))
                        convention = "dirac" if profile == "native" else "step"
                        out, z = run_chain(nodes, x, float(graph.metadata["dt"]), convention)
                        pred = out.argmax(1).numpy()
                        got = [t.reshape(t.shape[0], t.shape[1], -1).numpy() for t in z.values()]
                        row["convention"] = convention
                    else:
                        res = run_reader(reader, path, spikes)
                        pred, got = res.logits.argmax(1), res.trains
                except Exception as err:  # a reader that cannot take the file: its message, one line
                    row.update(loads=False, error=f"{type(err).__name__}: {str(err).splitlines()[0][:160]}")
                    rows.append(row)
                    continue
                same_shape = len(got) == len(ref) and all(a.shape == b.shape for a, b in zip(got, ref))
                row.update(loads=True, test_error=float((pred != test.labels).mean()),
                           same_predictions=float((pred == ref_pred).mean()),
                           spike_agreement=[float((a == b).mean()) for a, b in zip(got, ref)] if same_shape else None)
                rows.append(row)
    return {"network": str(native_path), "P_test": P_test, "norse_test_error": float((ref_pred != test.labels).mean()),
            "rows": rows}


def table(report: dict) -> str:
    lines = [f"| profile | reader | loads? | test error (Norse {report['norse_test_error']:.3f}) | same predictions "
             "| spike agreement per layer |", "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if not r["loads"]:
            lines.append(f"| {r['profile']} | {r['reader']} | no: `{r['error']}` | | | |")
            continue
        spikes = ", ".join(f"{a:.4f}" for a in r["spike_agreement"]) if r["spike_agreement"] else "(layers differ)"
        reader = r["reader"] + (f" ({r['convention']})" if "convention" in r else "")
        lines.append(f"| {r['profile']} | {reader} | yes | {r['test_error']:.3f} | {r['same_predictions']:.3f} "
                     f"| {spikes} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("network", help="a native NIR file from spiking-rhm export")
    parser.add_argument("--P-test", type=int, default=128)
    parser.add_argument("--out", help="write the report (JSON) here")
    args = parser.parse_args(argv)
    report = measure(args.network, args.P_test)
    print(table(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
