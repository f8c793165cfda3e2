"""Locations (site → building → area) and the energy settings used for cost and CO2."""
