"""synthvu benchmarks: ``python -m benchmarks [--quick] [--long] [--only NAME]``; see benchmarks/README.md."""
