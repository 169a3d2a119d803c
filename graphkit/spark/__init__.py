"""graphkit's Spark engine (``graphkit run --engine spark``; docs/spark.md).

A library layer like :mod:`graphkit.analytics`: each module computes one stage on Spark
DataFrames, calling the embedded kernels on the executors wherever the work splits into
independent pieces, and returns the embedded engine's result type. pyspark is imported lazily,
so graphkit imports without the ``spark`` extra.
"""
