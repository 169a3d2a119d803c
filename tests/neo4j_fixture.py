"""Pytest plugin with the real-Neo4j fixtures (load it with ``-p tests.neo4j_fixture``).

* ``neo4j_server`` (session): one server for the whole run, started lazily by the first test that
  asks for it, with auth off. When ``NEO4J_URI`` is set, that server is used instead, with
  ``NEO4J_USER`` (default ``neo4j``) and ``NEO4J_PASSWORD`` (no password = auth off).
  ``GRAPHKIT_NEO4J_HEAP`` and ``GRAPHKIT_NEO4J_PAGECACHE`` size the server started here.
* ``neo4j_driver`` (function): a driver to that server, with the database wiped (all nodes,
  relationships, constraints and indexes) before the test. Against ``NEO4J_URI`` this wipes that
  server's default database too: point it only at a throwaway server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import neo4j
import pytest

from graphkit.store.neo4j_server import Neo4jServer

__all__ = ["Neo4jConnection", "neo4j_driver", "neo4j_server", "wipe_database"]


@dataclass(frozen=True)
class Neo4jConnection:
    """Where the test Neo4j server is: a Bolt URI and the driver's ``auth`` (or ``None``)."""

    uri: str
    # Kept out of repr so that a failing assertion never prints the password.
    auth: tuple[str, str] | None = field(default=None, repr=False)


def _external_connection() -> Neo4jConnection | None:
    uri = os.environ.get("NEO4J_URI")
    if not uri:
        return None
    password = os.environ.get("NEO4J_PASSWORD")
    user = os.environ.get("NEO4J_USER") or "neo4j"
    return Neo4jConnection(uri=uri, auth=(user, password) if password else None)


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[Neo4jConnection]:
    """The Neo4j server shared by the whole test session."""
    external = _external_connection()
    if external is not None:
        yield external
        return
    server = Neo4jServer()
    server.start(
        heap=os.environ.get("GRAPHKIT_NEO4J_HEAP", "1g"),
        pagecache=os.environ.get("GRAPHKIT_NEO4J_PAGECACHE", "256m"),
    )
    try:
        yield Neo4jConnection(uri=server.uri, auth=server.auth)
    finally:
        server.stop()


def _quote(name: str) -> str:
    """Quote a schema name as a Cypher identifier."""
    return "`" + name.replace("`", "``") + "`"


def wipe_database(driver: neo4j.Driver) -> None:
    """Delete every node and relationship, every constraint and every non-lookup index."""
    with driver.session() as session:
        # Batched so a large graph left by an earlier test does not need one huge transaction.
        session.run(
            "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
        ).consume()
        constraints = [record["name"] for record in session.run("SHOW CONSTRAINTS YIELD name")]
        for name in constraints:
            session.run(f"DROP CONSTRAINT {_quote(name)} IF EXISTS").consume()
        # Token lookup indexes are the built-in ones every database starts with; keep them.
        indexes = [
            record["name"]
            for record in session.run("SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP'")
        ]
        for name in indexes:
            session.run(f"DROP INDEX {_quote(name)} IF EXISTS").consume()


@pytest.fixture
def neo4j_driver(neo4j_server: Neo4jConnection) -> Iterator[neo4j.Driver]:
    """A driver to the session's Neo4j server, whose database is empty when the test starts."""
    with neo4j.GraphDatabase.driver(neo4j_server.uri, auth=neo4j_server.auth) as driver:
        wipe_database(driver)
        yield driver
