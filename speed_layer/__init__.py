"""Speed layer: the Lambda on the Kinesis stream, its local event-source poller and stores."""
