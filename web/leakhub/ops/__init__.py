"""Operating the installation: status checks, updates, deployments."""
