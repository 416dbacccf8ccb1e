#!/usr/bin/env python3
"""Compares dbt's target/compiled tree with DVT's for one project of the suite.

compare.py NAME REF_DIR OURS_DIR DETAIL_FILE DBT_RC DVTC_RC DBT_SECONDS DVTC_SECONDS  -> one TSV line
compare.py --table REPORT.tsv                                             -> a Markdown table
Details (missing, extra, differing files with a short diff) go to DETAIL_FILE.
"""
import difflib
import json
import os
import re
import sys

COLUMNS = ["project", "dbt rc", "dvtc rc", "dbt files", "dvt files", "missing", "extra",
           "same (ws-normalized)", "same (exact)", "node ids same", "dbt s", "dvtc s"]
RESOURCE_TYPES = ("model", "seed", "snapshot", "test", "analysis")


def files(root):
    out = {}
    if not os.path.isdir(root):
        return out
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = open(p, encoding="utf-8", errors="replace").read()
    return out


# The invocation's start time (`run_started_at`) differs between any two runs, dbt's or DVT's:
# its renderings (`2026-12-03 16:26:30.758271+00:00`, with microseconds) are masked in both files.
RUN_TIME = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\.\d{6}(?:\+00:00)?")


def masked(s):
    return RUN_TIME.sub("<run_started_at>", s)


def norm(s):
    return re.sub(r"\s+", " ", masked(s)).strip()


def node_ids(path, key):
    try:
        nodes = json.load(open(path)).get(key, {})
    except (OSError, ValueError):
        return set()
    return {k for k in nodes if k.split(".")[0] in RESOURCE_TYPES}


def compare(name, ref_dir, ours_dir, detail, dbt_rc, dvtc_rc, ref_s, ours_s):
    ref, ours = files(ref_dir), files(ours_dir)
    project = os.path.dirname(os.path.abspath(detail))
    ref_ids = node_ids(os.path.join(project, "ref_manifest.json"), "nodes")
    our_ids = node_ids(os.path.join(project, "target", "manifest.json"), "nodes")
    missing = sorted(set(ref) - set(ours))
    extra = sorted(set(ours) - set(ref))
    common = sorted(set(ref) & set(ours))
    same_norm = [f for f in common if norm(ref[f]) == norm(ours[f])]
    same_exact = [f for f in common if masked(ref[f]) == masked(ours[f])]
    with open(detail, "w") as out:
        for i in sorted(ref_ids - our_ids):
            out.write(f"missing id {i}\n")
        for i in sorted(our_ids - ref_ids):
            out.write(f"extra id {i}\n")
        for f in missing:
            out.write(f"missing {f}\n")
        for f in extra:
            out.write(f"extra {f}\n")
        for f in common:
            if f in same_norm:
                continue
            out.write(f"differs {f}\n")
            diff = difflib.unified_diff(ref[f].splitlines(), ours[f].splitlines(), "dbt", "dvt", lineterm="", n=1)
            out.writelines(line + "\n" for line in list(diff)[:40])
    print("\t".join(str(x) for x in [name, dbt_rc, dvtc_rc, len(ref), len(ours), len(missing), len(extra),
                                     len(same_norm), len(same_exact), f"{len(ref_ids & our_ids)}/{len(ref_ids)}",
                                     f"{float(ref_s):.2f}", f"{float(ours_s):.3f}"]))


def table(report):
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for line in open(report):
        cells = line.rstrip("\n").split("\t")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        table(sys.argv[2])
    else:
        compare(*sys.argv[1:9])
