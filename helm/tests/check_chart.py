#!/usr/bin/env python3
"""Chart checks run by helm/test-chart.sh (inside its venv): lint and render helm/sigproxy with the
real Helm SDK (helm-python-sdk) for each value set in helm/tests/values/ and for a consumer chart
that includes the sidecar templates in its own pod; validate every rendered object with
`kubernetes-validate --strict` for Kubernetes 1.30; run `sigproxy check-config` on the policy
rendered into the ConfigMap (with the override keys and key files beside it, as mounted); assert
the invariants the issue asks for (directory mount, no checksum annotation, restricted security
context, probes, resources). It writes every rendered object under --out for checkov.

Prints one line per check and ends with "chart: N passed, M failed"; exits 1 on any failure.
"""

import argparse
import base64
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import helm_python as helm
import yaml

HERE = pathlib.Path(__file__).resolve().parent
CHART = HERE.parent / "sigproxy"
KUBE = "1.30.0"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}  # no schema offline; promtool checks the rules

passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}{': ' + detail if detail else ''}")
    return ok


def render(chart, values, release="demo", namespace="sigproxy"):
    cfg = helm.Config(storage_driver="memory", namespace=namespace)
    rel = cfg.install(str(chart), release, values, dry_run="client", namespace=namespace)
    return [d for d in yaml.safe_load_all(rel["manifest"]) if d]


def pod_specs(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            yield d, d["spec"]["template"]


def sidecar(pod):
    return next(c for c in pod["spec"]["containers"] if "run" in (c.get("args") or [])[:1])


def check_invariants(case, docs):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    cms = [c for c in by_kind.get("ConfigMap", []) if "policy.yaml" in c.get("data", {})]
    check(f"{case}: one ConfigMap with policy.yaml", len(cms) == 1, f"found {len(cms)}")
    for owner, tpl in pod_specs(docs):
        n = f"{case}: {owner['kind']}/{owner['metadata']['name']}"
        ann = (tpl.get("metadata") or {}).get("annotations") or {}
        check(f"{n} has no checksum annotation (policy edits reload, never restart)",
              not any("checksum" in k for k in ann), str(ann))
        c = sidecar(tpl)
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in tpl["spec"].get("volumes", [])}
        cfg = mounts.get("sigproxy-config", {})
        check(f"{n} mounts the policy ConfigMap as a directory (no subPath)",
              cfg and "subPath" not in cfg and "subPathExpr" not in cfg
              and vols["sigproxy-config"]["configMap"]["name"] == cms[0]["metadata"]["name"]
              and c["args"][-1] == cfg["mountPath"].rstrip("/") + "/policy.yaml",
              f"{cfg} {c['args']}")
        check(f"{n} no container mounts with subPath",
              not any("subPath" in m for ct in tpl["spec"]["containers"] for m in ct.get("volumeMounts", [])))
        sc = c.get("securityContext", {})
        psc = tpl["spec"].get("securityContext", {})
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        check(f"{n} sidecar security context is restricted",
              sc.get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True
              and sc.get("allowPrivilegeEscalation") is False
              and sc.get("capabilities", {}).get("drop") == ["ALL"]
              and sc.get("runAsUser", 0) >= 10000 and seccomp == "RuntimeDefault", str(sc))
        check(f"{n} sidecar probes /healthz and /readyz on the admin port",
              c["livenessProbe"]["httpGet"]["path"] == "/healthz"
              and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
              and c["readinessProbe"]["httpGet"]["port"] == "admin")
        r = c.get("resources", {})
        check(f"{n} sidecar has cpu/memory requests and limits",
              all(k in r.get(s, {}) for s in ("requests", "limits") for k in ("cpu", "memory")), str(r))
        if "sigproxy-keys" in vols:
            check(f"{n} keys come from a Secret mounted as a directory",
                  "secret" in vols["sigproxy-keys"] and "subPath" not in mounts["sigproxy-keys"])
    for pr in by_kind.get("PrometheusRule", []):
        check(f"{case}: PrometheusRule carries files/alerts.yaml unchanged (the promtool-tested rules)",
              pr["spec"] == yaml.safe_load((CHART / "files/alerts.yaml").read_text()))
    for c in by_kind.get("ConfigMap", []):
        if "sigproxy.json" in c.get("data", {}):
            check(f"{case}: dashboard ConfigMap carries files/dashboard.json",
                  json.loads(c["data"]["sigproxy.json"]) == json.loads((CHART / "files/dashboard.json").read_text()))
    return cms[0] if cms else None


