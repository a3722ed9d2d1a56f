"""REST endpoints under /api/, one module per app they serve."""
