"""Benchmarks that print figures (``sleepstack bench ingest|speed|batch``); ratios are taken within one run.

:mod:`~sleepstack.bench.fixtures` holds what they share: the simulated records, the
settings of a private benchmark home and a private kinesalite.
"""
