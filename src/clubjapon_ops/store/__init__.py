"""The store: the only package that writes SQL."""

from clubjapon_ops.store.database import Store, open_store

__all__ = ["Store", "open_store"]
