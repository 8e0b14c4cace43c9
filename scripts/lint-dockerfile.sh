#!/usr/bin/env bash
# Lint a Dockerfile against the rules runbook's image follows (hadolint is
# not in Debian; these are the few of its rules that matter here, plus ours),
# and check its build context: every COPY source is there after .dockerignore.
#
#   bash scripts/lint-dockerfile.sh [DOCKERFILE [CONTEXT]]   # defaults: ./Dockerfile, its directory
#
# Rules (a violation prints FILE:LINE: RULE: why, and the script exits 1):
#   pinned-base      FROM names a fixed release: a digest, or a tag with a point
#                    release (12.11-slim) or a date (bookworm-20250520-slim);
#                    never a moving tag (bookworm-slim, 12-slim, latest, none).
#                    One exception: FROM ${ARG} where the ARG's default is a
#                    Debian release by codename or number (debian:bookworm-slim,
#                    debian:12): the base is then the builder's choice (issue
#                    21: CI builds on a local mmdebstrap image, having no
#                    registry; a release passes a digest), and the default is a
#                    stable release, which takes only point releases and security
#                    fixes.  A default of another image, or none, still fails.
#   no-latest        `latest` nowhere (tags, ARG defaults, download URLs)
#   apt-get          apt-get install has -y and --no-install-recommends; apt-get
#                    update only in the RUN that installs; that RUN removes
#                    /var/lib/apt/lists/*; `apt` (the interactive one) is not used
#   pipefail         a RUN with a pipe comes after SHELL [... "-o", "pipefail" ...]
#   verified-download every download (curl, wget) in a RUN is checked with
#                    sha256sum -c there, and none is piped into a shell
#   copy-not-add     ADD is not used (it fetches URLs and unpacks archives silently)
#   workdir          WORKDIR is absolute; RUN does not `cd` (use WORKDIR)
#   non-root         the final stage sets USER, to someone other than root/0,
#                    before its ENTRYPOINT
#   exec-form        ENTRYPOINT and CMD are JSON arrays (signals reach runbook,
#                    no shell in between)
#   audit-volume     the final stage declares a VOLUME (the audit log)
#   context          every COPY source (not --from) exists in the context after
#                    .dockerignore, and .dockerignore leaves out .git and build*
# Not rules: HEALTHCHECK (the container runs one runbook and exits, a job or a
# CronJob: there is no long-running service to probe, and Kubernetes ignores
# it); pinned apt package versions (the base image pins the Debian point
# release, and within it a stable release only takes security fixes).
set -euo pipefail
dockerfile=${1:-Dockerfile}
context=${2:-$(dirname "$dockerfile")}
[ -f "$dockerfile" ] || { echo "lint-dockerfile: no such file: $dockerfile" >&2; exit 2; }
exec python3 - "$dockerfile" "$context" <<'PY'
import fnmatch, json, os, re, sys

path, context = sys.argv[1], sys.argv[2]
errors = []

def err(line, rule, why):
    errors.append(f"{path}:{line}: {rule}: {why}")

# ---- instructions: continuation lines joined, comments dropped ----------------
instrs = []  # (line, KEYWORD, arguments)
with open(path) as f:
    lines = f.read().split("\n")
i = 0
while i < len(lines):
    raw = lines[i]
    start = i + 1
    i += 1
    if not raw.strip() or raw.lstrip().startswith("#"):
        continue
    text = raw
    while text.rstrip().endswith("\\") and i < len(lines):
        text = text.rstrip()[:-1] + " "
        nxt = lines[i]
        i += 1
        if nxt.lstrip().startswith("#"):
            continue
        text += nxt
    kw, _, args = text.strip().partition(" ")
    instrs.append((start, kw.upper(), args.strip()))

def json_array(args):
    try:
        v = json.loads(args)
    except ValueError:
        return None
    return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None

