#!/usr/bin/env bash
# Optional extra: lava-nc 0.10.0 on Python 3.11.
# lava-nc declares python <3.11, so pip must be told to ignore that and to skip its
# pinned dependencies; the ones it needs are installed next.  The 3.11 dataclass fix is
# applied at import time by hardware.lava_shim (nothing installed is edited).
set -euo pipefail
pip install --no-deps --ignore-requires-python lava-nc==0.10.0
pip install -c "$(dirname "$0")/../constraints.txt" scipy "asteval<1.1" networkx
