"""``python -m spiking_rhm.cli``: the ``spiking-rhm`` command."""

from spiking_rhm.cli import main

main()
