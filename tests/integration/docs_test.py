#!/usr/bin/env python3
"""Every command and config block in README.md and docs/*.md works as written
(issue "Every command tells the truth", items 12 and 13). The documents are
parsed, their fenced code blocks and inline code spans extracted, and checked
for real against the built binaries and the repository:

- LinkTest: every relative Markdown link resolves to an existing file (and
  its #anchor to a heading there); every `NAME.md` a document mentions exists.
- YamlTest: YAML blocks that are a keyrotd config or policy pass
  `keyrotd validate` (exit 0; 1 for a block marked `<!-- docs-test: invalid -->`);
  other YAML blocks parse.
- ExampleConfigTest: the example configs kept in the repository validate as
  installed (next to a policies.d of the example policies) and with
  `policies:` pointed at the repository's policies/ directory, JSON Schemas
  and all; deploy/try-it.sh's demo config and policy validate, and it runs
  binaries only from the build it makes.
- CommandTest: every command line (shell blocks, synopsis blocks, inline code)
  run with keyrotd, apigee-emulator, cmake, ctest, a binary under build/, or
  a script of deploy/, tests/, bench/: the program, script (executable),
  preset, target and ctest label exist; a build/NAME directory is a preset's
  binaryDir that tests/run.sh or deploy/try-it.sh (or the same document)
  configures, and the file under it is one the build makes; keyrotd and
  apigee-emulator accept the subcommand and every option (run against a
  broken config / a missing seed, so nothing is contacted and nothing long
  runs); other binaries' and scripts' options are in their --help / source;
  repository paths in inline code exist.
- JsonTest: JSON blocks parse (a block with `…`, or marked
  `<!-- docs-test: sketch -->`, is a sketch and left alone).
- SelfTest: each check fails on the broken documents of tests/fixtures/docs/,
  with the problems their `<!-- expect: ... -->` lines name.

A block may be marked in the document, on the line before its fence, with an
HTML comment `<!-- docs-test: invalid|skip|sketch -->`.

Standard library + python3-yaml; run by ctest (tests/integration/docs.cmake):
KEYROT_BUILD_DIR=build/release /usr/bin/python3 tests/integration/docs_test.py [Class]"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# The documents checked; DOCS_TEST_FILES (paths relative to the repo) narrows them.
DOC_FILES = (os.environ.get("DOCS_TEST_FILES", "").split()
             or ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))))
# The C++ sources whose comments may send a reader to a document.
SOURCE_FILES = sorted(
    os.path.relpath(os.path.join(d, f), ROOT)
    for top in ("lib", "daemon", "emulator", "tests", "bench")
    for d, _, fs in os.walk(os.path.join(ROOT, top))
    for f in fs if f.endswith((".cpp", ".hpp")))
TOP_DIRS = sorted(d for d in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, d))
                  and not d.startswith(".") and d != "build")
SCRIPT_PREFIXES = ("deploy/", "tests/", "bench/")
CONFIG_KEYS = {"apigee", "listen", "interval", "stateDir", "policies", "log", "metrics",
               "notify"}
POLICY_KEYS = {"name", "organization", "priority", "match", "rotation", "dryRun", "notify"}
MARKER = re.compile(r"<!--\s*docs-test:\s*([\w-]+)")


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


class Block:
    def __init__(self, doc, line, lang, body, marker):
        self.doc, self.line, self.lang, self.body, self.marker = doc, line, lang, body, marker

    def where(self):
        return "%s:%d (%s block)" % (self.doc, self.line, self.lang or "plain")


def parse_doc(rel):
    """(fenced blocks, [(line, text outside fences)])."""
    lines = read(rel).split("\n")
    blocks, prose = [], []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not m:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
        marker = ""
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0:
            mm = MARKER.search(lines[j])
            marker = mm.group(1) if mm else ""
        body, start = [], i + 1
        i += 1
        while i < len(lines) and not re.match(r"^\s*" + re.escape(fence[0]) + "{%d,}\\s*$" % len(fence), lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        blocks.append(Block(rel, start, lang, "\n".join(body) + "\n", marker))
    return blocks, prose


def inline_spans(prose):
    """[(line, code)] of single-backtick code spans outside fenced blocks."""
    out = []
    for line, text in prose:
        text = re.sub(r"<!--.*?-->", "", text)
        for m in re.finditer(r"(?<!`)`([^`\n]+)`(?!`)", text):
            out.append((line, m.group(1)))
    return out


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def headings(rel):
    blocks, prose = parse_doc(rel)
    return {slug(re.sub(r"^#+\s*", "", t)) for _, t in prose if re.match(r"^#{1,6}\s", t)}


def run(argv, env=None, timeout=15, cwd=None):
    e = dict(os.environ)
    for k in ("GOOGLE_APPLICATION_CREDENTIALS", "CREDENTIALS_DIRECTORY", "KEYROTD_CONFIG"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, env=e, timeout=timeout, cwd=cwd)


# ---------------------------------------------------------------- build facts

def presets():
    p = json.loads(read("CMakePresets.json"))
    configure = {c["name"]: c for c in p.get("configurePresets", [])}

    def binary_dir(name):
        c = configure[name]
        while "binaryDir" not in c and c.get("inherits"):
            inh = c["inherits"]
            c = configure[inh if isinstance(inh, str) else inh[0]]
        return c.get("binaryDir", "").replace("${sourceDir}/", "").replace("${presetName}", name)

    return {
        "configure": {n for n, c in configure.items() if not c.get("hidden")},
        "build": {b["name"] for b in p.get("buildPresets", [])},
        "test": {t["name"] for t in p.get("testPresets", [])},
        "binaryDirs": {binary_dir(n): n for n, c in configure.items() if not c.get("hidden")},
    }


PRESETS = presets()


def entry_point_presets():
    """Presets the README's entry points (tests/run.sh, deploy/try-it.sh) configure."""
    out = set()
    for script in ("tests/run.sh", "deploy/try-it.sh"):
        out |= set(re.findall(r"cmake --preset (\w+)", read(script)))
    return out


