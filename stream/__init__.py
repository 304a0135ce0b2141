"""Reading the Kinesis stream as a checkpointed consumer (shared by the local poller and delivery)."""
