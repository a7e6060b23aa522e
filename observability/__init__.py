"""Monitoring as code: the Grafana dashboard's generator and the names it shares with the alerts."""
