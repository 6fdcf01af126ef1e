"""The synthesized stack, run locally: gateway rules from the template, functions from their real bundles."""
