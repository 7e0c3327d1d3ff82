"""Checkers for the code a learner writes (filled in by issue 11's work in progress)."""
