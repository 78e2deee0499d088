"""``spiking-rhm curve | pstar | plot``: learning-curve sweeps, P* tables and figures."""

from __future__ import annotations

import click

from spiking_rhm.atomic import output_dir
from spiking_rhm.cli.options import note, note_default_rhm, parse_option, set_path
from spiking_rhm.errors import ConfigError


@click.command("curve")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="sweep file (TOML/YAML/JSON); CLI options override it")
@click.option("--rule", "rules", help="rule name(s), comma separated")
@click.option("--backend", "backends", help="back end(s), comma separated [rate]")
@click.option("--neuron", help="spiking neuron model: lif | cond | adex | two-compartment (detailed ones: brian2)")
@click.option("--v", type=int, help="vocabulary size")
@click.option("--m", type=int, help="synonyms per symbol")
@click.option("--nc", "n_c", type=int, help="number of classes")
@click.option("--s", type=int, help="tuple size (branching)")
@click.option("--L", "L", type=int, help="depth")
@click.option("--rule-seed", type=int, help="seed of the grammar draw [0]")
@click.option("--P", "P", help="training sizes: comma list of integers, 'Nx' (N n_c m^L) or 'max', e.g. 1x,2x,4x,5000")
@click.option("--P-test", "P_test", type=int, help="test points [min(20000, P_max - P)]")
@click.option("--seeds", help="seeds: comma list or range, e.g. 0,1,2 or 0-4 [0]")
@click.option("--out", type=click.Path(file_okay=False), help="output directory (results.jsonl, records/)")
@click.option("--workers", type=int, help="local worker processes [min(2, CPUs)]; 1 runs in this process")
@click.option("--dask", help="run on the Dask scheduler at this address (e.g. tcp://host:8786)")
@click.option("--stack", type=int, help="rate runs differing only in seed / lr trained as one batched model, at most "
                                        "N per group; 1: every run alone [1]")
@click.option("--epochs", type=int)
@click.option("--min-steps", type=int, help="at least this many optimiser steps (more epochs for small P)")
@click.option("--batch-size", type=int)
@click.option("--lr", type=float, help="learning rate [the rule's default]")
@click.option("--width", type=int, help="hidden channels per layer")
@click.option("--arch", type=click.Choice(["cnn", "lcn", "fcn"]))
@click.option("--device", help="torch device [cpu]")
@click.option("--option", "options", multiple=True, metavar="K=V",
              help="rule option K=V, or section.key=V for any run setting (repeatable)")
@click.option("--grid", "grids", multiple=True, metavar="K=V1,V2,...",
              help="choose K among the values on validation points, e.g. lr=0.3,1,3 (K: lr, a rule option or "
                   "section.key; needs --validation or optim.validation; repeatable)")
@click.option("--vary", "varies", multiple=True, metavar="K=V1,V2,...",
              help="one more axis of the sweep: every run once per value of the run setting K (section.key), "
                   "e.g. spiking.neuron=lif,adex (repeatable: the axes are crossed)")
