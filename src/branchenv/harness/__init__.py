"""The integration harness: readiness, the pytest plugin and its fixtures, probes, reports."""
