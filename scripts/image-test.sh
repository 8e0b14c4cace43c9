#!/usr/bin/env bash
# Build the container image (./Dockerfile) and run it, with no registry: CI's
# stage 6 (.ci/run), issue 21.  As root (dockerd and mmdebstrap need it):
#
#   bash scripts/image-test.sh [--base-tar FILE]
#
#   1. engine   a throwaway Docker Engine, Debian's dockerd started by
#               tests/fixtures/dockerd.py (own data/exec roots and socket
#               under /tmp, no bridge), stopped by its pid at the end; with
#               the overlay2 storage driver when the kernel has it, else vfs
#               (the tests' driver: it copies the whole filesystem at each of
#               the 28 build steps, 4 to 25 s each, and deleting those copies
#               took 100 s; about 3 minutes more in all)
#   2. base     `mmdebstrap --variant=minbase bookworm` from deb.debian.org
#               (bookworm, -updates, -security; with debian:bookworm-slim's
#               dpkg excludes: no docs, man pages or locales), then
#               `docker import`: the stand-in for debian:bookworm-slim.
#               --base-tar FILE keeps that tarball in FILE and reuses it
#               when FILE exists (for reruns by hand; CI makes it afresh)
#   3. build    docker build --network host (the engine has no bridge, apt
#               needs the host's network) --build-arg BASE=<the local base>
#               --build-arg RUNBOOK_GIT_DESCRIBE=<git describe of this tree>
#   4. runs, as the image's user, never root:
#               `runbook version` is this tree's git describe, uid is not 0;
#               the quick-start example (the tree mounted read-only on
#               /work, as the README runs the image), --dry-run then live
#               with the audit log on a named volume; a second container on
#               that volume lists and verifies the audit log and finds the
#               first one's run (the volume outlived the container).
#
# Prints the time of each step and the image's size.  Exits 1, saying what
# failed (the build's whole log when the build fails), on any failure; the
# engine, its images, containers and volumes and the temp dir go either way.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import json, os, re, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, "tests/fixtures")
import dockerd  # noqa: E402

BASE_TAG = "runbook-ci/debian:bookworm-minbase"
IMAGE = "runbook-ci/runbook:test"
VOLUME = "runbook-ci-audit"
AUDIT_DIR = "/home/runbook/.local/state/runbook"  # the image's VOLUME
# What debian:bookworm-slim leaves out (debuerreotype's slimify list): the
# base, and every package installed on it later, without them.
SLIM = ["path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
        "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/groff/*",
        "path-exclude=/usr/share/info/*", "path-exclude=/usr/share/lintian/*",
        "path-exclude=/usr/share/linda/*", "path-exclude=/usr/share/locale/*",
        "path-include=/usr/share/locale/locale.alias"]
SOURCES = ["deb http://deb.debian.org/debian bookworm main",
           "deb http://deb.debian.org/debian bookworm-updates main",
           "deb http://deb.debian.org/debian-security bookworm-security main"]

times = []


class Fail(Exception):
    pass


def timed(name, fn, *args):
    print("\n== %s" % name, flush=True)
    t0 = time.monotonic()
    out = fn(*args)
    times.append((name, time.monotonic() - t0))
    print("   (%.1f s)" % times[-1][1], flush=True)
    return out


def docker(d, *args, check=True, timeout=600):
    """The engine's CLI; prints the command; stdout, or Fail with stderr."""
    print("$ docker " + " ".join(args), flush=True)
    r = d.run(*args, check=False, timeout=timeout)
    if check and r.returncode:
        raise Fail("docker %s: exit %d\n%s%s" % (" ".join(args), r.returncode,
                                                 r.stdout, r.stderr))
    return r


def make_base(d, tmp, base_tar):
    tar = base_tar or os.path.join(tmp, "base.tar")
    if base_tar and os.path.exists(base_tar):
        print("reusing %s (--base-tar)" % base_tar)
    else:
        argv = ["mmdebstrap", "--variant=minbase", "--format=tar", "--quiet"]
        argv += ["--dpkgopt=" + o for o in SLIM]
        # /usr merged by symlinks as debootstrap (and so debian:bookworm-slim)
        # does, not by the usrmerge package, which would pull in perl (60 MB)
        argv += ["--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"]
        argv += ["bookworm", tar + ".part"] + SOURCES
        print("$ " + " ".join(argv), flush=True)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode:
            raise Fail("mmdebstrap: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
        os.rename(tar + ".part", tar)
    print("base tarball: %.0f MB" % (os.path.getsize(tar) / 1e6))
    docker(d, "import", "--change", 'CMD ["bash"]', tar, BASE_TAG)
    if not base_tar:
        os.unlink(tar)


def git_describe():
    r = subprocess.run(["git", "-c", "safe.directory=*", "describe", "--tags", "--always",
                        "--dirty"], capture_output=True, text=True)
    if r.returncode or not r.stdout.strip():
        raise Fail("git describe failed (a clone with its .git is needed): " + r.stderr)
    return r.stdout.strip()


def build(d, tmp, describe):
    argv = ["build", "--network", "host", "--build-arg", "BASE=" + BASE_TAG,
            "--build-arg", "RUNBOOK_GIT_DESCRIBE=" + describe, "-t", IMAGE, "."]
    print("$ docker " + " ".join(argv) + "   # its Step lines; the whole log if it fails",
          flush=True)
    log = os.path.join(tmp, "build.log")
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": d.host,
           "DOCKER_CONFIG": os.path.join(d.tmp, "cli")}
    with open(log, "w") as f:
        p = subprocess.Popen([dockerd.DOCKER] + argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=env)
        t0 = time.monotonic()
        for line in p.stdout:
            f.write(line)
            if line.startswith(("Step ", "Successfully")):
                # the time since the build started: what each step costs
                print("  %5.0fs %s" % (time.monotonic() - t0, line.rstrip()), flush=True)
        rc = p.wait()
    if rc:
        with open(log) as f:
            sys.stderr.write(f.read())
        raise Fail("docker build: exit %d (its log above)" % rc)


