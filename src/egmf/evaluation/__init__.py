"""Metrics exactly as papers report them, aggregation over seeds, plots."""
