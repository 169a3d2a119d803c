"""Graph stores: the embedded Parquet snapshot (default) and Neo4j."""
