"""Dock figures (measured by dock/bench.py): upload over loopback against a plain HTTP PUT of
the same bytes in the same run, and the dock's verification speed."""

from __future__ import annotations

from bench import Context, Result, benchmark


@benchmark(
    "upload_throughput",
    description="device -> dock over loopback, vs a plain PUT and vs the limit",
    figures=("upload_throughput", "upload_throughput_vs_limit"),
)
def upload(ctx: Context) -> list[Result]:
    from dock.bench import upload_throughput

    f = upload_throughput(total_mb=16 if ctx.quick else 64)
    r = Result(f.name, f.value, f.unit, lower_is_better=False, detail=f.detail)
    plain = r.against(f.extra["plain_http_mb_s"], "plain HTTP PUT of the same bytes (uvicorn)")
    limit = Result(
        "upload_throughput_vs_limit", f.value, f.unit, lower_is_better=False, detail=f.detail
    ).against(
        f.extra["limit_mb_s"],
        "HTTPS PUT per segment (the dock's TLS), one fsync each, hashed once at the receiver",
    )
    return [
        plain.with_goal(">= 0.9x", (plain.ratio or 0) >= 0.9),
        limit.with_goal(">= 0.8x", (limit.ratio or 0) >= 0.8),
    ]


@benchmark("dock_verify_throughput", description="the dock's verification of a segment, MB/s")
def verify(ctx: Context) -> Result:
    from dock.bench import dock_verify_throughput

    f = dock_verify_throughput(segment_mb=16 if ctx.quick else 64)
    return Result(f.name, f.value, f.unit, lower_is_better=False, detail=f.detail)
