"""Batch layer: raw-lake delivery, the nightly staging job and curated tables."""
