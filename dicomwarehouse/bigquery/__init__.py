"""Publishing a warehouse to BigQuery: schemas, the publish plan, load jobs and views.

The modules are cut by stage, and only ``clients`` (and what calls it) imports the Google
Cloud libraries, lazily, so ``dicomwarehouse sql`` and ingest never need them:

- ``schema_files``: the generated ``schemas/`` folder (``python -m
  dicomwarehouse.bigquery.schema_files``);
- ``layout``: what a warehouse folder (local or gs://) holds: runs, shards, run schemas;
- ``sql``: the views of ``sql/`` qualified with the dataset, and the current-state views;
- ``plan``: everything a publish will do, computed without credentials (``--dry-run``);
- ``jobs``: the plan as google-cloud-bigquery objects (LoadJobConfig, Table, Dataset);
- ``clients``: the thin interface over google.cloud.bigquery (storage: ``objectstore``);
- ``publish``: carrying out a plan through that interface.

The BigQuery JSON schemas themselves are part of the table contract (``tables.bigquery_schema``);
the Beam options that publish at the end of an ingest are the pipeline's
(``pipeline.publish_options``).
"""

__all__: list[str] = []
