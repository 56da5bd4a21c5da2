"""Which signature keys look like one cause: the second stage of grouping, offered, never applied.

Two keys are *similar* when they have the same exception type and the same site (the frames part of
``fingerprint.signature_key``) and their masked messages have the same number of words and differ
in at most one word (``GET /api/v<n>/health -> HTTP <n>`` and ``GET /api/v<n>/tools -> HTTP <n>``).
The type and the site must match exactly because they are what the failure *is*; a word of the
message is often data the masks did not catch (an agent's name, a route).

Ingestion does not merge similar keys by itself: a merge cannot be split again, so a wrong automatic
merge hides a cause for good, while a missed one costs a click. The signature page lists the similar
signatures beside the merge form instead, and ``bench/signatures.py`` measures what merging them
would change (docs/PERFORMANCE.md, Signatures).
"""

from __future__ import annotations

SITE_MARK = " @ "


def split_key(normalized: str) -> tuple[str, str, list[str]]:
    """``"Type: masked message @ site"`` → (type, site, message words)."""
    head, _, site = normalized.partition(SITE_MARK)
    error_type, colon, message = head.partition(": ")
    if not colon:
        error_type, message = head, ""
    return error_type, site, message.split()


def similar(first: str, second: str) -> bool:
    """Same type, same site, same word count, at most one word different (see the module docstring)."""
    if first == second:
        return True
    type_a, site_a, words_a = split_key(first)
    type_b, site_b, words_b = split_key(second)
    if type_a != type_b or site_a != site_b or len(words_a) != len(words_b) or not words_a:
        return False
    return sum(a != b for a, b in zip(words_a, words_b, strict=True)) <= 1


def group_similar(keys: list[str]) -> dict[str, str]:
    """Each key → the first key (in the given order) it is similar to: the groups a merge would make.

    Keys are compared only within their (type, site, word count) bucket, so the cost stays near
    linear in the number of distinct keys.
    """
    buckets: dict[tuple[str, str, int], list[str]] = {}
    leader: dict[str, str] = {}
    for key in keys:
        error_type, site, words = split_key(key)
        bucket = buckets.setdefault((error_type, site, len(words)), [])
        leader[key] = next((lead for lead in bucket if similar(lead, key)), key)
        if leader[key] == key:
            bucket.append(key)
    return leader
