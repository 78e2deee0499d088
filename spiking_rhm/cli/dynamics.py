"""``spiking-rhm dynamics``: record a short Norse run and save figures of its plasticity dynamics."""

from __future__ import annotations

import json

import click


@click.command("dynamics")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML/YAML/JSON run config (options below override it)")
@click.option("--rule", default=None, help="learning rule (e.g. dfa, clapp)")
@click.option("--backend", type=click.Choice(["norse", "brian2"]), default="norse", show_default=True,
              help="brian2: one presentation with the config's neuron model (docs/brian2.md)")
@click.option("--neuron", default=None, help="brian2 neuron model: lif | cond | adex | two-compartment")
@click.option("--v", type=int, default=None)
@click.option("--m", type=int, default=None)
@click.option("--nc", "--n-c", "n_c", type=int, default=None, help="number of classes")
@click.option("--s", type=int, default=None)
@click.option("--L", "L", type=int, default=None)
@click.option("--P", "P", default=None, help="training points: 1000, '4x' or 'max'")
@click.option("--width", type=int, default=None)
@click.option("--T", "T", type=int, default=None, help="time steps per presentation")
@click.option("--code", default=None, help="spike code: rate | latency | population")
@click.option("--delay", type=int, default=None, help="silent steps between the views of a pair")
@click.option("--seed", type=int, default=None)
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="rule/back-end option (value parsed as JSON when possible), repeatable")
@click.option("--steps", type=int, default=20, show_default=True, help="training batches to record")
@click.option("--synapses", type=int, default=6, show_default=True, help="synapses per layer to follow")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="folder for the PNG files")
def dynamics(config_path, rule, backend, neuron, v, m, n_c, s, L, P, width, T, code, delay, seed, options, steps, synapses, out):
    """Spike rasters, membrane potentials, eligibility traces, modulator and weights of a Norse run."""
    from spiking_rhm.atomic import output_dir
    import numpy as np

    from spiking_rhm.cli.options import note_default_rhm, set_path
    from spiking_rhm.config import RunConfig, load_config_file
    from spiking_rhm.errors import ConfigError

    output_dir(out, ConfigError, "the figure ")
    if steps < 1 or synapses < 1:
        raise ConfigError(f"--steps and --synapses must be >= 1, got {steps} and {synapses}")
    data = load_config_file(config_path) if config_path else {}
    data["backend"] = backend
    rhm = dict(data.get("rhm", {}))
    for key, value in (("v", v), ("m", m), ("n_c", n_c), ("s", s), ("L", L)):
        if value is not None:
            rhm[key] = value
    data["rhm"] = rhm
    if rule is not None:
        data["rule"] = rule
    if P is not None:
        data["P"] = int(P) if P.isdigit() else P
    if seed is not None:
        data["seed"] = seed
    if width is not None:
        data["net"] = {**data.get("net", {}), "width": width}
    spk = dict(data.get("spiking", {}))
    for key, value in (("T", T), ("code", code), ("delay", delay), ("neuron", neuron)):
        if value is not None:
            spk[key] = value
    data["spiking"] = spk
    opts = dict(data.get("rule_options", {}))
    for item in options:
        if "=" not in item:
            raise ConfigError(f"--option takes KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
        if key.startswith("spiking."):  # a spiking setting (e.g. spiking.neuron_options.a=0.1)
            set_path(data, key.split("."), value)
        else:
            opts[key] = value
    data["rule_options"] = opts
    if "P_test" not in data:
        data["P_test"] = 0
    cfg = RunConfig.from_dict(data)
    cfg.sizes()
    note_default_rhm(data, given=any(k in rhm for k in ("v", "m", "n_c", "s", "L")))
    if backend == "brian2":
        from spiking_rhm.backends.brian2.dynamics import plot_dynamics as plot_brian2
        from spiking_rhm.backends.brian2.dynamics import record_dynamics as record_brian2

        rec = record_brian2(cfg, n_synapses=synapses)
        click.echo(str(plot_brian2(rec, out)))
        click.echo(f"neuron {rec.model}: layer-1 neurons {rec.neurons.tolist()} fired "
                   f"{[int(x) for x in rec.spikes.sum(0)]} spikes in {rec.T} steps; synapses {rec.synapses.tolist()}: "
                   f"eligibility at the window's end {np.round(rec.elig[:, rec.T - 1], 4).tolist()}, gradient "
                   f"{np.round(rec.grad, 5).tolist()}")
        return
    from spiking_rhm.backends.norse.dynamics import plot_dynamics, record_dynamics

    record = record_dynamics(cfg, steps=steps, n_synapses=synapses)
    for path in plot_dynamics(record, out):
        click.echo(str(path))
    e = record.energy
    click.echo(f"per inference (last batch, T = {e['steps']}): layer, spikes, synaptic ops, active units, "
               "rate (Hz), largest fraction firing in one step")
    for row in zip(e["layers"], e["spikes"], e["synops"], e["active"], e["rate_hz"], e["max_step_fraction"]):
        click.echo("  {}: {:.1f} spikes, {:.0f} synops, {:.0%} active, {:.1f} Hz, {:.0%} in one step".format(*row))
    click.echo(f"  total: {e['spikes_total']:.1f} hidden spikes, {e['synops_total']:.0f} synaptic ops")


@click.command("response")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="run config (TOML/YAML/JSON) whose spiking section gives the operating point")
@click.option("--option", "options", multiple=True, metavar="spiking.KEY=VALUE",
              help="override a spiking setting, e.g. spiking.v_rest=0.5 (repeatable)")
