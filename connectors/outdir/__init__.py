"""`--out DIR`: a dry run of delivery. What each community would receive is written to disk instead."""
