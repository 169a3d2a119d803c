// Constraints and indexes graphkit creates before loading (Neo4jTarget.ensure_schema).
// Generated from graphkit/schema.py by graphkit.store.neo4j.schema_cypher();
// regenerate with `graphkit cypher schema > cypher/schema.cypher`.
CREATE CONSTRAINT customer_customer_id_unique IF NOT EXISTS FOR (n:`Customer`) REQUIRE n.`customer_id` IS UNIQUE;
CREATE CONSTRAINT creditline_line_id_unique IF NOT EXISTS FOR (n:`CreditLine`) REQUIRE n.`line_id` IS UNIQUE;
CREATE CONSTRAINT account_account_id_unique IF NOT EXISTS FOR (n:`Account`) REQUIRE n.`account_id` IS UNIQUE;
CREATE CONSTRAINT merchant_merchant_id_unique IF NOT EXISTS FOR (n:`Merchant`) REQUIRE n.`merchant_id` IS UNIQUE;
CREATE CONSTRAINT sector_sector_unique IF NOT EXISTS FOR (n:`Sector`) REQUIRE n.`sector` IS UNIQUE;
CREATE CONSTRAINT device_device_id_unique IF NOT EXISTS FOR (n:`Device`) REQUIRE n.`device_id` IS UNIQUE;
CREATE CONSTRAINT cluster_cluster_id_unique IF NOT EXISTS FOR (n:`Cluster`) REQUIRE n.`cluster_id` IS UNIQUE;
CREATE CONSTRAINT circle_circle_id_unique IF NOT EXISTS FOR (n:`Circle`) REQUIRE n.`circle_id` IS UNIQUE;
CREATE CONSTRAINT riskrun_run_id_unique IF NOT EXISTS FOR (n:`RiskRun`) REQUIRE n.`run_id` IS UNIQUE;
CREATE CONSTRAINT graphload_as_of_unique IF NOT EXISTS FOR (n:`GraphLoad`) REQUIRE n.`as_of` IS UNIQUE;
CREATE INDEX guarantees_row_key_index IF NOT EXISTS FOR ()-[n:`GUARANTEES`]-() ON (n.`row_key`);
CREATE INDEX drawdown_drawdown_id_index IF NOT EXISTS FOR ()-[n:`DRAWDOWN`]-() ON (n.`drawdown_id`);
CREATE INDEX transfer_transfer_id_index IF NOT EXISTS FOR ()-[n:`TRANSFER`]-() ON (n.`transfer_id`);
CREATE INDEX drawdown_device_id_index IF NOT EXISTS FOR ()-[n:`DRAWDOWN`]-() ON (n.`device_id`);
CREATE INDEX transfer_ts_index IF NOT EXISTS FOR ()-[n:`TRANSFER`]-() ON (n.`ts`);
CREATE INDEX customer_tier_index IF NOT EXISTS FOR (n:`Customer`) ON (n.`tier`);
CREATE INDEX customer_ring_id_index IF NOT EXISTS FOR (n:`Customer`) ON (n.`ring_id`);
