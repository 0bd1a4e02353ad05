"""Benchmarks (not tests: pytest collects no bench_*.py). A package so that the pipeline
benchmark (`python -m tests.bench.pipeline`) can import the component benches."""