@click.option("--validation", type=float, help="fraction of the P training points held out for --grid selection")
@click.option("--quiet", is_flag=True, help="no progress bar")
def curve(config_path, rules, backends, neuron, v, m, n_c, s, L, rule_seed, P, P_test, seeds, out, workers, dask, stack, epochs,
          min_steps, batch_size, lr, width, arch, device, options, grids, varies, validation, quiet):
    """Learning curves: one training per (rule, backend, P, seed); resumable."""
    from experiments.sweep import SweepConfig, parse_int_list, parse_size_list, run_sweep
    from spiking_rhm.cli.rule_table import check_rule_names
    from spiking_rhm.presets import PRESETS
    from spiking_rhm.config import load_config_file

    data = load_config_file(config_path) if config_path else {}
    where = config_path or "command line"
    if rules:
        data["rules"] = [r.strip() for r in rules.split(",") if r.strip()]
    if backends:
        data["backends"] = [b.strip() for b in backends.split(",") if b.strip()]
    if P:
        data["P"] = list(parse_size_list(P))
    if seeds:
        data["seeds"] = list(parse_int_list(seeds))
    rhm_changes = {k: val for k, val in dict(v=v, m=m, n_c=n_c, s=s, L=L, rule_seed=rule_seed).items() if val is not None}
    if rhm_changes:
        settings = data.get("rhm", {})
        settings = [settings] if isinstance(settings, dict) else list(settings)
        data["rhm"] = [{**setting, **rhm_changes} for setting in settings]
    for key, value in dict(out=out, workers=workers, dask=dask, stack=stack, P_test=P_test, device=device).items():
        if value is not None:
            data[key] = value
    for path, value in (("optim.epochs", epochs), ("optim.min_steps", min_steps), ("optim.batch_size", batch_size), ("optim.lr", lr),
                        ("net.width", width), ("net.arch", arch), ("spiking.neuron", neuron)):
        if value is not None:
            set_path(data, path.split("."), value)
    for text in options:
        set_path(data, *parse_option(text))
    if validation is not None:
        set_path(data, ["optim", "validation"], validation)
    for text in grids:
        key, values = parse_grid(text)
        set_path(data, ["grid", key], values)
    for text in varies:
        key, values = parse_grid(text, "--vary")
        if isinstance(data.setdefault("vary", {}), dict):  # otherwise SweepConfig says what vary must be
            data["vary"][key] = values
    if "rules" not in data:
        raise ConfigError("give --rule (or rules = [...] in --config)")
    if "P" not in data:
        raise ConfigError("give --P (or P = [...] in --config)")
    if data.get("out") is None:
        raise ConfigError("the sweep needs an output directory (--out DIR or out = 'DIR' in the config)")
    output_dir(data["out"], ConfigError, "the results ")
    notes = _check_sizes(data, where)  # P, P_test against P_max before the rules (torch) are loaded
    check_rule_names(data["rules"] if isinstance(data["rules"], list) else [data["rules"]], extra=PRESETS)
    sweep = SweepConfig.from_dict(data, where=where)
    note_default_rhm({"rhm": {}}, given="rhm" in data)
    for text in notes:
        note(text)
    summary = run_sweep(sweep, progress=not quiet)
    click.echo(str(summary))


def parse_grid(text: str, flag: str = "--grid") -> tuple[str, list]:
    """``k=v1,v2,...`` -> (``k``, values read like ``--option`` values); ``flag`` names the option in errors."""
    if "=" not in text:
        raise ConfigError(f"{flag} {text!r}: expected key=value1,value2,...")
    key, raw = (part.strip() for part in text.split("=", 1))
    values = [parse_option(f"x={part}")[1] for part in raw.split(",") if part.strip()]
    if not key or not values:
        raise ConfigError(f"{flag} {text!r}: expected key=value1,value2,...")
    return key, values


def _check_sizes(data: dict, where: str) -> list[str]:
    """Sizes and RHM parameters of a sweep dict, checked without the rule registry; notes on P = P_max."""
    from experiments.sweep import _size_tuple
    from spiking_rhm.config import RHMConfig, _from_mapping, default_test_size, resolve_size
    from spiking_rhm.errors import SpikingRHMError

    notes = []
    rhm = data.get("rhm", {})
    for setting in [rhm] if isinstance(rhm, dict) else rhm:
        grammar = _from_mapping(RHMConfig, setting, f"{where}.rhm").build()
        for spelling in _size_tuple(data.get("P"), f"{where}.P"):
            try:
                P = resolve_size(spelling, grammar)
            except SpikingRHMError as err:
                raise ConfigError(str(err) if str(err).startswith("P = ") else f"P = {spelling!r}: {err}") from None
            P_test = data.get("P_test")
            if P_test is None and default_test_size(grammar.P_max, P) == 0:
                notes.append(f"P = {P} = P_max of (v, m, n_c, s, L) = {grammar.params.astuple()} leaves no test "
                             f"points: those runs are recorded as 'no-test-points' with train metrics only")
    return notes


