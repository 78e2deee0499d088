"""Hardware side of spiking-rhm: NIR export/import, Lava deployment, the Python 3.11 Lava shim.

Nothing here is imported by ``spiking_rhm``; Lava stays an optional extra.
"""
