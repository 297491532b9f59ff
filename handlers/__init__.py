"""One module per feature: its commands, queries, their handlers, and its projections."""
