"""Review cases written apart from series/: per rule, forms of the violation the sample series do
not use (positives) and look-alikes that are fine (negatives), as edits on the default 6.12 tree.

Each case is data: `Case(rule, name, patches, expect)`.  `patches` is what conftest_rules.make_mbox
takes ([(subject, body, [(path, old, new)])]); `expect` is [(patch, path, line substring, message
substrings, "!x": x must not be said)] for a positive and [] for a
negative.  tests/test_rules_forms.py makes each case a real
`git format-patch` series, applies it and runs the one rule on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Case:
    rule: str
    name: str
    patches: list
    expect: list = field(default_factory=list)     # [] : a negative, nothing may be reported
    why: str = ""                                   # what form this is, in a reviewer's words
    mangle: object = None                           # bytes -> bytes: the mail as a sender broke it

    @property
    def positive(self) -> bool:
        return bool(self.expect)


# where a series keeps definitions, on the 6.12 tree: a private header of mm, include/linux/mm.h,
# another .c file of mm (each anchor is a line the new code goes in front of)
INTERNAL_H = "static inline void vma_close(struct vm_area_struct *vma)\n"
MM_H = "static inline unsigned long vma_pages(struct vm_area_struct *vma)\n"
UTIL_C = "void kvfree(const void *addr)\n"


def before(path: str, anchor: str, code: str) -> tuple:
    """An edit putting `code` in front of the line `anchor`."""
    return (path, anchor, code + anchor)


def patch(subject: str, *edits, body: str = "") -> tuple:
    return (subject, body or f"{subject}.", list(edits))


def all_cases() -> list[Case]:
    from . import (checkpatch, error_path_needs_test, exit_mmap_complication, lock_order,
                   maple_store_alloc, vma_free_rcu, xa_zero_marker)
    out: list[Case] = []
    for mod in (checkpatch, error_path_needs_test, exit_mmap_complication, lock_order,
                maple_store_alloc, vma_free_rcu, xa_zero_marker):
        out += mod.CASES
    return out