# ---- per-instruction rules -----------------------------------------------------
stages = []          # names of the stages so far
final = None         # index in instrs where the final stage starts
pipefail = False
args_default = {}
for n, (line, kw, args) in enumerate(instrs):
    if re.search(r"\blatest\b", args):
        err(line, "no-latest", "`latest` moves under you; name a version")
    if kw == "ARG":
        name, _, val = args.partition("=")
        args_default[name] = val.strip('"')
    elif kw == "FROM":
        final, pipefail = n, False
        words = [w for w in args.split() if not w.startswith("--")]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args_default.get(m.group(1), ""), words[0])
        from_arg = re.fullmatch(r"\$\{?(\w+)\}?", words[0]) is not None
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.append(words[2])
        if image in stages or image == "scratch":
            continue
        if "@sha256:" in image:
            continue
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if from_arg and re.fullmatch(r"debian:([a-z]+|\d+(\.\d+)?)(-slim)?", image) \
                and tag != "latest":
            continue  # the builder's choice, a Debian stable release by default
        if from_arg and not image:
            err(line, "pinned-base", f"FROM {words[0]}: the build argument has no default")
        elif not tag:
            err(line, "pinned-base", f"{image} has no tag (it means latest)")
        elif not re.search(r"\d+\.\d+|\d{8}", tag):
            err(line, "pinned-base", f"{image}: tag {tag} moves; use a point release or a dated tag")
    elif kw == "SHELL":
        a = json_array(args) or []
        pipefail = "pipefail" in a
    elif kw == "ADD":
        err(line, "copy-not-add", "use COPY (ADD fetches URLs and unpacks archives implicitly)")
    elif kw == "WORKDIR":
        if not args.startswith("/"):
            err(line, "workdir", f"WORKDIR {args} is relative")
    elif kw in ("ENTRYPOINT", "CMD"):
        if json_array(args) is None:
            err(line, "exec-form", f"{kw} in shell form; write it as a JSON array")
    elif kw == "RUN":
        cmds = [c.strip() for c in re.split(r"&&|\|\||;", args)]
        if any(re.match(r"(sudo\s+)?apt\s", c) for c in cmds):
            err(line, "apt-get", "use apt-get (apt's interface is not for scripts)")
        installs = [c for c in cmds if re.search(r"\bapt-get\b.*\binstall\b", c)]
        updates = [c for c in cmds if re.search(r"\bapt-get\b.*\bupdate\b", c)]
        for c in installs:
            if not re.search(r"(^|\s)(-y|--yes|-[a-z]*y[a-z]*|--assume-yes)(\s|$)", c):
                err(line, "apt-get", "apt-get install without -y")
            if "--no-install-recommends" not in c:
                err(line, "apt-get", "apt-get install without --no-install-recommends")
        if updates and not installs:
            err(line, "apt-get", "apt-get update in a RUN that installs nothing (a stale cache layer)")
        if (installs or updates) and not re.search(r"rm\s+-[a-z]*r[a-z]*f?[a-z]*\s+(\S+\s+)*/var/lib/apt/lists/\*", args):
            err(line, "apt-get", "the RUN that installs does not rm -rf /var/lib/apt/lists/*")
        if re.search(r"(?<!\|)\|(?!\|)", args) and not pipefail:
            err(line, "pipefail", "a pipe without SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"] hides failures")
        # curl or wget run as a command (not a package name in apt-get install);
        # one inside $(...) reads a checksum, it fetches nothing to run
        if re.search(r"(^|[;&|(]\s*)(curl|wget)\s", args):
            if re.search(r"\|\s*(sudo\s+)?(ba|da|z)?sh\b", args):
                err(line, "verified-download", "a download piped into a shell")
            fetched = len(re.findall(r"(?:^|[;&|]\s*)(?:curl|wget)\s", args))
            checked = len(re.findall(r"sha256sum\s+(?:-c|--check)\b", args))
            if checked < fetched:
                err(line, "verified-download",
                    f"{fetched} download(s), {checked} checked with sha256sum -c")
        if any(re.match(r"cd\s", c) for c in cmds):
            err(line, "workdir", "cd in RUN; use WORKDIR")

# ---- the final stage -----------------------------------------------------------
if final is None:
    err(1, "pinned-base", "no FROM")
else:
    tail = instrs[final:]
    user, entry_line = None, None
    for line, kw, args in tail:
        if kw == "USER":
            user = args.split(":")[0]
        if kw == "ENTRYPOINT":
            entry_line = line
            if user in (None, "root", "0"):
                err(line, "non-root", "ENTRYPOINT runs as root: set USER to an unprivileged user before it")
    if entry_line is None:
        err(instrs[final][0], "non-root", "the final stage has no ENTRYPOINT")
    elif user in (None, "root", "0"):
        pass  # said above
    if not any(kw == "VOLUME" for _, kw, _ in tail):
        err(instrs[final][0], "audit-volume", "the final stage declares no VOLUME for the audit log")

# ---- the build context -----------------------------------------------------------
ignore = []
di = os.path.join(context, ".dockerignore")
if os.path.exists(di):
    with open(di) as f:
        ignore = [l.strip() for l in f if l.strip() and not l.startswith("#")]
else:
    err(1, "context", f"no .dockerignore in {context}")

def pattern_re(p):
    # Go's filepath.Match plus **, as docker reads .dockerignore
    p = os.path.normpath(p.lstrip("/"))
    out = ""
    k = 0
    while k < len(p):
        if p.startswith("**", k):
            out += ".*"
            k += 2
        elif p[k] == "*":
            out += "[^/]*"
            k += 1
        elif p[k] == "?":
            out += "[^/]"
            k += 1
        else:
            out += re.escape(p[k])
            k += 1
    return re.compile(out + "$")

rules = [(p.startswith("!"), pattern_re(p.lstrip("!"))) for p in ignore]

def excluded(rel):
    # a path is out when it or one of its parent directories is (last rule wins)
    parts = rel.split("/")
    for depth in range(1, len(parts) + 1):
        sub = "/".join(parts[:depth])
        out = False
        for neg, rx in rules:
            if rx.match(sub):
                out = not neg
        if out:
            return True
    return False

for must in (".git", "build"):
    if not excluded(must):
        err(1, "context", f".dockerignore does not leave out {must}/")

files = []
for root, dirs, names in os.walk(context):
    rel_root = os.path.relpath(root, context)
    rel_root = "" if rel_root == "." else rel_root + "/"
    dirs[:] = [d for d in dirs if not excluded(rel_root + d)]
    files += [rel_root + n for n in names if not excluded(rel_root + n)]

for line, kw, args in instrs:
    if kw != "COPY":
        continue
    words = args.split()
    if any(w.startswith("--from") for w in words):
        continue
    words = [w for w in words if not w.startswith("--")]
    a = json_array(args)
    srcs = (a or words)[:-1]
    for s in srcs:
        s = os.path.normpath(s.lstrip("/"))
        if s == ".":
            continue
        rx = re.compile(fnmatch.translate(s).replace(".*", "[^/]*"))
        if not any(rx.match(f) or f.startswith(s + "/") for f in files):
            err(line, "context", f"COPY {s}: not in the build context (missing or in .dockerignore)")

if errors:
    print("\n".join(errors), file=sys.stderr)
    print(f"lint-dockerfile: {len(errors)} violation(s) in {path}", file=sys.stderr)
    sys.exit(1)
size = sum(os.path.getsize(os.path.join(context, f)) for f in files)
print(f"lint-dockerfile: {path} follows the rules; context {len(files)} files, {size // 1024} KiB")
PY
