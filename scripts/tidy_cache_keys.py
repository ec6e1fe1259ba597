#!/usr/bin/env python3
"""tidy_cache_keys.py BUILD_DIR TIDY FILE...: one line "KEY FILE" per source.

KEY is the SHA-256 of what clang-tidy's verdict on FILE depends on: the clang-tidy version, the
.clang-tidy in force, the compile command, and the bytes of FILE and of every project header its
object file depends on (ninja's dependency log; system headers count by size and time). scripts/check-style.sh skips a source whose KEY it
already saw pass. A source with no recorded dependencies gets no key (it is always checked).
"""
import hashlib
import json
import os
import shlex
import subprocess
import sys


def main() -> int:
    build, tidy, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    root = os.getcwd() + os.sep
    version = subprocess.run([tidy, "--version"], capture_output=True, text=True).stdout
    with open(".clang-tidy", "rb") as f:
        config = f.read()
    commands = {}
    with open(os.path.join(build, "compile_commands.json")) as f:
        for entry in json.load(f):
            commands[os.path.relpath(entry["file"])] = entry
    for path in files:
        entry = commands.get(path)
        if entry is None:
            continue
        args = shlex.split(entry["command"])
        if "-o" not in args:
            continue
        obj = args[args.index("-o") + 1]
        deps = subprocess.run(["ninja", "-C", build, "-t", "deps", obj], capture_output=True,
                              text=True).stdout.splitlines()
        headers = [line.strip() for line in deps[1:] if line.startswith("    ")]
        if not headers:
            continue
        digest = hashlib.sha256()
        digest.update(version.encode())
        digest.update(config)
        # Paths inside the tree count relative to it, so clones in other places share keys.
        digest.update(entry["command"].replace(root, ".").encode())
        for dep in [path] + headers:
            full = os.path.normpath(os.path.join(entry["directory"], dep))
            digest.update(full.replace(root, ".").encode())
            try:
                if full.startswith(root):
                    with open(full, "rb") as f:
                        digest.update(f.read())
                else:  # a system header: its size and time stand for its bytes
                    st = os.stat(full)
                    digest.update(f"{st.st_size} {st.st_mtime_ns}".encode())
            except OSError:
                digest.update(b"missing")
        print(digest.hexdigest(), path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
