"""currents-wizard: mirror Currents on-prem images into your own registry."""

__version__ = "0.1.0"
