"""Building blocks with no domain knowledge: database, errors, time, ids, logging."""
