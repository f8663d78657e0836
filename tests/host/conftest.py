"""Tests of what a host application meets: lifecycle, the pytest plugin, packaging, the API."""

from __future__ import annotations
