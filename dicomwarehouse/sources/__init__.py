"""What a run reads: the objects that directories, globs, bucket URLs and manifests name.

- ``expand``: the user's sources into one de-duplicated list of objects (local walk);
- ``listing``: bucket URLs, globs and manifest entries into objects, listing stores as needed;
- ``manifests``: the manifest formats (URL lists, s5cmd, CSV/TSV/Parquet, S3 and GCS inventories).
"""
