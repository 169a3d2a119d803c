"""Neo4j session fixtures (being written)."""
