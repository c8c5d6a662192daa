"""``GET /metrics``: the service's state in the Prometheus text exposition format (version 0.0.4).

Families: ``brainalign_jobs{status=...}`` (jobs in the database by status),
``brainalign_queue_length``, ``brainalign_running_jobs``,
``brainalign_job_duration_seconds`` (a histogram of the running time of finished
jobs), ``brainalign_cache_hits_total`` / ``brainalign_cache_misses_total`` (reads of
the shared activation cache that found an entry or not, counted by the cache
itself in its folder, so the Dask workers' reads are included) and
``brainalign_cache_entries`` / ``brainalign_cache_bytes``. Everything is read from
the database and the cache folder at each scrape; the server keeps no counters.
"""
from __future__ import annotations

from ..encoders import cache as activation_cache

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _number(x: float) -> str:
    return repr(float(x)) if x != int(x) else str(int(x))


def histogram(lines: list[str], name: str, values: list[float], buckets=BUCKETS_S) -> None:
    """Cumulative ``_bucket{le=...}``, ``_sum`` and ``_count`` lines of ``values``."""
    for b in buckets:
        lines.append(f'{name}_bucket{{le="{_number(b)}"}} {sum(1 for v in values if v <= b)}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {len(values)}')
    lines.append(f"{name}_sum {_number(round(sum(values), 6))}")
    lines.append(f"{name}_count {len(values)}")


def render(store, settings) -> str:
    """The metrics text.

    Parameters
    ----------
    store : JobStore
        Its ``counts()``: ``queued``, ``running``, ``by_status``, ``durations_s``.
    settings : ServiceSettings
        Its ``cache_dir`` is the shared activation cache.
    """
    c = store.counts()
    lines: list[str] = []
    _family(lines, "brainalign_jobs", "gauge", "Jobs in the database by status.")
    lines += [f'brainalign_jobs{{status="{s}"}} {int(n)}' for s, n in sorted(c["by_status"].items())]
    _family(lines, "brainalign_queue_length", "gauge", "Jobs waiting to start.")
    lines.append(f"brainalign_queue_length {int(c['queued'])}")
    _family(lines, "brainalign_running_jobs", "gauge", "Jobs running now.")
    lines.append(f"brainalign_running_jobs {int(c['running'])}")
    _family(lines, "brainalign_job_duration_seconds", "histogram", "Running time of finished jobs, seconds.")
    histogram(lines, "brainalign_job_duration_seconds", [float(d) for d in c.get("durations_s", [])])
    counts = activation_cache.hit_counts(settings.cache_dir)
    _family(lines, "brainalign_cache_hits_total", "counter", "Activation cache reads that found their entry.")
    lines.append(f"brainalign_cache_hits_total {sum(counts['hits'].values())}")
    _family(lines, "brainalign_cache_misses_total", "counter", "Activation cache reads that found no entry.")
    lines.append(f"brainalign_cache_misses_total {counts['misses']}")
    entries = activation_cache.list_entries(settings.cache_dir)
    _family(lines, "brainalign_cache_entries", "gauge", "Entries in the shared activation cache.")
    lines.append(f"brainalign_cache_entries {len(entries)}")
    _family(lines, "brainalign_cache_bytes", "gauge", "Bytes of the shared activation cache's entries.")
    lines.append(f"brainalign_cache_bytes {sum(e['bytes'] for e in entries)}")
    return "\n".join(lines) + "\n"
