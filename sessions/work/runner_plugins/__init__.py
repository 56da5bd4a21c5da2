"""Files loopdash copies next to a run and loads into the test command (never imported by loopdash itself)."""
