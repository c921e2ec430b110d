"""Side-by-side benchmarks (`make bench`); figures go to benchmarks/RESULTS.md, never to tests."""
