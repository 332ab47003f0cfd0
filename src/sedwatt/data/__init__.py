"""DESED data: layout, TSV parsing and validation, audio reading, label encoding, datasets, sampling."""
