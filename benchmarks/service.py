"""The service under load: many tiny jobs from several users while many clients poll.

1. Starts ``brainalign serve`` (SQLite, ``--workers W`` single-threaded Dask workers) on
   a fresh state folder, makes ``--users`` tokens and submits ``--jobs`` tiny studies at
   once (the demo data, one participant, one layer, encoding, 2 folds; each job its own
   ``scoring.seed``, so no two are the same study), round-robin over the users.
2. While they run, ``--pollers`` asyncio clients poll ``GET /api/v1/jobs/{id}`` (each a
   random job of its user, 0.25 s apart): p50/p99 latency of a status request.
3. All jobs must end ``succeeded``; none lost (every id answers, the list holds them all).
4. The same configurations through ``brainalign run --scheduler`` one after the other,
   on a LocalCluster of the same ``W`` workers, with its own activation cache (warmed by
   the first run exactly as the service's is by its first job): the wall-time ratio.
5. A new study (another context size: not in the cache) submitted alone, then the same
   study resubmitted with ``force``: the second finds its activations in the shared
   cache; ratio of their running times.

Usage::

    python benchmarks/service.py [--jobs 20] [--users 4] [--pollers 50] [--workers 2]

Writes the "Service" section of ``docs/benchmarks.md`` (ratios, the command, the machine).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "service"))
from _server import CLI, service_env, small_demo_config, start_server, wait_job  # noqa: E402

START, END = "<!-- service-benchmark:start -->", "<!-- service-benchmark:end -->"


def tiny_config(seed: int, context_words: int = 20) -> dict:
    """The demo reduced to one participant, one layer, encoding with 2 folds; ``seed`` makes it a new study."""
    cfg = small_demo_config(layers=(5,), n_folds=2, name=f"tiny{seed}")
    cfg["data"]["source"]["participants"] = ["01"]
    cfg["models"][0]["context_words"] = context_words
    cfg["scoring"].update(seed=seed, inner_cv=2, alphas=[10.0, 1000.0, 100000.0])
    cfg["statistics"].update(group_test="none", n_bootstrap=0)
    cfg["outputs"] = {"maps": False, "report": False, "save_folds": False}
    return cfg


async def _poll(url: str, token: str, ids: list[str], stop: threading.Event, out: list[float], rng) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        while not stop.is_set():
            t = time.perf_counter()
            r = await c.get(f"/api/v1/jobs/{rng.choice(ids)}")
            out.append(time.perf_counter() - t)
            r.raise_for_status()
            await asyncio.sleep(0.25)


def poll_while(url: str, tokens: dict, ids_of: dict, n: int, stop: threading.Event) -> list[float]:
    """Run ``n`` polling clients until ``stop``; the latencies (s) of every status request."""
    lat: list[float] = []
    users = sorted(tokens)

    async def main():
        await asyncio.gather(*[_poll(url, tokens[users[i % len(users)]], ids_of[users[i % len(users)]], stop, lat,
                                     random.Random(i)) for i in range(n)])

    asyncio.run(main())
    return lat


def service_burst(srv, args) -> dict:
    tokens = {f"user{u}": srv.token(f"user{u}") for u in range(args.users)}
    users = sorted(tokens)
    ids_of: dict[str, list[str]] = {u: [] for u in users}
    t0 = time.perf_counter()
    for i in range(args.jobs):
        u = users[i % len(users)]
        r = httpx.post(srv.url + "/api/v1/jobs", json={"config": tiny_config(i)},
                       headers={"Authorization": f"Bearer {tokens[u]}"}, timeout=60)
        assert r.status_code == 201, r.text
        ids_of[u].append(r.json()["id"])
    stop = threading.Event()
    lat: list[float] = []
    poller = threading.Thread(target=lambda: lat.extend(poll_while(srv.url, tokens, ids_of, args.pollers, stop)))
    poller.start()
    finals = []
    for u in users:
        with srv.client(tokens[u]) as c:
            finals += [wait_job(c, j, timeout=7200) for j in ids_of[u]]
    wall = time.perf_counter() - t0
    stop.set()
    poller.join()
    listed = sum(len(srv.client(tokens[u]).get("/api/v1/jobs").json()) for u in users)
    return {"wall_s": wall, "statuses": sorted({f["status"] for f in finals}), "n": len(finals), "listed": listed,
            "lat": np.asarray(lat), "tokens": tokens}


def cli_runs(args, work: Path) -> float:
    """The same configurations through ``brainalign run --scheduler`` on a LocalCluster of the same workers."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0")
    env = dict(service_env(), BRAINALIGN_CACHE=str(work / "cli-cache"))
    t0 = time.perf_counter()
    try:
        for i in range(args.jobs):
            cfg = work / f"tiny{i}.yaml"
            cfg.write_text(yaml.safe_dump(tiny_config(i)))
            subprocess.run(CLI + ["run", str(cfg), "--output", str(work / f"cli-{i}"), "--quiet", "--scheduler",
                                  cluster.scheduler_address], check=True, env=env, capture_output=True)
    finally:
        cluster.close()
    return time.perf_counter() - t0


def cache_reuse(srv, token: str) -> tuple[float, float]:
    """Running seconds of a study whose activations are not cached, then of its forced resubmission."""
    cfg = tiny_config(999, context_words=12)
    with srv.client(token) as c:
        first = wait_job(c, c.post("/api/v1/jobs", json={"config": cfg}).json()["id"], timeout=3600)
        again = wait_job(c, c.post("/api/v1/jobs", json={"config": cfg, "force": True}).json()["id"], timeout=3600)
    assert first["status"] == again["status"] == "succeeded"
    return first["timings"]["running_s"], again["timings"]["running_s"]


def write_section(text: str) -> None:
    path = REPO / "docs" / "benchmarks.md"
    doc = path.read_text()
    block = f"{START}\n{text.rstrip()}\n{END}"
    if START in doc and END in doc:
        doc = doc[: doc.index(START)] + block + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip() + "\n\n## Service (`benchmarks/service.py`)\n\n" + block + "\n"
    path.write_text(doc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--pollers", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="brainalign-service-bench-"))
    srv = start_server(work, workers=args.workers, extra_args=["--max-running-per-user", "2"])
    try:
        burst = service_burst(srv, args)
        cold, warm = cache_reuse(srv, burst["tokens"]["user0"])
    finally:
        srv.stop()
    cli_wall = cli_runs(args, work)
    lat = burst["lat"] * 1000
    lines = [
        f"Command: `python benchmarks/service.py --jobs {args.jobs} --users {args.users} --pollers {args.pollers} "
        f"--workers {args.workers}` ({platform.machine()}, {os.cpu_count()} cores, shared with other work; "
        f"{time.strftime('%Y-%m-%d')}).",
        "",
        f"- {burst['n']} jobs from {args.users} users submitted at once; final statuses: "
        f"{', '.join(burst['statuses'])}; {burst['listed']} listed by their owners (none lost).",
        f"- Status requests while the jobs ran ({len(lat)} from {args.pollers} asyncio clients): "
        f"p50 {np.percentile(lat, 50):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms.",
        f"- Wall time of the {args.jobs} jobs: service {burst['wall_s']:.0f} s against {cli_wall:.0f} s for the same "
        f"configurations run one after the other with `brainalign run --scheduler` on {args.workers} workers of the "
        f"same kind: ratio service / CLI = {burst['wall_s'] / cli_wall:.2f}.",
        f"- A resubmitted job (`force`) that finds its activations in the shared cache ran in {warm:.1f} s against "
        f"{cold:.1f} s for its first run: ratio {warm / cold:.2f}.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
