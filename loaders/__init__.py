"""Input loaders: read and validate input directories, import FinBench, generate synthetic data."""
