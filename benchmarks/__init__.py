"""The tracec vs TRACER benchmark harness (run with ``python -m benchmarks.run``)."""
