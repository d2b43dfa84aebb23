"""The algo monitor: pace policy (pure) and the polling service."""
