"""Local stand-ins for the AWS services, one module per role.

| module | stands in for |
|---|---|
| :mod:`local.kinesis` | Kinesis Data Streams (kinesalite on loopback), streams from the template |
| :mod:`local.shard_reader` | the Kinesis consumer side: checkpointed per-shard reading |
| :mod:`local.event_source_mapping` | Lambda's Kinesis event source mapping |
| :mod:`local.live_store` | OpenSearch (embedded SQLite store of the same documents) |
| :mod:`local.state_store` | the speed layer's DynamoDB state table |
| :mod:`local.firehose`, :mod:`local.compaction` | Firehose delivery to S3, and small-file compaction |
| :mod:`local.spark` | Glue's Spark (PySpark ``local[*]``) |
| :mod:`local.duckdb_sql` | Athena over the Glue catalog (DuckDB views, sqlglot) |
| :mod:`local.template` | reads ``infra/template.yaml`` so the stand-ins mirror the deployed stack |
| :mod:`local.supervisor` | what keeps them running locally: start, watch, restart with backoff, stop |

Nothing here is shipped to AWS; the composition root (:mod:`sleepstack.wiring`) picks
these or the real services.
"""
