"""Neuromorphic deployment: ``spiking-rhm export`` (checkpoint -> NIR) and ``spiking-rhm deploy`` (NIR -> Lava).

``export`` turns a network saved by ``spiking-rhm train --save-net`` (rate or Norse) into a
NIR file; ``deploy`` runs that file's network on the Norse reference, Lava's float processes
and Loihi's bit-accurate fixed point on the run's own held-out points, and prints the errors
and spike agreement side by side.  Both import ``hardware`` (and Lava) only when called.
"""

from __future__ import annotations

import json

import click

from spiking_rhm.atomic import atomic_write_text, output_dir, writable_path
from spiking_rhm.cli.options import parse_option
from spiking_rhm.errors import ConfigError


@click.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="NIR file to write (HDF5)")
@click.option("--dense", is_flag=True,
              help="Linear layers instead of Conv1d for a cnn (native profile; the others are always dense)")
@click.option("--profile", default="native", show_default=True,
              help="conventions of the NIR reader the file is for: native (spiking-rhm, Lava), norse "
                   "(norse.torch.from_nir), snntorch (snntorch.import_nir), spikingjelly (nir_exchange); "
                   "docs/hardware.md")
@click.option("--option", "options", multiple=True, metavar="spiking.K=V",
              help="simulation setting of the exported network, e.g. spiking.T=30 or spiking.max_rate=1000 "
                   "(repeatable)")
@click.option("--refit-readout", is_flag=True,
              help="refit the readout (linear probe) on the network's spiking features of its P training points "
                   "(calibrates a rate-trained network to its spiking simulation)")
@click.option("--normalise", "percentile", type=float, metavar="PERCENTILE",
              help="data-based weight normalisation (Rueckauer et al. 2017): scale each layer by the PERCENTILE "
                   "(e.g. 99.9) of its rate activations on the run's training points, so that unit fires at "
                   "--target-rate; applied before --refit-readout")
@click.option("--target-rate", type=float, default=1.0, show_default=True,
              help="with --normalise: the percentile unit's rate, a fraction of one spike per step")
def export(checkpoint, out, dense, profile, options, refit_readout, percentile, target_rate):
    """Write a trained network (an .npz from `train --save-net`) as a NIR graph."""
    writable_path(out, ConfigError, "the NIR file ")  # checked before the model libraries are imported
    if percentile is not None and not 0 < percentile <= 100:
        raise ConfigError(f"--normalise takes a percentile in (0, 100], got {percentile:g}")
    if not 0 < target_rate <= 1:
        raise ConfigError(f"--target-rate must be a fraction of one spike per step in (0, 1], got {target_rate:g}")
    from hardware.nir_graph import PROFILES

    if profile not in PROFILES:
        raise ConfigError(f"--profile {profile!r}: valid profiles are {', '.join(PROFILES)}")
    if dense and profile != "native":
        raise ConfigError(f"--dense applies to the native profile; --profile {profile} is always dense")

    spiking = {}
    for text in options:
        path, value = parse_option(text)
        if len(path) != 2 or path[0] != "spiking":
            raise ConfigError(f"--option {text!r}: export takes spiking.<setting>=<value> only")
        spiking[path[1]] = value
    from hardware.nir_graph import to_nir, write_nir
    from spiking_rhm.backends.norse.deployed import from_checkpoint
    from spiking_rhm.checkpoint import Checkpoint

    ckpt = Checkpoint.load(checkpoint)
    net = from_checkpoint(ckpt, spiking=spiking)
    if percentile is not None:
        from spiking_rhm.backends.norse.deployed import normalise

        net, norm = normalise(net, percentile=percentile, target=target_rate)
        click.echo(f"weights normalised: layer scales {', '.join(f'{f:.4g}' for f in norm['factors'])} "
                   f"(p{percentile:g} of the rate activations -> {target_rate:g} spikes per step)")
    if refit_readout:
        from spiking_rhm.backends.norse.deployed import refit_readout as refit

        net, scores = refit(net)
        click.echo(f"readout refitted on the spiking features: train error {scores['train_error']:.4f}, "
                   f"test error {scores['test_error']:.4f}")
    graph = to_nir(net, conv=not dense, profile=profile)
    write_nir(out, graph)
    spec = net.spec
    click.echo(f"network: {spec.arch}, widths {list(spec.widths)}, positions {list(spec.positions)}, "
               f"trained on {ckpt.backend} by {ckpt.config.rule} (readout: {ckpt.readout_kind})")
    click.echo(f"spiking: T = {net.steps} steps of dt = {net.params.dt * 1e3:g} ms, code {net.encoder.code}")
    click.echo(f"profile {profile}: for {PROFILES[profile].reader}; {PROFILES[profile].exact}")
    click.echo(f"nodes: {' -> '.join(_chain_names(graph))}")
    click.echo(f"wrote {out}")


def _chain_names(graph) -> list[str]:
    from hardware.nir_graph import chain

    return [f"{name}:{type(graph.nodes[name]).__name__}" for name in chain(graph)]


@click.command("deploy")
@click.argument("network", type=click.Path(exists=True, dir_okay=False))
@click.option("--P-test", "P_test", type=int, default=500, show_default=True, help="held-out points to evaluate")
@click.option("--target", "targets", default="norse,lava-float,loihi-fixed", show_default=True,
              help="comma list of norse, lava-float, loihi-fixed and foreign readers norse-nir, snntorch-nir, "
                   "spikingjelly-nir (the network exported for that library and run by its own NIR importer)")
