#!/usr/bin/env python3
"""Re-create the sample series of other kernels and of the verdict rules (issue 12).

    .venv/bin/python series/make_kernel_samples.py [OUTDIR]   # default: this script's directory

Each is made of real commits in a scratch clone of a provisioned tree (`mmreview tree init
--kernel 6.1|7.3`, the default 6.12), with fixed identities and dates, then `git format-patch`.
No base-commit: line: the tree's commit is a function of one Debian version's tarball, and these
series are to apply on whichever patch level of their line a machine has (on the tree's HEAD).

  kernel-6.1-tools-fallthrough  6.1: tools/include gains the `fallthrough` the kernel's
                                lib/maple_tree.c uses, so tools/testing/radix-tree builds again
                                (every radix-tree cell "fixed"; 6.1 has no tools/testing/vma)
  kernel-7.3-maple-doc          7.3: two comment fixes (every cell passes, on any target)
  matrix-changed-failure        6.12: mm/vma.c calls ksm_add_vma(), which the userland vma
                                harness does not provide: the vma link failure the tree already
                                has gets a second undefined reference (a changed failure, new)
  matrix-recipe-gap             6.12: mm/vma.c includes a header from kernel/, a directory no
                                suite build is given: mmreview cannot judge it (incomplete, exit 3)
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent)
MMREVIEW = str(Path(sys.executable).with_name("mmreview"))
ADA = {"GIT_COMMITTER_NAME": "Ada Reviewer", "GIT_COMMITTER_EMAIL": "ada@example.org",
       "GIT_AUTHOR_NAME": "Ada Reviewer", "GIT_AUTHOR_EMAIL": "ada@example.org", "LC_ALL": "C"}


class Clone:
    def __init__(self, kernel: str, dirs: list[str]):
        self._tmp = tempfile.TemporaryDirectory(prefix=f"mmreview-samples-{kernel}-")
        self.path = os.path.join(self._tmp.name, "linux")
        bare = subprocess.run([MMREVIEW, "tree", "path", "--kernel", kernel], capture_output=True,
                              text=True, check=True).stdout.strip().splitlines()[-1]
        subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", bare, self.path], check=True)
        self.git("sparse-checkout", "set", "--no-cone", "/.gitattributes", *(f"/{d}" for d in dirs))
        self.git("checkout", "-q", "master")
        self.base = self.git("rev-parse", "HEAD").strip()

    def git(self, *a: str, env: dict | None = None, input: str | None = None) -> str:
        return subprocess.run(["git", "-C", self.path, *a], check=True, capture_output=True, text=True,
                              env={**os.environ, **ADA, **(env or {})}, input=input).stdout

    def edit(self, path: str, old: str, new: str) -> None:
        p = os.path.join(self.path, path)
        text = open(p).read()
        assert text.count(old) == 1, (path, old)
        open(p, "w").write(text.replace(old, new))

    def commit(self, message: str, date: str) -> None:
        self.git("commit", "-q", "-a", "-F", "-", input=message,
                 env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})

    def write(self, name: str, count: int, cover: tuple[str, str] | None = None) -> None:
        args = ["format-patch", "--stdout", "--thread=shallow",
                "--subject-prefix=PATCH", f"-{count}"]
        if cover:
            args.insert(1, "--cover-letter")
        text = self.git(*args)
        if cover:
            text = text.replace("*** SUBJECT HERE ***", cover[0]).replace("*** BLURB HERE ***", cover[1])
        (OUT / f"{name}.mbox").write_text(text)
        print(OUT / f"{name}.mbox")


def kernel_61() -> None:
    c = Clone("6.1", ["tools/include/linux/"])
    c.edit("tools/include/linux/compiler.h", "#endif /* _TOOLS_LINUX_COMPILER_H */",
           "#ifndef fallthrough\n# define fallthrough __attribute__((__fallthrough__))\n#endif\n\n"
           "#endif /* _TOOLS_LINUX_COMPILER_H */")
    c.commit("tools: define fallthrough for the userland test harnesses\n\n"
             "lib/maple_tree.c uses the fallthrough pseudo-keyword, which the kernel gets from\n"
             "include/linux/compiler_attributes.h; tools/include has no definition, so\n"
             "tools/testing/radix-tree fails to build ('fallthrough' undeclared).\n\n"
             "Signed-off-by: Ada Reviewer <ada@example.org>\n", "Mon, 2 Nov 2026 10:00:00 +0000")
    c.write("kernel-6.1-tools-fallthrough", 1)


def kernel_73() -> None:
    c = Clone("7.3", ["lib/", "mm/"])
    c.edit("lib/maple_tree.c", " * Maple Tree implementation\n",
           " * Maple Tree implementation: a B-tree of ranges, RCU-safe for readers\n")
    c.commit("maple_tree: say what the tree is in the file's header\n\n"
             "The header names the file but not what it holds; one line says it.\n\n"
             "Signed-off-by: Ada Reviewer <ada@example.org>\n", "Tue, 3 Nov 2026 10:00:00 +0000")
    c.edit("mm/vma.c", "/*\n * Close a vm structure and free it.\n */",
           "/*\n * Close a vm structure and free it (the caller holds the mmap write lock).\n */")
    c.commit("mm/vma: say which lock remove_vma() expects\n\n"
             "Callers hold the mmap write lock; the comment now says so.\n\n"
             "Signed-off-by: Ada Reviewer <ada@example.org>\n", "Tue, 3 Nov 2026 10:01:00 +0000")
    c.write("kernel-7.3-maple-doc", 2, ("maple_tree, mm/vma: two comment fixes",
                                        "Comments only: a sample series for the 7.3 tree."))


def changed_failure() -> None:
    c = Clone("6.12", ["mm/"])
    stores = "\t/* vma_complete stores the new vma */\n\tvma_complete(&vp, vmi, vma->vm_mm);\n" \
             "\tvalidate_mm(vma->vm_mm);\n"
    c.edit("mm/vma.c", stores, stores + "\tksm_add_vma(new);\n")
    c.commit("mm/vma: let KSM see the new half of a split VMA\n\n"
             "A VMA split off a mergeable one was never offered to KSM; offer it once\n"
             "vma_complete() has stored it.\n\n"
             "Signed-off-by: Ada Reviewer <ada@example.org>\n", "Wed, 4 Nov 2026 10:00:00 +0000")
    c.write("matrix-changed-failure", 1)


def recipe_gap() -> None:
    c = Clone("6.12", ["mm/"])
    c.edit("mm/vma.c", '#include "vma_internal.h"\n',
           '#include "vma_internal.h"\n#include "../kernel/sched/sched.h"\n')
    c.commit("mm/vma: use the scheduler's internal helpers\n\n"
             "Prepare for accounting VMA work to the scheduler.\n\n"
             "Signed-off-by: Ada Reviewer <ada@example.org>\n", "Thu, 5 Nov 2026 10:00:00 +0000")
    c.write("matrix-recipe-gap", 1)


if __name__ == "__main__":
    kernel_61()
    kernel_73()
    changed_failure()
    recipe_gap()
