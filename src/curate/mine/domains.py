"""Domains and URL paths: DeepSeekMath's way of finding where math lives on the web.

A page's ``domain`` is its URL's host without ``www.``; its ``location`` is the domain and
path (``mathoverflow.net/questions/268372``). `domain_report` counts, per domain, the pages
of the pool and those the classifier collected; a domain where more than ``min_share`` (10%)
of the pages were collected counts as math-related. People then confirm the URL paths that
hold math (``mathoverflow.net/questions``); `under_paths` finds the pool's pages under them,
and the uncollected ones become seeds of the next iteration.

>>> domain("https://www.MathOverflow.net/questions/1?x=2"), location("http://a.org/b/c#d")
('mathoverflow.net', 'a.org/b/c')
>>> under_paths(pl.Series(["https://a.org/q/1", "https://a.org/qq", None]), ["a.org/q"]).to_list()
[True, False, False]
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import polars as pl

MIN_SHARE = 0.1
"""DeepSeekMath's rule: a domain with more than 10% of its pages collected is math-related."""


def domain(url: str | None) -> str | None:
    """The host of ``url``, lower case, without ``www.`` (None without a URL or host)."""
    if not url:
        return None
    try:
        host = urlsplit(url.strip() if "//" in url else "//" + url.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host[4:] if host.startswith("www.") else host


def location(url: str | None) -> str | None:
    """``domain/path`` of ``url``, without scheme, query or fragment (None without a URL)."""
    host = domain(url)
    if host is None:
        return None
    assert url is not None
    try:
        path = urlsplit(url.strip() if "//" in url else "//" + url.strip()).path
    except ValueError:
        path = ""
    return host + path.rstrip("/")


def _pattern(text: str) -> str:
    """A confirmed path as a location prefix (scheme and ``www.`` dropped)."""
    return location(text) or text.strip().lower()


def under_paths(urls: pl.Series, patterns: Iterable[str]) -> pl.Series:
    """Whether each URL lies under one of ``patterns`` (``domain/path`` prefixes, matched on
    whole path segments)."""
    prefixes = sorted({_pattern(p) for p in patterns if p.strip()})
    locations = [location(u) for u in urls.to_list()]
    out = [
        loc is not None and any(loc == p or loc.startswith(p + "/") for p in prefixes)
        for loc in locations
    ]
    return pl.Series(urls.name, out, pl.Boolean)


MIN_PAGES = 3
"""A domain with fewer pages in the pool is never flagged (one collected page of one is not
evidence that a site is about math)."""


def domain_report(
    urls: pl.Series,
    collected: pl.Series,
    *,
    min_share: float = MIN_SHARE,
    min_pages: int = MIN_PAGES,
) -> pl.DataFrame:
    """Per domain: ``pages`` in the pool, ``collected``, their ``share`` and whether the
    domain is ``math_related`` (share above ``min_share``, with at least ``min_pages``
    pages), most collected first; pages without a URL are counted under a null domain."""
    frame = pl.DataFrame(
        {"domain": [domain(u) for u in urls.to_list()], "collected": collected.cast(pl.Boolean)}
    )
    return (
        frame.group_by("domain")
        .agg(pl.len().cast(pl.Int64).alias("pages"), pl.col("collected").sum().cast(pl.Int64))
        .with_columns((pl.col("collected") / pl.col("pages")).alias("share"))
        .with_columns(
            (
                (pl.col("share") > min_share)
                & (pl.col("pages") >= min_pages)
                & pl.col("domain").is_not_null()
            ).alias("math_related")
        )
        .sort(["collected", "pages", "domain"], descending=[True, True, False], nulls_last=True)
        .select("domain", "pages", "collected", "share", "math_related")
    )
