"""Throwaway services for tests, benchmarks and trying wearflow out; not part of the product.

This package may import the product; the product never imports it.
"""

from __future__ import annotations

from wearflow.testing.postgres import create_database, postgres_bin, throwaway_postgres

__all__ = ["create_database", "postgres_bin", "throwaway_postgres"]