def kubernetes_validate(case, files):
    r = subprocess.run(["kubernetes-validate", "--strict", "-k", KUBE, *map(str, files)],
                       capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip().splitlines()
    bad = [l for l in out if not l.startswith("INFO")
           and not any(f"kind {k} " in l for k in CRD_KINDS)]
    check(f"{case}: kubernetes-validate --strict -k {KUBE} ({len(files)} objects)",
          r.returncode == 0 and not bad, "\n".join(bad or out[-5:]))


def check_config(case, sigproxy, cm, docs, work):
    """Lay the ConfigMap and keys Secret out as the kubelet mounts them and run check-config."""
    cfg_dir, key_dir = work / "config", work / "keys"
    cfg_dir.mkdir(parents=True)
    key_dir.mkdir()
    for k, v in cm["data"].items():
        (cfg_dir / k).write_text(v)
    policy = yaml.safe_load(cm["data"]["policy.yaml"])
    for s in (d for d in docs if d["kind"] == "Secret"):
        for k, v in s.get("data", {}).items():
            (key_dir / k).write_bytes(base64.b64decode(v))
    # The pod mounts the Secret at keys.mountPath; here it is key_dir.
    kf = policy.get("key_files") or []
    text = cm["data"]["policy.yaml"]
    for pattern in kf:
        if pattern.endswith("/*.yaml"):
            text = text.replace(pattern, f"{key_dir}/*.yaml")
    (cfg_dir / "policy.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNATURE_AUTH_")}
    r = subprocess.run([sigproxy, "check-config", str(cfg_dir / "policy.yaml")],
                       capture_output=True, text=True, env=env)
    overrides = sorted(k for k in cm["data"] if k != "policy.yaml")
    check(f"{case}: sigproxy check-config on the rendered policy"
          + (f" (+ overrides {', '.join(overrides)})" if overrides else ""),
          r.returncode == 0, (r.stdout + r.stderr).strip()[-2000:])
    if r.returncode == 0 and overrides:
        check(f"{case}: check-config reports each override key in force",
              all(f"{k}=" in r.stdout for k in overrides), r.stdout[:1500])
    want = len(policy.get("keys") or []) + sum(
        len(yaml.safe_load(p.read_text()) or []) for p in key_dir.glob("*.yaml"))
    m = re.search(r"^keys: (\d+)", r.stdout, re.M)
    check(f"{case}: check-config loaded all {want} keys (inline + key files from the Secret)",
          m is not None and int(m.group(1)) == want, m.group(0) if m else r.stdout[-500:])
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sigproxy", required=True, help="the sigproxy binary")
    ap.add_argument("--out", required=True, help="directory for the rendered objects")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="sigproxy-chart-"))

    # The consumer chart: this chart as a dependency, its sidecar included in the user's own pod.
    consumer = work / "consumer"
    shutil.copytree(HERE / "consumer", consumer)
    shutil.copytree(CHART, consumer / "charts" / "sigproxy")

    cases = [(f"values/{p.stem}", CHART, yaml.safe_load(p.read_text()) or {})
             for p in sorted((HERE / "values").glob("*.yaml"))]
    cases.append(("consumer chart (include)", consumer, {}))

    for case, chart, values in cases:
        print(f"\n-- {case}")
        rep = helm.lint(str(chart), values, strict=True, kube_version=f"v{KUBE}",
                        namespace="sigproxy", with_subcharts=True)
        msgs = [m for m in rep.get("messages", []) if m["severity"] >= 2]
        check(f"{case}: helm lint --strict", not rep.get("errors") and not msgs,
              str(rep.get("errors") or msgs))
        try:
            docs = render(chart, values)
        except helm.HelmError as e:
            check(f"{case}: render (install --dry-run=client)", False, str(e))
            continue
        kinds = sorted(d["kind"] for d in docs)
        check(f"{case}: render (install --dry-run=client): {', '.join(kinds)}", bool(docs))
        d_out = out / case.replace("/", "_").replace(" ", "_").replace("(", "").replace(")", "")
        d_out.mkdir()
        files = []
        for i, d in enumerate(docs):
            f = d_out / f"{i:02d}-{d['kind']}-{d['metadata']['name']}.yaml"
            f.write_text(yaml.safe_dump(d, sort_keys=False))
            files.append(f)
        kubernetes_validate(case, files)
        cm = check_invariants(case, docs)
        if cm:
            check_config(case, a.sigproxy, cm, docs, work / d_out.name)

    print("\n-- changes that must and must not restart pods")
    base = render(CHART, {})
    changed = render(CHART, {"policy": {"mode": "required", "canary": {"percent": 50}},
                             "overrides": {"required": False, "canaryPercent": 10}})
    tpl = lambda docs: next(t for _, t in pod_specs(docs))
    cm = lambda docs: next(d for d in docs if d["kind"] == "ConfigMap")
    check("policy and override changes leave the pod template unchanged (no rollout)",
          tpl(base) == tpl(changed) and cm(base) != cm(changed))
    check("an image change does change the pod template",
          tpl(base) != tpl(render(CHART, {"image": {"tag": "0.2.0"}})))

    print("\n-- values the schema must refuse")
    for label, bad in [
        ('mode: off unquoted (YAML 1.1 reads false)', {"policy": {"mode": False}}),
        ("unknown policy key", {"policy": {"mode": "hybrid", "bogus": 1}}),
        ("canary percent 150", {"overrides": {"canaryPercent": 150}}),
        ("key file not named *.yaml", {"keys": {"files": {"keys.txt": []}}}),
        ("route without path_prefix", {"policy": {"routes": [{"mode": "required"}]}}),
    ]:
        try:
            render(CHART, bad)
            check(f"schema refuses {label}", False, "rendered without error")
        except helm.HelmError as e:
            check(f"schema refuses {label}", "schema" in str(e).lower() or "values" in str(e).lower(), str(e)[:300])

    print("\n-- check-config refuses what the schema cannot see")
    bad = render(CHART, {"policy": {"signature": {"required_components": ["@status"]}}})
    bad_dir = work / "bad"
    bad_dir.mkdir()
    (bad_dir / "policy.yaml").write_text(cm(bad)["data"]["policy.yaml"])
    r = subprocess.run([a.sigproxy, "check-config", str(bad_dir / "policy.yaml")],
                       capture_output=True, text=True)
    check("check-config exits 2 with file:line:col for a response-only component",
          r.returncode == 2 and "policy.yaml:" in r.stderr, (r.stdout + r.stderr)[-500:])

    shutil.rmtree(work, ignore_errors=True)
    print(f"\nchart: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
