"""Command line interface: ``spiking-rhm <command>``.

The group lives here; each subsystem adds its commands from its own module
(``data``, ``train``, ``experiments``, ``dynamics``) so that heavy imports stay
inside the commands and ``spiking-rhm --help`` is fast.  Any
:class:`~spiking_rhm.errors.SpikingRHMError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from spiking_rhm import __version__
from spiking_rhm.errors import SpikingRHMError

# Modules that register commands on the group; a missing one is skipped so that a
# partial checkout still offers the rest.
COMMAND_MODULES = ("data", "train", "experiments", "dynamics", "hardware", "report")


def _one_line_error(err: click.ClickException) -> None:
    """Click's own errors (bad option values, unknown options or commands) as one line, exit 2."""
    message = " ".join(err.format_message().split())
    ctx = getattr(err, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    click.echo(f"error: {message}{hint}", err=True)
    sys.exit(err.exit_code)


class _Group(click.Group):
    """Click group that turns user errors into one clean line and exit code 2."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.ClickException as err:
            _one_line_error(err)

    def invoke(self, ctx):
        from experiments.sweep import SweepInterrupted

        try:
            return super().invoke(ctx)
        except SpikingRHMError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.ClickException as err:
            _one_line_error(err)
        except SweepInterrupted as err:
            click.echo(str(err), err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: finished results are kept; rerun the same command to resume", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spiking-rhm")
def cli() -> None:
    """spiking-rhm: local plasticity rules, rate and spiking, on the Random Hierarchy Model."""


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"spiking_rhm.cli.{_name}")
    except ModuleNotFoundError as _err:  # pragma: no cover - only while a subsystem is missing
        if _err.name != f"spiking_rhm.cli.{_name}":
            raise
        continue
    for _command in getattr(_module, "COMMANDS", ()):
        cli.add_command(_command)


def main() -> None:
    """Entry point of the ``spiking-rhm`` script."""
    cli(prog_name="spiking-rhm")
