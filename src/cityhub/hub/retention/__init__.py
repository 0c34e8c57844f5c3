"""Standing retention policies for attribute history: per tenant and entity type, raw history is
kept for a while, then downsampled into one aggregated instance per period, and those are dropped
after a longer while. A background task applies every policy periodically; ``cityhub history
apply-retention`` applies them once."""
