// name: device_ring
// purpose: The device-sharing ring of a customer (latest run's ring_id) and, for each member,
//   the shared devices that tie it in: devices it used (linked, or a drawdown on its lines
//   made from it) that between min_customers and max_customers distinct customers used
//   (the run's rings.min_customers_per_device and max_customers_per_device).
// params: customer_id (string, C0000691),
//   min_customers (int, 3, default rings.min_customers_per_device),
//   max_customers (int, 50, default rings.max_customers_per_device)
// columns: ring_id, customer_id, name, tier, shared_device_count, shared_devices
// example: graphkit cypher run device_ring --param customer_id=C0000691
MATCH (c:Customer {customer_id: $customer_id})
WHERE c.ring_id IS NOT NULL
MATCH (m:Customer {ring_id: c.ring_id})
CALL (m) {
  MATCH (m)-[:USES_DEVICE]->(d:Device)
  RETURN d.device_id AS device
  UNION
  MATCH (m)-[:HAS_LINE]->(:CreditLine)-[dd:DRAWDOWN]->(:Account)
  WHERE dd.device_id IS NOT NULL
  RETURN dd.device_id AS device
}
CALL (device) {
  CALL (device) {
    MATCH (u:Customer)-[:USES_DEVICE]->(:Device {device_id: device})
    RETURN u
    UNION
    MATCH (u:Customer)-[:HAS_LINE]->(:CreditLine)-[:DRAWDOWN {device_id: device}]->(:Account)
    RETURN u
  }
  RETURN count(DISTINCT u) AS users
}
WITH c, m, device, users
WHERE $min_customers <= users <= $max_customers
WITH c, m, device ORDER BY device
WITH c, m, collect(device) AS shared_devices
RETURN
  c.ring_id AS ring_id, m.customer_id AS customer_id, m.name AS name, m.tier AS tier,
  size(shared_devices) AS shared_device_count, shared_devices
ORDER BY customer_id
