"""Compatibility shim: the project is configured in pyproject.toml (PEP 621)."""

from setuptools import setup

setup()
