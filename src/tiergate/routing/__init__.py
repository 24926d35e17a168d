"""Routing: which deployments are eligible for a request, and in what order to try them."""