def script_build_dirs():
    """build/NAME directories a repository script makes itself (tests/fuzz/build.sh...)."""
    out = {}
    for path in glob.glob(os.path.join(ROOT, "tests", "**", "*.sh"), recursive=True) + \
            glob.glob(os.path.join(ROOT, "bench", "*.sh")):
        if "/fixtures/" in path:
            continue
        with open(path) as f:
            for name in re.findall(r"build/([\w.-]+)", f.read()):
                if "build/" + name not in PRESETS["binaryDirs"]:
                    out.setdefault(name, os.path.relpath(path, ROOT))
    return out


_targets = None


def build_targets():
    global _targets
    if _targets is None:
        r = run(["ninja", "-C", h.BUILD, "-t", "targets", "all"])
        _targets = {line.split(":")[0].rsplit("/", 1)[-1] for line in r.stdout.splitlines()}
    return _targets


# ---------------------------------------------------------------- commands

def join_continuations(body, synopsis=False):
    out, cur, start = [], None, 0
    for n, line in enumerate(body.split("\n"), 1):
        s = line.strip()
        if cur is not None:
            cur += " " + s
        elif not s:
            continue
        elif synopsis and out and line.startswith(" "):
            out[-1] = (out[-1][0], out[-1][1] + " " + s)
            continue
        else:
            cur, start = s, n
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        out.append((start, cur))
        cur = None
    if cur:
        out.append((start, cur))
    return out


def strip_comment(line):
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def segments(line):
    """The simple commands of a command line: [[word, ...], ...]."""
    line = strip_comment(line)
    out = []
    for part in re.split(r"\s+(?:&&|\|\||\||;)\s+|;\s*$|\s+&\s*$", line):
        if not part.strip():
            continue
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        out.append(words)
    return out


def is_command(words):
    if not words:
        return False
    w = words[0]
    if w.endswith("/"):                                  # a directory (a layout listing)
        return False
    return (w in ("keyrotd", "apigee-emulator", "cmake", "ctest") or w.startswith(SCRIPT_PREFIXES)
            or w.startswith("build/"))


def unbracket(args):
    """A synopsis' words without its optional-part brackets and ellipses."""
    out = []
    for a in args:
        a = re.sub(r"(\.\.\.|…)$", "", a.replace("[", "").replace("]", ""))
        if a and a not in ("...", "…"):
            out.append(a)
    return out


PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*([.:/][A-Za-z0-9_]+)*$")


