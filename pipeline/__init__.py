"""DVC-facing stages and the `sakd` CLI: read params, own paths, open runs, write outputs."""
