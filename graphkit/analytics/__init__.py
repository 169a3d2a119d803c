"""Analytics: pure functions of a RiskGraph (circles, clusters, rings, flows, contagion)."""
