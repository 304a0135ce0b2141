"""sleepstack's pure core: record contract, signal processing, vitals, staging, metrics.

Only numpy, scipy and pandas (and the standard library) may be imported here: no boto3,
pyspark, bleak, opensearch-py, no file or network I/O, no environment reads.
``tests/test_core_purity.py`` enforces this.
"""
