"""A small seeded hourly event feed: page views, one CSV file per hour, for the hourly partitions.

    <landing>/web/page_views/YYYY-MM-DD/HH.csv     view_id, viewed_at, page, user_id

Each hour of ``days`` days from ``start`` gets a file. The number of views in an hour follows a
daily cycle (busier at midday, quiet at night) with seeded noise, so the same ``seed`` always
gives the same files, and the counts are known to the tests that read them back
(:func:`expected_views`).
"""

from __future__ import annotations

import csv
import math
import random
from datetime import date, datetime, timedelta
from pathlib import Path

PAGES = ("/", "/search", "/product", "/cart", "/checkout")
FOLDER = "web/page_views"


def hours(start: date, days: int) -> list[datetime]:
    """Every hour of ``days`` days from ``start`` 00:00, in order."""
    first = datetime.combine(start, datetime.min.time())
    return [first + timedelta(hours=i) for i in range(days * 24)]


def views_in_hour(hour: datetime, seed: int) -> int:
    """How many views the feed has in ``hour``: 20-120 following the time of day, plus seeded noise."""
    base = 70 + 50 * math.sin((hour.hour - 6) / 24 * 2 * math.pi)
    return max(0, int(base) + random.Random(f"{seed}:{hour.isoformat()}").randint(-10, 10))


def expected_views(start: date, days: int, seed: int = 7) -> dict[datetime, int]:
    """``{hour: views}`` of the feed :func:`generate` writes."""
    return {h: views_in_hour(h, seed) for h in hours(start, days)}


def hour_file(landing_dir: Path, hour: datetime) -> Path:
    """The file of ``hour``: ``web/page_views/<date>/<HH>.csv`` under the landing root."""
    return landing_dir / FOLDER / hour.strftime("%Y-%m-%d") / f"{hour:%H}.csv"


def generate(landing_dir: Path, start: date, days: int = 30, seed: int = 7) -> int:
    """Write the feed's hourly files under ``landing_dir``; returns the number of files (idempotent).

    Columns: ``view_id`` (BIGINT, unique over the feed), ``viewed_at`` (TIMESTAMP, within its
    hour), ``page`` (VARCHAR, one of :data:`PAGES`), ``user_id`` (BIGINT).
    """
    view_id = 0
    for hour in hours(start, days):
        rng = random.Random(f"{seed}:{hour.isoformat()}:rows")
        path = hour_file(landing_dir, hour)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["view_id", "viewed_at", "page", "user_id"])
            for _ in range(views_in_hour(hour, seed)):
                view_id += 1
                at = hour + timedelta(seconds=rng.randrange(3600))
                writer.writerow([view_id, at.isoformat(sep=" "), rng.choice(PAGES), rng.randrange(1, 500)])
        tmp.replace(path)  # a reader never sees half a file
    return days * 24
