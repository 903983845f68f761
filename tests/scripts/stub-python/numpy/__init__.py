"""A stand-in for numpy beside the stub torch (see ../torch/__init__.py): the
facts probe of scripts/device-check.sh reads its version, nothing more."""

__version__ = "0.0+stub"
