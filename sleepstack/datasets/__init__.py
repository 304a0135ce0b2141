"""Readers of the reference datasets (``../shared/data``): sleep-accel PSG nights and RR-interval files.

Kept apart from the runtime packages, as sleepecg keeps its ``io``; they raise
:class:`core.errors.DatasetError` naming the file for anything malformed.
"""
