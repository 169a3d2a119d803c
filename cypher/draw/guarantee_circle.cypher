// name: guarantee_circle
// purpose: Draws the guarantee circle (担保圈) of a customer in Neo4j Browser: the members (every
//   customer that guarantees it and is guaranteed by it through chains of guarantees) and each
//   guarantee between two members, as paths the Browser draws. Nothing when the customer is in
//   no circle. With as_of, the guarantees the input had at the end of that date.
// params: customer_id (string, C0000182), as_of (date?, 2026-01-31, default null)
// columns: path
// example: graphkit cypher browser (then the guarantee_circle slide, "Draw it")
MATCH (c:Customer {customer_id: $customer_id})
MATCH (c)-[gs:GUARANTEES*1..]->(m:Customer)
WHERE all(g IN gs WHERE coalesce(date(g.valid_from) <= date($as_of), true) AND coalesce(date(g.valid_to) > date($as_of), g.valid_to IS NULL))
  AND EXISTS { (m)-[hs:GUARANTEES*1..]->(c) WHERE all(g IN hs WHERE coalesce(date(g.valid_from) <= date($as_of), true) AND coalesce(date(g.valid_to) > date($as_of), g.valid_to IS NULL)) }
WITH collect(DISTINCT m) AS members
UNWIND members AS a
MATCH path = (a)-[g:GUARANTEES]->(b:Customer)
WHERE b IN members AND coalesce(date(g.valid_from) <= date($as_of), true) AND coalesce(date(g.valid_to) > date($as_of), g.valid_to IS NULL)
RETURN path
