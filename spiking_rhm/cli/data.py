"""Data commands: ``spiking-rhm info`` and ``spiking-rhm generate``.

``info`` prints the size of an RHM (d, P_max, n_c m^L) and whether the parameters are
valid; ``generate`` draws a grammar and writes datapoints to an ``.npz`` file (written to a
temporary file in the same directory, then renamed, so a failure leaves no partial file).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from spiking_rhm.atomic import atomic_write, writable_path
from spiking_rhm.errors import ConfigError, RHMParameterError

MAX_POINTS = 20_000_000  # largest P + P_test written to one npz


def _rhm_options(func):
    for name, help_text in reversed(
        [("v", "vocabulary size (symbols per level)"), ("m", "synonyms per symbol"), ("nc", "number of classes n_c"),
         ("s", "tuple size (branching factor)"), ("L", "depth")]
    ):
        func = click.option(f"--{name}", name, type=int, required=True, help=help_text)(func)
    return func


@click.command()
@_rhm_options
def info(v: int, m: int, nc: int, s: int, L: int) -> None:
    """Print d, P_max, n_c m^L and whether (v, m, n_c, s, L) is a valid RHM."""
    from spiking_rhm.rhm import RHMParams

    click.echo(f"(v, m, n_c, s, L) = ({v}, {m}, {nc}, {s}, {L})")
    try:
        params = RHMParams(v, m, nc, s, L)
    except RHMParameterError:
        click.echo("valid: no")
        raise
    scale = params.scale
    click.echo(f"d = s^L = {params.d}")
    click.echo(f"P_max = n_c m^((s^L-1)/(s-1)) = {params.P_max}" + ("  (> 2^63)" if params.P_max >= 2**63 else ""))
    click.echo(f"n_c m^L = {scale}")
    click.echo(f"P_max / (n_c m^L) = {params.P_max / scale:.6g}")
    click.echo("valid: yes")


def _write_npz_atomically(out: Path, arrays: dict) -> None:
    """Write ``arrays`` to ``out`` atomically (:func:`spiking_rhm.atomic.atomic_write`)."""
    atomic_write(out, lambda handle: np.savez(handle, **arrays))


@click.command()
@_rhm_options
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the rule draw")
@click.option("--P", "P", required=True, help="training points: 1000, '4x' (times n_c m^L) or 'max' (all, index order)")
@click.option("--P-test", "P_test", type=int, default=0, show_default=True, help="test points (disjoint)")
@click.option("--split-seed", type=int, default=0, show_default=True, help="seed of the train/test draw")
@click.option("--tree", is_flag=True, help="also write the hidden symbols of every level (tree_level_<l>)")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="output .npz file")
def generate(v: int, m: int, nc: int, s: int, L: int, seed: int, P: str, P_test: int, split_seed: int,
             tree: bool, out: Path) -> None:
    """Draw an RHM grammar and write datapoints to an npz file.

    Arrays: inputs (int64 [N, d]), labels (int64 [N]), choices (int64 [N, n_nodes]); with
    --P-test also test_inputs, test_labels, test_choices; with --tree, tree_level_<l>
    ([N, s^l], level 0 = class, level L = input; test_tree_level_<l> for the test set);
    the parameters and seeds as scalars (P_max as a string: it may exceed 2^63).
    """
    from spiking_rhm.config import resolve_size
    from spiking_rhm.rhm import RHM

    writable_path(out, ConfigError, "the data file ")
    rhm = RHM(v, m, nc, s, L, seed=seed)
    n_train = resolve_size(P, rhm)
    if P_test < 0:
        raise RHMParameterError(f"--P-test must be >= 0, got {P_test}")
    if n_train + P_test > rhm.P_max:
        raise RHMParameterError(
            f"P + P_test = {n_train} + {P_test} exceeds P_max = {rhm.P_max} for (v, m, n_c, s, L) = "
            f"{rhm.params.astuple()}; train and test sets must be disjoint"
        )
    if n_train + P_test > MAX_POINTS:
        raise RHMParameterError(
            f"P + P_test = {n_train + P_test} points is more than {MAX_POINTS} for one npz file; "
            "stream large sets with RHM.stream instead"
        )
    if str(P).strip().lower() == "max":
        train, test = rhm.full(), None  # index order
    else:
        train, test = rhm.split(n_train, P_test, split_seed)
    arrays = {"inputs": train.inputs, "labels": train.labels, "choices": train.choices}
    if P_test:
        arrays.update(test_inputs=test.inputs, test_labels=test.labels, test_choices=test.choices)
    if tree:
        for level, symbols in enumerate(rhm.tree(train)):
            arrays[f"tree_level_{level}"] = symbols
        if P_test:
            for level, symbols in enumerate(rhm.tree(test)):
                arrays[f"test_tree_level_{level}"] = symbols
    arrays.update({k: np.int64(x) for k, x in dict(v=v, m=m, n_c=nc, s=s, L=L, seed=seed, split_seed=split_seed,
                                                     P=n_train, P_test=P_test).items()})
    arrays["P_max"] = np.array(str(rhm.P_max))
    _write_npz_atomically(out, arrays)
    click.echo(f"wrote {out}: {n_train} training" + (f" + {P_test} test" if P_test else "")
               + f" points of (v, m, n_c, s, L) = {rhm.params.astuple()}, rule seed {seed}")


COMMANDS = [info, generate]
