"""The alignment service: HTTP job API, job database, Dask runner, dashboard (see docs/service.md)."""