class Commands:
    """Checks one command line; collects problems as strings."""

    def __init__(self, broken_config):
        self.broken = broken_config
        self.entry = entry_point_presets()
        self.script_dirs = script_build_dirs()
        self.cache = {}

    def check_line(self, doc, line, doc_presets):
        problems = []
        cwd = ""
        for words in segments(line):
            while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
                words = words[1:]
            if words and words[0] == "sudo":
                words = words[1:]
            if not words:
                continue
            if words[0] == "cd" and len(words) > 1:
                cwd = os.path.normpath(os.path.join(cwd, words[1]))
                continue
            problems += self.check(words, cwd, doc_presets)
        return problems

    def check(self, words, cwd, doc_presets):
        prog = words[0]
        if prog in ("kubectl", "docker") and "--" in words and words.index("--") + 1 < len(words):
            inner = words[words.index("--") + 1:]       # kubectl exec POD -- keyrotd plan ...
            if inner[0] == "keyrotd":
                return self.keyrotd(inner[1:])
        if prog == "keyrotd" or prog.endswith("/daemon/keyrotd"):
            return self.build_path(prog, doc_presets) + self.keyrotd(words[1:])
        if prog == "apigee-emulator" or prog.endswith("/emulator/apigee-emulator"):
            return self.build_path(prog, doc_presets) + self.emulator(words[1:])
        if prog.startswith("build/"):
            return self.build_path(prog, doc_presets) + self.help_flags(prog, words[1:])
        if prog == "cmake":
            return self.cmake(words[1:], doc_presets)
        if prog == "ctest":
            return self.ctest(words[1:], doc_presets)
        if prog.startswith(SCRIPT_PREFIXES):
            path = os.path.join(ROOT, cwd, prog)
            if not os.path.isfile(path):
                return ["%s: no such script" % prog]
            if not os.access(path, os.X_OK):
                return ["%s: not executable" % prog]
            with open(path, errors="replace") as f:      # its options: handled in its source
                source = f.read()
            unknown = [a.split("=")[0] for a in unbracket(words[1:])
                       if a.startswith("--") and not re.search(re.escape(a.split("=")[0]) + r"(?![\w-])", source)]
            return ["%s: %s not handled anywhere in it" % (prog, ", ".join(unknown))] if unknown else []
        if prog in ("python3", "python") and len(words) > 1:
            path = os.path.join(ROOT, cwd, words[1])
            return [] if os.path.isfile(path) else ["%s: no such file (in %s)" % (words[1], cwd or ".")]
        if prog in ("kubectl", "docker", "install", "cp"):
            return self.repo_paths(prog, words, cwd)
        return []

    def repo_paths(self, prog, words, cwd):
        """Arguments naming repository files (kubectl only after -k/-f/kustomize)."""
        out = []
        for i, w in enumerate(words[1:], 1):
            if prog == "kubectl" and words[i - 1] not in ("-k", "-f", "kustomize"):
                continue
            if w.split("/")[0] in TOP_DIRS and "/" in w and not os.path.exists(os.path.join(ROOT, cwd, w)):
                out.append("%s: %s does not exist" % (prog, w))
        return out

    def build_path(self, prog, doc_presets):
        """build/NAME/REST: NAME a preset's binaryDir that the README's entry points
        or this document configure (or a directory a repo script makes); REST a
        file the build makes."""
        if not prog.startswith("build/"):
            return []
        parts = prog.split("/")
        if len(parts) < 2 or "<" in prog or not parts[1]:
            return []
        name = "build/" + parts[1]
        if parts[1] in self.script_dirs:
            return []
        if name not in PRESETS["binaryDirs"]:
            return ["%s: %s is no preset's binaryDir (%s) and no script makes it"
                    % (prog, name, ", ".join(sorted(PRESETS["binaryDirs"])))]
        preset = PRESETS["binaryDirs"][name]
        out = []
        if preset not in self.entry and preset not in doc_presets:
            out.append("%s: %s exists only after `cmake --preset %s`, which neither tests/run.sh nor "
                       "deploy/try-it.sh runs (they build %s) and this document does not show"
                       % (prog, name, preset, ", ".join(sorted(self.entry))))
        rest = "/".join(parts[2:])
        if rest and not os.path.exists(os.path.join(h.BUILD, rest)):
            out.append("%s: the build makes no %s (not in %s)" % (prog, rest, h.BUILD))
        return out

    def help_flags(self, prog, args):
        """Another binary of the build (http_bench ...): the options used are
        among those its --help names."""
        flags = [a.split("=")[0] for a in unbracket(args) if a.startswith("--")]
        binary = os.path.join(h.BUILD, *prog.split("/")[2:])
        if not flags or len(prog.split("/")) < 3 or not os.access(binary, os.X_OK):
            return []
        key = ("help", binary)
        if key not in self.cache:
            r = run([binary, "--help"], timeout=10)
            self.cache[key] = set(re.findall(r"--[\w-]+", r.stdout + r.stderr))
        unknown = [f for f in flags if f not in self.cache[key]]
        return ["%s: %s not among the options of its --help" % (prog, ", ".join(unknown))] if unknown else []

    def keyrotd(self, args):
        args = unbracket(args)
        if not args or args[0] == "options":
            return []
        if re.fullmatch(r"[A-Z_]+", args[0]):       # a placeholder: keyrotd COMMAND ...
            return []
        argv, i = [], 0
        while i < len(args):
            a = args[i]
            if a in ("-c", "--config"):
                argv += [a, self.broken]
                i += 2
                continue
            if a.startswith("--config="):
                a = "--config=" + self.broken
            argv.append(a)
            i += 1
        want = {"--version": 0, "--help": 0}.get(argv[0], 1 if argv[0] == "validate" else 78)
        key = ("keyrotd", tuple(argv))
        if key not in self.cache:
            r = run([h.KEYROTD, *argv], env={"KEYROTD_CONFIG": self.broken})
            self.cache[key] = r
        r = self.cache[key]
        if r.returncode != want:
            msg = r.stderr.strip().split("\n")[0]
            return ["keyrotd %s: exit %d, want %d (%s)" % (" ".join(args), r.returncode, want, msg)]
        return []

    def emulator(self, args):
        args = unbracket(args)
        if "help" not in self.cache:
            self.cache["help"] = set(re.findall(r"--[\w-]+", run([h.EMULATOR, "--help"]).stdout))
        unknown = [a for a in args if a.startswith("--") and a.split("=")[0] not in self.cache["help"]]
        if unknown:
            return ["apigee-emulator: %s not among the options of apigee-emulator --help" % ", ".join(unknown)]
        if any(PLACEHOLDER.match(a) for a in args):      # a synopsis: the options are known, enough
            return []
        argv, i = [], 0
        while i < len(args):
            if args[i] == "--seed":
                i += 2
                continue
            argv.append(args[i])
            i += 1
        missing = os.path.join(tempfile.gettempdir(), "docs-test-no-such-seed.json")
        argv = [a for a in argv] + ["--seed", missing]
        key = ("emulator", tuple(argv))
        if key not in self.cache:
            self.cache[key] = run([h.EMULATOR, *argv], timeout=10)
        r = self.cache[key]
        out = []
        if r.returncode != 1 or "seed" not in r.stderr:
            out.append("apigee-emulator %s: exit %d, want 1 (only the missing stand-in seed): %s"
                       % (" ".join(args), r.returncode, r.stderr.strip().split("\n")[0]))
        if "--seed" in args:
            seed = args[args.index("--seed") + 1]
            if "/" in seed and seed.split("/")[0] in TOP_DIRS and not os.path.exists(os.path.join(ROOT, seed)):
                out.append("apigee-emulator --seed %s: no such file" % seed)
        return out

    def cmake(self, args, doc_presets):
        out = []
        opts = dict(zip(args, args[1:] + [""]))
        if "--build" in args:
            if opts["--build"] == "--preset" or "--preset" in opts:
                p = opts.get("--preset", "")
                if p not in PRESETS["build"]:
                    out.append("cmake --build --preset %s: no such build preset" % p)
            else:
                out += self.build_dir(opts["--build"], doc_presets, "cmake --build")
        elif "--install" in args:
            out += self.build_dir(opts["--install"], doc_presets, "cmake --install")
        elif "--preset" in args:
            if opts["--preset"] not in PRESETS["configure"]:
                out.append("cmake --preset %s: no such configure preset" % opts["--preset"])
        if "--target" in args:
            for t in args[args.index("--target") + 1:]:
                if t.startswith("-"):
                    break
                if t not in build_targets():
                    out.append("cmake --target %s: no such target in %s" % (t, h.BUILD))
        return out

    def build_dir(self, d, doc_presets, what):
        d = os.path.normpath(d)
        if d not in PRESETS["binaryDirs"]:
            return ["%s %s: no preset's binaryDir" % (what, d)]
        return [p.replace(d + "/:", d + ":") for p in self.build_path(d + "/", doc_presets)]

    def ctest(self, args, doc_presets):
        out = []
        opts = dict(zip(args, args[1:] + [""]))
        if "--preset" in opts and opts["--preset"] not in PRESETS["test"]:
            out.append("ctest --preset %s: no such test preset" % opts["--preset"])
        if "--test-dir" in opts:
            out += self.build_dir(opts["--test-dir"], doc_presets, "ctest --test-dir")
        sel = []
        for flag in ("-L", "-R", "-E", "-LE"):
            if flag in opts:
                sel += [flag, opts[flag]]
        if sel:
            r = run(["ctest", "--test-dir", h.BUILD, "-N", *sel], timeout=30)
            m = re.search(r"Total Tests: (\d+)", r.stdout)
            if not m or int(m.group(1)) == 0:
                out.append("ctest %s: selects no test" % " ".join(sel))
        return out


