"""ICM engine: Internal Coherence Maximization (Wen et al. 2025) as a plain Python library.

It never imports Django; the web app is one of its clients.
"""

import os

# Before anything imports torch or a hub client: never download at run time, and keep idle
# OpenMP threads from spinning on a shared 2-core machine.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