@click.command("pstar")
@click.argument("directory", type=click.Path(exists=True))
@click.option("--eps", type=float, default=0.1, show_default=True, help="test-error threshold")
@click.option("--boot", type=int, default=2000, show_default=True, help="bootstrap resamples over seeds")
@click.option("--confidence", type=float, default=0.9, show_default=True, help="coverage of the bootstrap interval")
@click.option("--scoring", type=click.Choice(["recorded", "online", "probe"]), default="recorded", show_default=True,
              help="test error of the record, of the rule's own online readout, or of the linear probe")
@click.option("--ratio-to", metavar="RULE", help="also print P*(rule) / P*(RULE) per rule and setting, with a paired "
                                                 "bootstrap interval over the shared (grammar, seed) pairs")
def pstar_command(directory, eps, boot, confidence, scoring, ratio_to):
    """Sample complexity P*(eps) per rule and back end, with bootstrap intervals over grammars and seeds."""
    from experiments.analysis import (TRAIN_ERROR_FLAG, format_pstar_table, format_ratio_table, pstar_ratio_rows,
                                      pstar_rows, ratio_legend, rescore, scoring_headline)
    from experiments.store import read_results

    if not 0 < eps < 1:
        raise ConfigError(f"--eps must lie in (0, 1), got {eps}")
    if boot < 1:
        raise ConfigError(f"--boot must be >= 1, got {boot}")
    records = read_results(directory)
    if not records:
        raise ConfigError(f"{directory!r} holds no records yet")
    records, missing = rescore(records, scoring)
    if missing:
        note(f"{missing} ok run(s) have no '{scoring}' scoring in their record (left out)")
    ratios = None
    if ratio_to:
        try:
            ratios = pstar_ratio_rows(records, ratio_to, eps=eps, n_boot=boot, confidence=confidence)
        except ConfigError as err:
            raise ConfigError(f"--ratio-to {ratio_to}: {err}") from None
    click.echo(scoring_headline(records, scoring))
    rows = pstar_rows(records, eps=eps, n_boot=boot, confidence=confidence)
    click.echo(format_pstar_table(rows, eps, confidence))
    click.echo("P*: first crossing of the seed-mean test error, linear in log P; '<=' = already below eps at the "
               f"smallest P; inf = never reached; interval: bootstrap over (grammar, seed) pairs; NOT CONVERGED: "
               f"the seed-mean final train error exceeds {TRAIN_ERROR_FLAG} at some P.")
    if ratios is not None:
        click.echo("")
        click.echo(format_ratio_table(ratios, eps, confidence))
        click.echo(ratio_legend(ratio_to, boot, confidence))


@click.command("plot")
@click.argument("directory", type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False), help="figure directory [DIRECTORY/figures]")
@click.option("--eps", type=float, default=0.1, show_default=True)
@click.option("--scoring", type=click.Choice(["recorded", "online", "probe"]), default="recorded", show_default=True,
              help="test error of the record, of the rule's own online readout, or of the linear probe")
def plot_command(directory, out, eps, scoring):
    """Figures (PNG + PDF): learning curves, P* vs n_c m^L, sensitivity and alignment per layer."""
    from pathlib import Path

    from experiments.analysis import has_test_points, rescore
    from experiments.plots import plot_all
    from experiments.store import read_results

    base = Path(directory)
    out = Path(out) if out else (base if base.is_dir() else base.parent) / "figures"
    output_dir(out, ConfigError, "the figure ")
    records = read_results(directory)
    if not records:
        raise ConfigError(f"{directory!r} holds no records yet")
    records, missing = rescore(records, scoring)
    if missing:
        note(f"{missing} ok run(s) have no '{scoring}' scoring in their record (left out)")
    files, notes = plot_all(records, out, eps=eps, scoring=scoring)
    no_test = sum(not has_test_points(r) for r in records)
    if no_test:
        notes.append(f"{no_test} run(s) without test points (P = P_max) left out of the test-error figures")
    for path in files:
        click.echo(f"wrote {path}")
    for note in notes:
        click.echo(f"note: {note}")


COMMANDS = [curve, pstar_command, plot_command]
