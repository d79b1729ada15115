"""Data: NIfTI ingestion, VU extraction, the spine phantom and VU datasets."""
