"""The SQLite catalogue of every run: search, curation, health samples, and sync from the bucket."""

from catalog.catalog import Catalog
from catalog.schema import CatalogError
from catalog.search import Filters, SearchResult
from catalog.sync import SyncReport, sync

__all__ = ["Catalog", "CatalogError", "Filters", "SearchResult", "SyncReport", "sync"]
