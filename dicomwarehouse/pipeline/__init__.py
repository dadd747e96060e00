"""The ingest job: plan a run, run it as an Apache Beam pipeline, commit and publish it.

- ``options``: the ingest's options, declared once for the command line, the job and the
  template's metadata.json;
- ``run``: one ingest end to end (what ``dicomwarehouse ingest`` and the Beam job call);
- ``transforms``: the Beam pipeline (Beam is imported only in this package);
- ``finish``: the pipeline's last step, which commits the run and publishes when asked;
- ``publish_options``: the Beam pipeline options that publish to BigQuery at the end;
- ``job``: the entry point for launchers (Dataflow Flex Template, schedulers).
"""
