"""graphkit: a graph-analytics risk-network engine for post-loan management of revolving credit."""

__version__ = "0.1.0"