@click.option("--engine", type=click.Choice(["lava", "reference"]), default="lava", show_default=True,
              help="fixed point on Lava's bit-accurate processes or on the (bit-identical) numpy integer model")
@click.option("--batch", type=int, default=250, show_default=True, help="samples simulated side by side")
@click.option("--seed", type=int, help="seed of the input spike draws [run seed + 1]")
@click.option("--out", type=click.Path(dir_okay=False), help="write the report (JSON) here")
@click.option("--figures", type=click.Path(file_okay=False),
              help="folder for rasters.png (one point, every layer and target) and counts.png")
@click.option("--quiet", is_flag=True, help="no progress bar")
def deploy(network, P_test, targets, engine, batch, seed, out, figures, quiet):
    """Run a NIR network (from `spiking-rhm export`) on Norse, Lava float, Loihi fixed point and foreign readers."""
    if out is not None:
        writable_path(out, ConfigError, "the report ")
    if figures is not None:
        output_dir(figures, ConfigError, "the figure ")
    names = [t.strip() for t in targets.split(",") if t.strip()]
    if P_test < 1 or batch < 1:
        raise ConfigError(f"--P-test and --batch must be >= 1, got {P_test} and {batch}")
    from hardware.deploy import evaluate_deployment, format_report
    from hardware.nir_graph import read_nir

    graph = read_nir(network)
    report = evaluate_deployment(graph, P_test=P_test, targets=names, engine=engine, batch=batch, seed=seed,
                                 progress=not quiet, figures=figures)
    click.echo(format_report(report))
    for path in report.get("figures", []):
        click.echo(f"wrote {path}")
    if out:
        atomic_write_text(out, json.dumps(report, indent=2))
        click.echo(f"report: {out}")


@click.command("run-nir")
@click.argument("network", type=click.Path(dir_okay=False))
@click.option("--v", type=int, required=True, help="RHM vocabulary size")
@click.option("--m", type=int, required=True, help="RHM rules per symbol")
@click.option("--nc", "n_c", type=int, required=True, help="RHM classes (the graph's outputs)")
@click.option("--s", type=int, required=True, help="RHM patch size")
@click.option("--L", "L", type=int, required=True, help="RHM depth")
@click.option("--rule-seed", type=int, default=0, show_default=True, help="seed of the RHM rule draw")
@click.option("--option", "options", multiple=True, metavar="spiking.K=V",
              help="spike code: spiking.code, spiking.T, spiking.dt, spiking.max_rate (repeatable); the graph is "
                   "simulated at its own 'dt' metadata where it has one")
@click.option("--convention", type=click.Choice(["step", "dirac"]), default="step", show_default=True,
              help="how a step's input enters: a current held for dt (Norse, snnTorch) or a unit-area Dirac (NIR)")
@click.option("--target", "targets", default="sim", show_default=True,
              help="comma list: sim (this package's NIR simulation) and norse-nir, snntorch-nir, spikingjelly-nir "
                   "(their importers)")
@click.option("--dt", type=float, help="time step the file's time constants are meant for [its 'dt' metadata, "
                                      "else spiking.dt]; snnTorch writes its files for 1e-4")
@click.option("--P-test", "P_test", type=int, default=500, show_default=True, help="RHM points to evaluate")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the points and spikes")
@click.option("--out", type=click.Path(dir_okay=False), help="write the report (JSON) here")
def run_nir(network, v, m, n_c, s, L, rule_seed, options, convention, dt, targets, P_test, seed, out):
    """Run a NIR graph written by another tool (a feed-forward LIF/CubaLIF chain) on the RHM."""
    import dataclasses

    from hardware.deploy import evaluate_foreign
    from spiking_rhm.atomic import atomic_write_text, writable_path
    from spiking_rhm.config import RHMConfig, SpikingConfig

    if out is not None:
        writable_path(out, ConfigError)
    spiking = {}
    for text in options:
        path, value = parse_option(text)
        if len(path) != 2 or path[0] != "spiking" or path[1] not in ("code", "T", "dt", "max_rate"):
            raise ConfigError(f"--option {text!r}: run-nir takes spiking.code/T/dt/max_rate=<value> only")
        spiking[path[1]] = value
    rhm = RHMConfig(v=v, m=m, n_c=n_c, s=s, L=L, rule_seed=rule_seed)
    names = [t.strip() for t in targets.split(",") if t.strip()]
    report = evaluate_foreign(network, rhm, dataclasses.replace(SpikingConfig(), **spiking), P_test=P_test,
                              convention=convention, targets=names, seed=seed, dt=dt)
    click.echo(f"nodes: {' -> '.join(report['nodes'])}")
    click.echo(f"{report['P_test']} RHM points, T = {report['steps']} steps ({report['code']} code at dt = "
               f"{report['code_dt'] * 1e3:g} ms), simulated at dt = {report['dt'] * 1e3:g} ms, "
               f"input convention {convention}")
    click.echo("rates (Hz): " + ", ".join(f"{k} {r:.1f}" for k, r in report["rates_hz"].items()))
    for target, row in report["targets"].items():
        extra = ""
        if "spike_agreement" in row:
            extra = "  spike agreement " + ", ".join(f"{a:.4f}" for a in row["spike_agreement"])
        click.echo(f"{target:<14} test error {row['test_error']:.4f}  = sim {row['agreement_with_sim']:.4f}{extra}")
    if out:
        atomic_write_text(out, json.dumps(report, indent=2))
        click.echo(f"report: {out}")


COMMANDS = [export, deploy, run_nir]
