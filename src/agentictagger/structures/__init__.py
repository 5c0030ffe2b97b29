"""The data a run produces, as plain data structures with JSON/Parquet round-trips: the
vocabulary (a descriptor tree), the assignment (item -> descriptor path) and the semantic-ID table
(path + resolver per item). Nothing here knows how they were made."""
