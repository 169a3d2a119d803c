"""The checkpoint's huge-page merge (docs/serve.md, "Huge pages"): it finds the mappings marked
for huge pages and the kernel accepts them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from graphkit.serve.service import _collapse_huge_pages

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _kernel_has_collapse() -> bool:
    major, minor = (int(part) for part in os.uname().release.split(".")[:2])
    return (major, minor) >= (6, 1)


@pytest.mark.skipif(
    not THP.exists() or "[never]" in THP.read_text() or not _kernel_has_collapse(),
    reason="transparent huge pages off, or a kernel without MADV_COLLAPSE (Linux < 6.1)",
)
def test_a_large_array_marked_for_huge_pages_is_merged_back() -> None:
    # numpy marks its allocations of 4 MB and more for huge pages (madvise)
    array = np.ones(64 * 2**20 // 8)
    merged = _collapse_huge_pages()
    assert merged >= array.nbytes
    assert array.sum() == len(array)  # the data is untouched
