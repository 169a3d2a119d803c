// name: device_ring
// purpose: The device-sharing ring of a customer (latest run's ring_id) and, for each member,
//   the shared devices that tie it in: devices it used (linked, or a drawdown on its lines
//   made from it) that between min_customers and max_customers distinct customers used
//   (the run's rings.min_customers_per_device and max_customers_per_device). With as_of, the
//   links and drawdowns the input had at the end of that date (the ring is the latest run's).
// params: customer_id (string, C0000691),
//   min_customers (int, 3, default rings.min_customers_per_device),
//   max_customers (int, 50, default rings.max_customers_per_device),
//   as_of (date?, 2026-01-31, default null)
// columns: ring_id, customer_id, name, tier, shared_device_count, shared_devices
// example: graphkit cypher run device_ring --param customer_id=C0000691
MATCH (c:Customer {customer_id: $customer_id})
WHERE c.ring_id IS NOT NULL AND (coalesce(date(c.valid_from) <= date($as_of), true) AND coalesce(date(c.valid_to) > date($as_of), c.valid_to IS NULL) OR EXISTS { (c)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) })
MATCH (m:Customer {ring_id: c.ring_id})
WHERE (coalesce(date(m.valid_from) <= date($as_of), true) AND coalesce(date(m.valid_to) > date($as_of), m.valid_to IS NULL) OR EXISTS { (m)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) })
CALL (m) {
  MATCH (m)-[r:USES_DEVICE]->(d:Device)
  WHERE coalesce(date(r.valid_from) <= date($as_of), true) AND coalesce(date(r.valid_to) > date($as_of), r.valid_to IS NULL)
  RETURN d.device_id AS device
  UNION
  MATCH (m)-[h:HAS_LINE]->(:CreditLine)-[dd:DRAWDOWN]->(:Account)
  WHERE dd.device_id IS NOT NULL AND coalesce(date(h.valid_from) <= date($as_of), true) AND coalesce(date(h.valid_to) > date($as_of), h.valid_to IS NULL) AND coalesce(date(dd.valid_from) <= date($as_of), true) AND coalesce(date(dd.valid_to) > date($as_of), dd.valid_to IS NULL)
  RETURN dd.device_id AS device
}
CALL (device) {
  CALL (device) {
    MATCH (u:Customer)-[r:USES_DEVICE]->(:Device {device_id: device})
    WHERE coalesce(date(r.valid_from) <= date($as_of), true) AND coalesce(date(r.valid_to) > date($as_of), r.valid_to IS NULL)
    RETURN u
    UNION
    MATCH (u:Customer)-[h:HAS_LINE]->(:CreditLine)-[dd:DRAWDOWN {device_id: device}]->(:Account)
    WHERE coalesce(date(h.valid_from) <= date($as_of), true) AND coalesce(date(h.valid_to) > date($as_of), h.valid_to IS NULL) AND coalesce(date(dd.valid_from) <= date($as_of), true) AND coalesce(date(dd.valid_to) > date($as_of), dd.valid_to IS NULL)
    RETURN u
  }
  RETURN count(DISTINCT u) AS users
}
WITH c, m, device, users
WHERE $min_customers <= users <= $max_customers
WITH c, m, device ORDER BY device
WITH c, m, collect(device) AS shared_devices
RETURN
  c.ring_id AS ring_id, m.customer_id AS customer_id, coalesce(head([(m)-[:HAS_VERSION]->(ver:Version) WHERE coalesce(date(ver.valid_from) <= date($as_of), true) AND coalesce(date(ver.valid_to) > date($as_of), ver.valid_to IS NULL) | ver]), m).name AS name, m.tier AS tier,
  size(shared_devices) AS shared_device_count, shared_devices
ORDER BY customer_id