def check_version(d, describe):
    out = docker(d, "run", "--rm", IMAGE, "version").stdout
    print(out.rstrip())
    if "(git %s," % describe not in out:
        raise Fail("runbook version in the image is not this tree's git describe (%s)" % describe)
    user = docker(d, "image", "inspect", "-f", "{{.Config.User}}", IMAGE).stdout.strip()
    uid = docker(d, "run", "--rm", "--entrypoint", "id", IMAGE, "-u").stdout.strip()
    print("image user %s, uid %s" % (user, uid))
    if user in ("", "root", "0") or uid in ("", "0"):
        raise Fail("the image runs as root (USER %r, uid %r)" % (user, uid))


def run_quickstart(d, repo):
    mount = ["-v", repo + ":/work:ro"]
    out = docker(d, "run", "--rm", *mount, IMAGE, "run", "examples/quickstart.lua",
                 "--dry-run").stdout
    print(out.rstrip())
    if "would:" not in out:
        raise Fail("the quick-start --dry-run showed no `would:` action")
    out = docker(d, "run", "--rm", "--name", "runbook-ci-live", *mount,
                 "-v", VOLUME + ":" + AUDIT_DIR, IMAGE, "run", "examples/quickstart.lua").stdout
    print(out.rstrip())
    m = re.search(r"^success .* run (\S+)$", out, re.M)
    if not m:
        raise Fail("the live quick-start did not end with `success ... run ID`")
    return m.group(1)


def check_audit(d, run_id):
    left = docker(d, "ps", "-aq", "--filter", "name=runbook-ci-live").stdout.strip()
    vols = docker(d, "volume", "ls", "-q").stdout.split()
    if left or VOLUME not in vols:
        raise Fail("expected the live container gone (%r) and volume %s kept (%r)" % (
            left, VOLUME, vols))
    vol = ["-v", VOLUME + ":" + AUDIT_DIR]
    lines = docker(d, "run", "--rm", *vol, IMAGE, "audit", "list", "--json").stdout
    runs = [json.loads(l) for l in lines.splitlines() if l.strip()]
    mine = [r for r in runs if r.get("run_id") == run_id]
    if not mine:
        raise Fail("a second container on %s does not see run %s: %s" % (VOLUME, run_id, lines))
    r = mine[0]
    print("run %s: %s %s, %s, %d actions, operator %s" % (
        run_id, r.get("runbook"), r.get("mode"), r.get("outcome"), r.get("actions", 0),
        r.get("operator")))
    if (r.get("runbook"), r.get("mode"), r.get("outcome")) != (
            "examples/quickstart", "live", "success"):
        raise Fail("run %s on the volume is not the live quick-start's success: %s" % (run_id, r))
    print(docker(d, "run", "--rm", *vol, IMAGE, "audit", "verify").stdout.rstrip())


def main():
    base_tar = None
    args = sys.argv[1:]
    if args[:1] == ["--base-tar"] and len(args) == 2:
        base_tar = os.path.abspath(args[1])
    elif args:
        raise Fail("usage: bash scripts/image-test.sh [--base-tar FILE]")
    why = dockerd.unavailable()
    if why:
        raise Fail(why)
    if not shutil.which("mmdebstrap"):
        raise Fail("mmdebstrap not found: bash scripts/install-deps.sh installs it")
    repo = os.getcwd()
    describe = git_describe()
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="rbimg-")
    d = dockerd.Dockerd(storage_driver="overlay2")
    try:
        try:
            timed("engine: dockerd (tests/fixtures/dockerd.py)", d.start)
        except RuntimeError as e:
            print("overlay2 unavailable, vfs instead (slower: a copy per build step): %s" % e)
            d = dockerd.Dockerd()
            timed("engine: dockerd --storage-driver vfs", d.start)
        print("engine API %s at %s, storage driver %s" % (d.api, d.host, d.storage_driver))
        timed("base: mmdebstrap --variant=minbase bookworm, docker import", make_base, d, tmp,
              base_tar)
        timed("build: docker build --build-arg BASE=%s" % BASE_TAG, build, d, tmp, describe)
        size = int(docker(d, "image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
        base = int(docker(d, "image", "inspect", "-f", "{{.Size}}", BASE_TAG).stdout)
        print("image %s: %.1f MB (its base %.1f MB)" % (IMAGE, size / 1e6, base / 1e6))
        timed("run: runbook version, as the image's user", check_version, d, describe)
        run_id = timed("run: the quick-start, --dry-run then live onto volume " + VOLUME,
                       run_quickstart, d, repo)
        timed("run: a second container reads the volume's audit log", check_audit, d, run_id)
    finally:
        t = time.monotonic()
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        times.append(("teardown", time.monotonic() - t))
    print("\n== times")
    for name, s in times:
        print("  %6.1f s  %s" % (s, name))
    print("  %6.1f s  total" % (time.monotonic() - t0))
    print("image-test: the image builds and runs (%s, %.1f MB, git %s)" % (
        IMAGE, size / 1e6, describe))


# a CI timeout's SIGTERM tears down too (the finally in main, the fixture's atexit)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
try:
    main()
except Fail as e:
    print("image-test: FAILED: %s" % e, file=sys.stderr)
    sys.exit(1)
PY
