"""Lambda entry points: thin, one call into the domain each."""
