// name: guarantee_circle
// purpose: Draws the guarantee circle (担保圈) of a customer in Neo4j Browser: the members (every
//   customer that guarantees it and is guaranteed by it through chains of guarantees) and each
//   guarantee between two members, as paths the Browser draws. Nothing when the customer is in
//   no circle.
// params: customer_id (string, C0000182)
// columns: path
// example: graphkit cypher browser (then the guarantee_circle slide, "Draw it")
MATCH (c:Customer {customer_id: $customer_id})
MATCH (c)-[:GUARANTEES*1..]->(m:Customer)
WHERE EXISTS { (m)-[:GUARANTEES*1..]->(c) }
WITH collect(DISTINCT m) AS members
UNWIND members AS a
MATCH path = (a)-[:GUARANTEES]->(b:Customer)
WHERE b IN members
RETURN path
