"""Item catalogs: readers for catalog files (:mod:`.readers`, by format) and the shared datasets
(:mod:`.datasets`, by name)."""

from agentictagger.catalog.readers import MAX_LISTED_PROBLEMS, Catalog, CatalogError, Item, read_sequences, truncate_text  # noqa: F401
from agentictagger.catalog.datasets import (  # noqa: F401  (registers the shared datasets' loaders)
    LCREC_LABEL_LEVEL,
    SHARED_DATASETS,
    load_sequences,
    load_shared,
    scientific_label,
    shared_data_root,
)
