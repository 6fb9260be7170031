"""Benchmarks behind `samestyle bench <name>`: one module per benchmark, each exposing a
click command named `command` that the `bench` group in samestyle.cli.bench collects."""
