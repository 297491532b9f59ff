"""The order desk's domain: aggregates, value objects, events and errors. Pure Python."""
