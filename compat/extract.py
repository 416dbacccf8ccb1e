#!/usr/bin/env python3
"""extract.py GIT_DIR COMMIT DEST: writes the commit's tree into DEST, skipping
blobs the mirror does not hold (large files may be listed but absent)."""
import os
import subprocess
import sys

git_dir, commit, dest = sys.argv[1:4]
tree = subprocess.run(["git", f"--git-dir={git_dir}", "ls-tree", "-r", "-z", commit],
                      check=True, capture_output=True).stdout.split(b"\0")
entries = []
for line in tree:
    if not line:
        continue
    meta, path = line.split(b"\t", 1)
    mode, kind, sha = meta.split()
    if kind == b"blob":
        entries.append((mode, sha.decode(), path.decode()))
cat = subprocess.Popen(["git", f"--git-dir={git_dir}", "cat-file", "--batch"],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
skipped = 0
for mode, sha, path in entries:
    cat.stdin.write(sha.encode() + b"\n")
    cat.stdin.flush()
    header = cat.stdout.readline().split()
    if len(header) < 3 or header[1] == b"missing":
        skipped += 1
        continue
    data = cat.stdout.read(int(header[2]))
    cat.stdout.read(1)
    out = os.path.join(dest, path)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if mode == b"120000":
        os.symlink(data.decode(), out)
    else:
        with open(out, "wb") as f:
            f.write(data)
cat.stdin.close()
cat.wait()
if skipped:
    print(f"extract: {skipped} file(s) absent from the mirror were skipped", file=sys.stderr)
