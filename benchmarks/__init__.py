"""Speed benchmarks: our code against a baseline measured in the same process, reported as ratios."""
