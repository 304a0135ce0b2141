"""Ingest: device records into the Kinesis stream."""
