"""Sweeps and checks behind the claims of arXiv 2605.18557 (see README.md here and docs/results.md)."""