def doc_presets(blocks, spans):
    """Presets a document configures itself (`cmake --preset NAME`)."""
    text = "\n".join(b.body for b in blocks) + "\n".join(s for _, s in spans)
    return set(re.findall(r"cmake --preset (\w+)", text))


# ---------------------------------------------------------------- the checks
# Each returns a list of problems ("FILE:LINE: what is wrong") and how many
# items it checked; the test classes run them over the documents, SelfTest
# over the broken fixtures in tests/fixtures/docs/.

def check_links(docs):
    problems, n = [], 0
    for doc in docs:
        _, prose = parse_doc(doc)
        base = os.path.dirname(doc)
        for line, text in prose:
            for m in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", re.sub(r"`[^`]*`", "", text)):
                target = m.group(1)
                if re.match(r"^[a-z][\w+.-]*:", target):
                    continue
                n += 1
                path, _, anchor = target.partition("#")
                rel = os.path.normpath(os.path.join(base, path)) if path else doc
                if not os.path.exists(os.path.join(ROOT, rel)):
                    problems.append("%s:%d: link %s: %s does not exist" % (doc, line, target, rel))
                elif anchor and rel.endswith(".md") and anchor not in headings(rel):
                    problems.append("%s:%d: link %s: no heading #%s in %s" % (doc, line, target, anchor, rel))
    return problems, n


def check_mentions(docs):
    """Every NAME.md a document names (in prose, code or a comment) exists:
    next to the document, at the top of the repository, or in docs/."""
    problems, n = [], 0
    for doc in docs:
        base = os.path.dirname(doc)
        for num, text in enumerate(read(doc).split("\n"), 1):
            for m in re.finditer(r"(?<![\w./-])([\w./-]*[\w-]\.md)\b", text):
                name = m.group(1)
                if re.search(r"[a-z]+:(//\S*)?$", text[:m.start()]):     # a URL
                    continue
                n += 1
                cands = [os.path.join(base, name), name, os.path.join("docs", name)]
                if not any(os.path.isfile(os.path.join(ROOT, c)) for c in cands):
                    problems.append("%s:%d: mentions %s, which is not in the repository" % (doc, num, name))
    return problems, n


def yaml_kind(docs):
    maps = []
    for d in docs:
        if isinstance(d, list):
            maps += d
        elif d is not None:
            maps.append(d)
    if not maps or not all(isinstance(m, dict) for m in maps):
        return "other"
    keys = set().union(*(set(m) for m in maps))
    if keys & POLICY_KEYS and keys <= POLICY_KEYS:
        return "policy"
    if keys & CONFIG_KEYS and keys <= CONFIG_KEYS:
        return "config"
    if keys & (POLICY_KEYS | CONFIG_KEYS) and not keys - (POLICY_KEYS | CONFIG_KEYS):
        return "mixed"
    return "other"


STAND_IN_POLICY = "name: stand-in\norganization: stand-in\n"


def validate(config):
    return run([h.KEYROTD, "validate", "-c", config], timeout=15)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def stand_in(text, workdir):
    """The config block with a placeholder that cannot exist here (a `policies:`
    path under /etc) pointed at a directory holding a stand-in policy."""
    pol = write(os.path.join(workdir, "policies.d", "stand-in.yaml"), STAND_IN_POLICY)

    def repl(m):
        value = m.group(2)
        if value.startswith("/") and not os.path.exists(value):
            return m.group(1) + os.path.dirname(pol) + m.group(3)
        return m.group(0)
    return re.sub(r"^(policies:\s*)(\S+)(.*)$", repl, text, flags=re.M)


def check_yaml(docs, tmp):
    """YAML blocks parse; a config or policy block passes `keyrotd validate`
    (exit 0, or 1 when marked invalid)."""
    problems, n = [], 0
    for doc in docs:
        for i, b in enumerate(parse_doc(doc)[0]):
            if b.lang not in ("yaml", "yml") or b.marker == "skip":
                continue
            try:
                ydocs = list(yaml.safe_load_all(b.body))
            except yaml.YAMLError as e:
                if b.marker != "invalid":
                    problems.append("%s: not YAML: %s" % (b.where(), str(e).replace("\n", " ")))
                continue
            kind = yaml_kind(ydocs)
            d = os.path.join(tmp, "%s-%d" % (re.sub(r"\W", "_", doc), i))
            if kind == "config":
                cfg = write(os.path.join(d, "keyrotd.yaml"), stand_in(b.body, d))
            elif kind == "policy":
                write(os.path.join(d, "policies", "block.yaml"), b.body)
                cfg = write(os.path.join(d, "keyrotd.yaml"), "policies: policies\n")
            elif kind == "mixed":
                problems.append("%s: mixes config and policy fields" % b.where())
                continue
            else:
                continue
            n += 1
            r = validate(cfg)
            want = 1 if b.marker == "invalid" else 0
            if r.returncode != want:
                problems.append("%s: keyrotd validate exit %d, want %d:\n    %s"
                                % (b.where(), r.returncode, want, r.stderr.strip().replace("\n", "\n    ")))
    return problems, n


def is_policy_file(path):
    try:
        with open(path) as f:
            return yaml_kind(list(yaml.safe_load_all(f))) == "policy"
    except yaml.YAMLError:
        return False


def check_example_installed(cfg, poldir, tmp):
    """The config unchanged, next to a policies directory holding the example
    policies of `poldir` (a relative `policies:` is created beside it; an
    absolute one, /etc/keyrotd/policies.d, is moved there)."""
    d = os.path.join(tmp, re.sub(r"\W", "_", cfg))
    text = read(cfg)
    m = re.search(r"^policies:\s*(\S+)", text, re.M)
    target = m.group(1) if m else "/etc/keyrotd/policies.d"
    if target.startswith("/"):
        dest = os.path.join(d, "policies.d")
        if m:
            text = text[:m.start(1)] + dest + text[m.end(1):]
        else:
            text += "\npolicies: %s\n" % dest
    else:
        dest = os.path.join(d, target)
    os.makedirs(dest)
    n = 0
    for p in sorted(glob.glob(os.path.join(ROOT, poldir, "*"))):
        if p.endswith((".yaml", ".yml")) and is_policy_file(p):
            with open(p) as src:
                write(os.path.join(dest, os.path.basename(p)), src.read())
            n += 1
    if n == 0:
        return ["%s: no example policy in %s" % (cfg, poldir)]
    r = validate(write(os.path.join(d, "keyrotd.yaml"), text))
    if r.returncode != 0:
        return ["%s (with the policies of %s): keyrotd validate exit %d\n    %s"
                % (cfg, poldir, r.returncode, r.stderr.strip().replace("\n", "\n    "))]
    return []


def check_example_repo_policies(cfg, tmp):
    """`policies:` pointed at the repository's policies/ directory, which also
    holds the JSON Schemas and the example config itself."""
    text = read(cfg)
    repo = os.path.join(ROOT, "policies")
    if re.search(r"^policies:", text, re.M):
        text = re.sub(r"^policies:\s*\S+", "policies: " + repo, text, flags=re.M)
    else:
        text += "\npolicies: %s\n" % repo
    r = validate(write(os.path.join(tmp, re.sub(r"\W", "_", cfg) + "-repo.yaml"), text))
    if r.returncode != 0:
        lines = r.stderr.strip().split("\n")
        return ["%s with `policies: <repo>/policies`: keyrotd validate exit %d, %d problems, first:\n    %s"
                % (cfg, r.returncode, len(lines), "\n    ".join(lines[:4]))]
    return []


def repo_path(p):
    """A path into this repository: its first directory exists here, and so
    does its second when it has more (lib/googlecloudsdk/... is gcloud's)."""
    parts = p.rstrip("/").split("/")
    if p.endswith("/") and len(parts) == 1:
        parts.append("")
    if len(parts) < 2 or parts[0] not in TOP_DIRS or "<" in p or "*" in parts[0]:
        return False
    return len(parts) == 2 or not parts[1] or "{" in parts[1] or os.path.isdir(os.path.join(ROOT, *parts[:2]))


def path_exists(p):
    m = re.search(r"\{([^}]*)\}", p)
    if m:
        return all(path_exists(p[:m.start()] + alt + p[m.end():]) for alt in m.group(1).split(","))
    return bool(glob.glob(os.path.join(ROOT, p)))


def check_commands(docs, tmp):
    broken = write(os.path.join(tmp, "broken.yaml"), "notAField: 1\n")
    cmds = Commands(broken)
    problems, n = [], 0
    for doc in docs:
        blocks, prose = parse_doc(doc)
        spans = inline_spans(prose)
        presets_here = doc_presets(blocks, spans)
        lines = []
        for b in blocks:
            if b.marker == "skip":
                continue
            if b.lang in ("sh", "bash", "shell", "console"):
                lines += [(b.line + k, t) for k, t in join_continuations(b.body)]
            elif b.lang == "":
                for k, t in join_continuations(b.body, synopsis=True):
                    if is_command(t.split()):
                        lines.append((b.line + k, t))
        for line, code in spans:
            words = code.split()
            if words and words[0] == "kubectl" and " -- keyrotd " in code:
                lines.append((line, code))
            elif is_command(words) and (len(words) > 1 or words[0] in ("keyrotd", "apigee-emulator")
                                        or words[0].startswith("build/")):
                lines.append((line, code))
            elif len(words) == 1 and repo_path(words[0]):
                n += 1
                if not path_exists(words[0]):
                    problems.append("%s:%d: `%s`: no such file or directory" % (doc, line, code))
        for line, text in lines:
            if os.environ.get("DOCS_TEST_VERBOSE"):
                print("%s:%d: %s" % (doc, line, text), file=sys.stderr)
            n += 1
            problems += ["%s:%d: %s" % (doc, line, p) for p in cmds.check_line(doc, text, presets_here)]
    return problems, n


def check_json(docs):
    problems, n = [], 0
    for doc in docs:
        for b in parse_doc(doc)[0]:
            if b.lang not in ("json", "jsonl") or b.marker in ("skip", "sketch") or "…" in b.body \
                    or "..." in b.body:
                continue
            n += 1
            try:
                json.loads(b.body)
            except ValueError as e:
                try:                                   # JSON Lines: one object a line
                    for ln in b.body.split("\n"):
                        if ln.strip():
                            json.loads(ln)
                except ValueError:
                    problems.append("%s: not JSON (%s); a sketch needs `<!-- docs-test: sketch -->` "
                                    "on the line before its fence" % (b.where(), e))
    return problems, n


def check_try_it(tmp, script="deploy/try-it.sh"):
    """The config and policy deploy/try-it.sh writes (its here-documents, with
    the emulator's port, the listen address and the demo directory filled in)
    pass `keyrotd validate`; the build paths it runs are the ones it builds."""
    text = read(script)
    docs = re.findall(r'cat >"([^"]+)" <<\'?(\w+)\'?\n(.*?)\n\2\n', text, re.S)
    if not docs:
        return ["%s: no here-document found" % script], 0
    demo = os.path.join(tmp, "demo")
    subst = {"$demo": demo, "$port": "1", "$listen": "127.0.0.1:0"}
    config = None
    for path, _, body in docs:
        for k, v in subst.items():
            path, body = path.replace(k, v), body.replace(k, v)
        if re.search(r"\$\w", body):
            return ["%s: a here-document uses a variable this test does not fill in: %s"
                    % (script, re.search(r"\$\w+", body).group(0))], 0
        write(path, body)
        if path.endswith("keyrotd.yaml"):
            config = path
    if config is None:
        return ["%s: writes no keyrotd.yaml" % script], 0
    r = validate(config)
    problems = [] if r.returncode == 0 else [
        "%s: its demo config: keyrotd validate exit %d\n    %s"
        % (script, r.returncode, r.stderr.strip().replace("\n", "\n    "))]
    built = set(re.findall(r"cmake --build --preset (\w+)", text))
    for d in set(re.findall(r"\b(build/\w+)/", text)):
        if PRESETS["binaryDirs"].get(d) not in built:
            problems.append("%s: runs binaries from %s, which it does not build" % (script, d))
    return problems, len(docs)


EXAMPLES = {
    # an example config kept in the repository: the directory of the example
    # policies it is installed beside
    "policies/keyrotd.example.yaml": "policies",
    "deploy/kubernetes/base/config/keyrotd.yaml": "deploy/kubernetes/base/config/policies",
}


# ---------------------------------------------------------------- the tests

class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="docs-test-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def ok(self, result, what, least=1):
        problems, n = result
        if problems:
            self.fail("%d %s:\n  " % (len(problems), what) + "\n  ".join(problems))
        if "DOCS_TEST_FILES" not in os.environ:
            self.assertGreaterEqual(n, least, "%s: only %d checked: is the parser broken?" % (what, n))


class LinkTest(Base):
    def test_relative_links_resolve(self):
        self.ok(check_links(DOC_FILES), "broken links", 10)

    def test_mentioned_documents_exist(self):
        self.ok(check_mentions(DOC_FILES), "documents that do not exist", 10)

    def test_source_comments_name_documents_that_exist(self):
        # A comment in the C++ sources that sends the reader to NAME.md sends
        # them to a document of this repository (docs/NAME.md or beside it).
        if "DOCS_TEST_FILES" in os.environ:
            self.skipTest("DOCS_TEST_FILES narrows the run to documents")
        self.ok(check_mentions(SOURCE_FILES), "source comments naming documents that do not exist", 20)


class YamlTest(Base):
    def test_config_and_policy_blocks_validate(self):
        self.ok(check_yaml(DOC_FILES, self.dir), "YAML blocks", 4)


class ExampleConfigTest(Base):
    def test_examples_validate_as_installed(self):
        problems = []
        for cfg, poldir in EXAMPLES.items():
            problems += check_example_installed(cfg, poldir, self.dir)
        self.ok((problems, len(EXAMPLES)), "example configs")

    def test_examples_with_the_repos_policies_directory(self):
        problems = []
        for cfg in EXAMPLES:
            problems += check_example_repo_policies(cfg, self.dir)
        self.ok((problems, len(EXAMPLES)), "example configs against the repository's policies/")


    def test_try_it_demo_config(self):
        self.ok(check_try_it(self.dir), "deploy/try-it.sh's demo", 2)


class CommandTest(Base):
    def test_commands_work_as_written(self):
        self.ok(check_commands(DOC_FILES, self.dir), "commands that do not work as written", 40)


class JsonTest(Base):
    def test_json_blocks_parse(self):
        self.ok(check_json(DOC_FILES), "JSON blocks", 3)


class SelfTest(Base):
    """Every check can fail: each fixture in tests/fixtures/docs/ breaks things
    on purpose and names, in `<!-- expect: TEXT -->` lines, the problems the
    checks must report (and `<!-- expect-count: N -->` how many)."""
    FIXTURES = "tests/fixtures/docs"

    def fixture(self, name):
        rel = os.path.join(self.FIXTURES, name)
        text = read(rel)
        expect = re.findall(r"<!--\s*expect:\s*(.*?)\s*-->", text)
        count = re.search(r"<!--\s*expect-count:\s*(\d+)\s*-->", text)
        return rel, expect, int(count.group(1)) if count else None

    def expect(self, name, check):
        rel, expect, count = self.fixture(name)
        problems, _ = check([rel])
        text = "\n".join(problems)
        for e in expect:
            self.assertIn(e, text, "%s: expected a problem with %r; got:\n%s" % (rel, e, text))
        if count is not None:
            self.assertEqual(len(problems), count, "%s: %d problems, want %d:\n%s" % (rel, len(problems), count, text))

    def test_links(self):
        self.expect("links.md", check_links)

    def test_mentions(self):
        self.expect("mentions.md", check_mentions)

    def test_yaml(self):
        self.expect("yaml.md", lambda d: check_yaml(d, self.dir))

    def test_commands(self):
        self.expect("commands.md", lambda d: check_commands(d, self.dir))

    def test_json(self):
        self.expect("json.md", check_json)

    def test_try_it(self):
        problems, _ = check_try_it(self.dir, os.path.join(self.FIXTURES, "try-it-broken.sh"))
        text = "\n".join(problems)
        self.assertIn('unknown field "intervall"', text)
        self.assertIn("runs binaries from build/debug, which it does not build", text)
        self.assertEqual(len(problems), 2, text)

    def test_example_config(self):
        cfg = os.path.join(self.FIXTURES, "broken-example.yaml")
        self.assertTrue(check_example_installed(cfg, "policies", self.dir))
        self.assertTrue(check_example_repo_policies(cfg, self.dir))
        # and a good config passes both when the policies directory is clean
        good = os.path.join(self.FIXTURES, "good-example.yaml")
        self.assertEqual(check_example_installed(good, "policies", self.dir), [])


if __name__ == "__main__":
    if not os.path.exists(h.KEYROTD):
        sys.exit("no keyrotd at %s: set KEYROT_BUILD_DIR" % h.KEYROTD)
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
