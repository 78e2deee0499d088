"""Training commands: ``spiking-rhm train`` (one run) and ``spiking-rhm rules`` (the registry).

``train`` builds one :class:`~spiking_rhm.config.RunConfig` (from ``--config FILE`` if given,
then the flags on top), calls :func:`spiking_rhm.api.train`, optionally writes the results
record as JSON (atomically), and ends with the line ``test_error: <fraction>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from spiking_rhm.atomic import atomic_write_text, writable_path
from spiking_rhm.cli.options import note, note_default_rhm, parse_option, set_path
from spiking_rhm.api import NO_TEST_POINTS  # api imports the back ends (torch) only when training
from spiking_rhm.errors import ConfigError


def build_config(config_file, overrides: dict, options: list[tuple[list[str], object]]):
    """RunConfig from an optional file plus command-line overrides (None = not given)."""
    from spiking_rhm.config import RunConfig, load_config_file

    data = load_config_file(config_file) if config_file else {}
    sections = {"rhm": ("v", "m", "n_c", "s", "L", "rule_seed"), "net": ("arch", "width", "bias"),
                "optim": ("epochs", "min_steps", "lr", "batch_size"), "spiking": ("neuron",)}
    top = ("rule", "backend", "P", "P_test", "seed", "device")
    for key in top:
        if overrides.get(key) is not None:
            data[key] = overrides[key]
    for section, keys in sections.items():
        for key in keys:
            if overrides.get(key) is not None:
                data.setdefault(section, {})
                if not isinstance(data[section], dict):
                    raise ConfigError(f"config key {section!r} must be a table")
                data[section][key] = overrides[key]
    for path, value in options:
        set_path(data, path, value)
    return RunConfig.from_dict(data)


def _size(text: str | None):
    if text is None:
        return None
    return int(text) if text.strip().lstrip("-").isdigit() else text


def _write_json_atomically(path: Path, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, indent=2, default=str))


@click.command()
@click.option("--rule", help="learning rule (see `spiking-rhm rules`)")
@click.option("--backend", help="rate | norse | brian2 | lava | norse-converted")
@click.option("--neuron", help="spiking neuron model: lif | cond | adex | two-compartment (detailed ones: brian2)")
@click.option("--v", "v", type=int, help="vocabulary size")
@click.option("--m", "m", type=int, help="synonyms per symbol")
@click.option("--nc", "n_c", type=int, help="number of classes")
@click.option("--s", "s", type=int, help="tuple size")
@click.option("--L", "L", type=int, help="depth")
@click.option("--rule-seed", type=int, help="seed of the grammar draw")
@click.option("--P", "P", help="training points: N, 'Nx' (x n_c m^L) or 'max'")
@click.option("--P-test", "P_test", type=int, help="test points (default min(20000, P_max - P))")
@click.option("--seed", type=int, help="seed of split, initialisation and order")
@click.option("--width", type=int, help="hidden width H")
@click.option("--arch", type=click.Choice(["cnn", "lcn", "fcn"]), help="network")
@click.option("--bias/--no-bias", default=None, help="position-dependent bias")
@click.option("--epochs", type=int)
@click.option("--min-steps", type=int, help="at least this many optimiser steps (more epochs for small P)")
@click.option("--lr", type=float, help="base learning rate (default: the rule's)")
@click.option("--batch-size", type=int)
@click.option("--device", help="cpu | cuda | cuda:N")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML/YAML/JSON run config")
@click.option("--option", "options", multiple=True, help="rule (or back-end readout) option K=V, or section.key=V for any run setting; repeatable")
@click.option("--out", type=click.Path(dir_okay=False), help="write the results record (JSON) here")
@click.option("--save-net", "save_net", type=click.Path(dir_okay=False),
              help="save the trained network (.npz checkpoint: weights, readout, config) for `spiking-rhm export`")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train(rule, backend, neuron, v, m, n_c, s, L, rule_seed, P, P_test, seed, width, arch, bias, epochs, min_steps, lr, batch_size,
          device, config_file, options, out, save_net, quiet):
    """Train one run and print `test_error: <fraction>` as the last line."""
    overrides = dict(rule=rule, backend=backend, neuron=neuron, v=v, m=m, n_c=n_c, s=s, L=L, rule_seed=rule_seed, P=_size(P),
                     P_test=P_test, seed=seed, width=width, arch=arch, bias=bias, epochs=epochs, min_steps=min_steps, lr=lr,
                     batch_size=batch_size, device=device)
    # everything that needs no model is checked before torch is imported (_check_rule, api)
    cfg = build_config(config_file, overrides, [parse_option(o) for o in options])
    P_int, P_test_int = cfg.sizes()
    for path, what in ((out, "the record "), (save_net, "the checkpoint ")):
        if path is not None:
            writable_path(path, ConfigError, what)
    _check_rule(cfg)
    note_default_rhm(cfg.to_dict(), given=_rhm_given(config_file, overrides))
    if P_test_int == 0:
        note(f"P = {P_int} leaves no test points (P_max = {cfg.rhm.build().P_max}): the run is recorded as "
             f"{NO_TEST_POINTS!r} with train metrics only; lower --P for a test error")
    import rate_models  # noqa: F401  (registers the rate back end: the CLI fills the trainer registry)
    from spiking_rhm import api

    record = api.train(cfg, progress=not quiet, checkpoint=save_net)
    metrics = record["metrics"]
    click.echo(f"rule: {cfg.rule}  backend: {cfg.backend}  (v, m, n_c, s, L) = "
               f"({cfg.rhm.v}, {cfg.rhm.m}, {cfg.rhm.n_c}, {cfg.rhm.s}, {cfg.rhm.L})  P = {P_int}  P_test = {P_test_int}")
    click.echo(f"status: {record['status']}  epochs: {metrics.get('epochs_run')}  "
               f"wall time: {record['wall_time']:.1f} s")
    if record["train_error"] is not None:
        click.echo(f"train_error: {record['train_error']:.4f}")
    if out:
        _write_json_atomically(Path(out), record)
        click.echo(f"record: {out}")
    if save_net:
        click.echo(f"network: {save_net}")
    test_error = record["test_error"]
    if record["status"] == NO_TEST_POINTS:
        click.echo("test_error: none (no test points)")
    else:
        click.echo(f"test_error: {'nan' if test_error is None else f'{test_error:.4f}'}")


def _rhm_given(config_file, overrides: dict) -> bool:
    """True when the RHM parameters come from the flags or the config file (not the defaults)."""
    from spiking_rhm.config import load_config_file

    if any(overrides.get(k) is not None for k in ("v", "m", "n_c", "s", "L")):
        return True
    return bool(config_file) and "rhm" in load_config_file(config_file)


def _check_rule(cfg) -> None:
    """Fail fast (exit 2) on an unknown rule or option, before any data is generated (the name before torch)."""
    from spiking_rhm.cli.rule_table import check_rule_names

    check_rule_names([cfg.rule])
    if cfg.backend in ("rate", "norse-converted"):  # norse-converted trains on the rate back end
        from rate_models.train import build_rule

        build_rule(cfg)
    else:
        from spiking_rhm.api import backend_option_names
        from spiking_rhm.rules import get_rule

        own = backend_option_names(cfg.backend)
        get_rule(cfg.rule, **{k: v for k, v in cfg.rule_options.items() if k not in own | {"readout"}})


@click.command()
def rules():
    """List the registered rules: name, family, supervised?, summary."""
    for line in rule_lines():
        click.echo(line)


def rule_lines(static: bool = True) -> list[str]:
    """The lines of `spiking-rhm rules`: from the rule sources without torch when ``static`` and possible
    (:mod:`spiking_rhm.cli.rule_table`), else from the registry."""
    from spiking_rhm.cli.rule_table import rule_rows

    rows = rule_rows() if static else None
    if rows is None:
        from spiking_rhm.rules import available_rules

        rows = [(name, cls.family, cls.supervised, cls.summary) for name, cls in available_rules().items()]
    width = max(len(row[0]) for row in rows)
    return [f"{name:<{width}}  {family:<16} {'supervised' if sup else 'unsupervised':<12}  {summary}"
            for name, family, sup, summary in rows]


COMMANDS = [train, rules]
