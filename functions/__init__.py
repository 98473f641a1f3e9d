"""Lambda entry points, one thin handler per function (they arrive with the serverless issue; none exist yet)."""
