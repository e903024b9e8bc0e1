"""Lightning callbacks, presets and command-line tools for the JWB-DH-V1 metrics in :mod:`metrics`."""

__version__ = "0.1.0"
