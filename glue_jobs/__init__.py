"""AWS Glue entry points."""
