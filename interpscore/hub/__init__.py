"""Submitting one SAE of a report: its ``interpscore.json`` (the leaderboard notebook's
schema) and chart to a Hugging Face repository, and its line for the leaderboard site."""
