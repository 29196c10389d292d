"""Buying groups: the completeness and engagement scores (pure), changes made by hand, and reports."""
