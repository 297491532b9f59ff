"""Storage: tables, the unit of work, the event log, the projector and the event tail."""
