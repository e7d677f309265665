#!/usr/bin/python3
"""Checks deploy/Dockerfile without a Docker engine:
  - its build-stage apt packages are all in tests/run.sh's `packages` list
    (and every library -dev package of that list is in the build stage);
  - its runtime packages exist in Debian 12 (apt-cache show), each is what a
    build -dev package depends on, and no -dev package sneaks in;
  - given a built keyrotd (argv[1]), every library `ldd` resolves belongs to a
    package that the runtime packages pull in (or the slim base has);
  - non-root USER 65532, ENTRYPOINT /usr/bin/keyrotd.
Exit 77 (skipped) only when apt-cache is missing or has no package lists.
"""
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "deploy", "Dockerfile")
RUN_SH = os.path.join(ROOT, "tests", "run.sh")
# What debian:12-slim already has that a C++ program links.
BASE = {"libc6", "libstdc++6", "libgcc-s1", "gcc-12-base"}
# Packages in run.sh that are tools for tests, not for building keyrotd.
TEST_ONLY = {"openssl", "libgtest-dev", "libgmock-dev", "libbenchmark-dev", "python3", "python3-yaml",
             "python3-jsonschema", "python3-aiosmtpd", "python3-cryptography", "prometheus", "curl",
             "clang", "tzdata", "clang-format", "clang-tidy",
             "libclang-rt-14-dev"}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")
    return cond


def block(text, name):
    m = re.search(rf"# BEGIN {name}\n(.*?)# END {name}", text, re.S)
    if not check(m is not None, f"Dockerfile lacks the '# BEGIN {name}' ... '# END {name}' block"):
        return []
    body = m.group(1).replace("\\\n", " ")
    m = re.search(r"apt-get install\s+(.*?)(&&|$)", body, re.S)
    return [w for w in m.group(1).split() if not w.startswith("-")] if m else []


def run_sh_packages():
    m = re.search(r"^packages=\((.*?)^\)", open(RUN_SH).read(), re.S | re.M)
    return m.group(1).split() if check(m is not None, "tests/run.sh has no packages=( ... ) list") else []


def apt(*args):
    return subprocess.run(["apt-cache", *args], capture_output=True, text=True)


def depends(pkgs, recurse=False):
    args = ["depends", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
            "--no-replaces", "--no-enhances", "--no-pre-depends"]
    out = apt(*args, *(["--recurse"] if recurse else []), *pkgs).stdout
    if recurse:
        return {line.strip() for line in out.splitlines() if line and not line.startswith(" ")}
    return set(re.findall(r"^\s+Depends: (\S+)", out, re.M))


def main():
    if shutil.which("apt-cache") is None or apt("show", "libc6").returncode != 0:
        print("SKIP: apt-cache or its package lists are missing (apt-get update)")
        return 77
    text = open(DOCKERFILE).read()
    build, runtime = block(text, "build packages"), block(text, "runtime packages")
    ci = run_sh_packages()
    check(build, "no build packages found")
    check(not set(build) - set(ci), f"build packages not in tests/run.sh: {sorted(set(build) - set(ci))}")
    wanted = set(ci) - TEST_ONLY
    check(not wanted - set(build), f"tests/run.sh build packages missing from the Dockerfile: {sorted(wanted - set(build))}")

    check(runtime, "no runtime packages found")
    # (One apt-cache call and one dpkg call for all: each loads its whole database.)
    known = set(re.findall(r"^Package: (\S+)$", apt("show", "--no-all-versions", *runtime).stdout, re.M))
    for p in runtime:
        check(p in known, f"runtime package {p} is not in Debian's lists")
        check(not p.endswith("-dev"), f"runtime package {p} is a -dev package")
    libs_of_dev = depends([p for p in build if p.endswith("-dev")])
    for p in runtime:
        # ca-certificates and tzdata are data, read at run time, not linked.
        check(p in ("ca-certificates", "tzdata") or p in libs_of_dev,
              f"runtime package {p} is not a dependency of a build -dev package (wrong version/name?)")

    check(re.search(r"^FROM debian:12 AS build$", text, re.M) is not None, "build stage is not debian:12")
    check(re.search(r"^FROM debian:12-slim$", text, re.M) is not None, "runtime stage is not debian:12-slim")
    check(re.search(r"^USER 65532(:65532)?$", text, re.M) is not None, "runtime USER is not 65532")
    m = re.search(r"^ENTRYPOINT (.*)$", text, re.M)
    check(m is not None and json.loads(m.group(1)) == ["/usr/bin/keyrotd"], "ENTRYPOINT is not [\"/usr/bin/keyrotd\"]")

    binary = sys.argv[1] if len(sys.argv) > 1 else ""
    if binary and os.access(binary, os.X_OK):
        closure = depends(runtime, recurse=True) | BASE
        before = len(failures)
        out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        libs = re.findall(r"=> (/\S+)", out)
        candidates = {}
        for lib in libs:
            real = os.path.realpath(lib)
            candidates[lib] = [lib, real, real.replace("/usr/lib/", "/lib/", 1)]
        paths = sorted({p for c in candidates.values() for p in c})
        q = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True)
        owners = {}  # "pkg[:arch][, pkg2]: /path" per line
        for line in q.stdout.splitlines():
            pkgs, sep, path = line.partition(": ")
            if sep:
                owners.setdefault(path, pkgs.split(",")[0].split(":")[0].strip())
        check(libs, f"ldd {binary} lists no library")
        for lib in libs:
            owner = next((owners[p] for p in candidates[lib] if p in owners), None)
            check(owner is not None and owner in closure,
                  f"{binary} links {lib} from package {owner}, which the runtime stage does not install")
        if len(failures) == before:
            print(f"ok: ldd {binary}: every library comes with the runtime packages")
    else:
        print("note: no built keyrotd given; ldd check skipped")
    print("Dockerfile: " + ("FAILED" if failures else "OK"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
