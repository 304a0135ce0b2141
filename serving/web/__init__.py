"""The dashboard: live views of the speed layer's documents, night reports from the curated tables."""
