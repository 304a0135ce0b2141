"""Training and evaluating the staging model against polysomnography (grouped by subject)."""
