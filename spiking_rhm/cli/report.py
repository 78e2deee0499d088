"""``spiking-rhm report DIR...``: the P* table and the per-P summary of result directories (Markdown, CSV)."""

from __future__ import annotations

import click

from spiking_rhm.errors import ConfigError


@click.command("report")
@click.argument("directories", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", type=click.Path(dir_okay=False), help="write the Markdown here instead of printing it")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="write the per-P summary as CSV")
@click.option("--pstar-csv", type=click.Path(dir_okay=False), help="write the P* table as CSV")
@click.option("--ratio-to", metavar="RULE", help="add P*(rule) / P*(RULE) per rule and setting, with a paired "
                                                 "bootstrap interval over the shared (grammar, seed) pairs")
@click.option("--ratio-csv", type=click.Path(dir_okay=False), help="write the --ratio-to table as CSV")
@click.option("--eps", type=float, default=0.1, show_default=True, help="test-error threshold of P*")
@click.option("--boot", type=int, default=2000, show_default=True, help="bootstrap resamples over seeds")
@click.option("--confidence", type=float, default=0.9, show_default=True, help="coverage of the bootstrap interval")
@click.option("--scoring", type=click.Choice(["recorded", "online", "probe"]), default="recorded", show_default=True,
              help="test error of the record, of the rule's own online readout, or of the linear probe")
def report_command(directories, out, csv_path, pstar_csv, ratio_to, ratio_csv, eps, boot, confidence, scoring):
    """P* table and per-P test/train errors of result directories, as Markdown (and CSV)."""
    from spiking_rhm.atomic import atomic_write_text, writable_path

    from experiments.report import PSTAR_COLUMNS, RATIO_COLUMNS, SUMMARY_COLUMNS, build_report, to_csv

    if ratio_csv and not ratio_to:
        raise ConfigError("--ratio-csv needs --ratio-to RULE")
    for path in (out, csv_path, pstar_csv, ratio_csv):
        if path:
            writable_path(path, ConfigError)
    result = build_report(directories, eps=eps, n_boot=boot, confidence=confidence, scoring=scoring,
                          ratio_to=ratio_to)
    text = result.markdown()
    writes = [(out, text), (csv_path, to_csv(result.summary, SUMMARY_COLUMNS)),
              (pstar_csv, to_csv(result.pstar, PSTAR_COLUMNS)), (ratio_csv, to_csv(result.ratios, RATIO_COLUMNS))]
    if not out:
        click.echo(text, nl=False)
    for path, content in writes:
        if path:
            atomic_write_text(path, content)
            click.echo(f"wrote {path}", err=bool(not out))


COMMANDS = [report_command]
