"""Hardware side of spiking-rhm: NIR export/import, Lava (Loihi 2 simulation) deployment and on-chip
learning, and the Python 3.11 Lava shim (``docs/hardware.md``).

* :mod:`hardware.nir_graph`       trained networks <-> NIR graphs (nir 1.0.8);
* :mod:`hardware.loihi.network`   NIR chain -> Lava processes, float or bit-accurate fixed point;
* :mod:`hardware.loihi.fixed_point` Loihi integer parameters and a numpy model of Lava's integer LIF;
* :mod:`hardware.loihi.learning`  one presentation of the three-factor rule on Lava's learning engine;
* :mod:`hardware.deploy`          Norse vs Lava float vs Loihi fixed point on the same spikes;
* :mod:`hardware.lava_shim`       the import hook that lets lava-nc 0.10.0 run on Python 3.11.

Nothing here is imported by ``spiking_rhm``; Lava stays an optional extra, imported only when a
Lava function runs.
"""