@click.option("--compare", "compare", multiple=True, metavar="KEY=VALUE[,KEY=VALUE]",
              help="another operating point to draw beside it, e.g. 'v_rest=none,reset=zero,v_init=rest'")
@click.option("--a-max", "a_max", type=click.FloatRange(min=0.0, min_open=True), default=1.0, show_default=True,
              help="largest pre-activation a drawn (the curve runs from -a_max / 4)")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="PNG file to write")
def response(config_path, options, compare, a_max, out):
    """Rate-to-spike response curve (count vs constant drive) of the spiking operating point."""
    import torch

    from spiking_rhm.backends.norse.response import curves_for, describe_point, plot_response, summary
    from spiking_rhm.cli.options import parse_option, set_path
    from spiking_rhm.config import RunConfig, load_config_file
    from spiking_rhm.errors import ConfigError

    data = load_config_file(config_path) if config_path else {}
    for item in options:
        path, value = parse_option(item)
        if path[0] != "spiking":
            raise ConfigError(f"--option {item!r}: only spiking.KEY settings shape the response curve")
        set_path(data, path, value)
    base = RunConfig.from_dict(data).spiking
    variants = {f"{describe_point(base)} (this config)": {}}
    for item in compare:
        changes = {}
        for part in item.split(","):
            path, value = parse_option(part)
            key = path[-1]
            if len(path) > 2 or (len(path) == 2 and path[0] not in ("rule_options", "spiking")):
                raise ConfigError(f"--compare {item!r}: give spiking settings as KEY=VALUE")
            changes[key] = value
        sp = RunConfig.from_dict({**data, "spiking": {**data.get("spiking", {}), **changes}}).spiking
        variants[describe_point(sp)] = changes
    curves = curves_for(base, variants, torch.linspace(-a_max / 4, a_max, 501, dtype=torch.float64))
    for c in curves:
        s = summary(c)
        click.echo(f"{c.label}: rheobase a = {s['rheobase']}, counts at a = "
                   + ", ".join(f"{k}: {v:g}" for k, v in s["counts_at"].items()) + f" (max {s['max_count']:g})")
    click.echo(str(plot_response(curves, out)))


COMMANDS = [dynamics, response]
